//! The book's lab chapters (`book/src/labs/`), made from executed solution notebooks.
//!
//! One chapter per solution notebook, `labs/<name>.md`, and its charts beside it in
//! `labs/<name>/`:
//!
//! - markdown cells as they are (the math stays `$…$` / `$$…$$`: the book's KaTeX preprocessor
//!   renders it at build time);
//! - code cells as ```` ```rust,ignore ```` blocks (evcxr cells are not standalone programs, so
//!   `mdbook test` must not compile them), hidden grading tests (`// BEGIN HIDDEN TESTS` …
//!   `// END HIDDEN TESTS`) left out; an exercise cell shows what the student gets (each
//!   `// BEGIN SOLUTION` … `// END SOLUTION` region as its `todo!()`), then the solution folded
//!   in a `<details>`;
//! - outputs: stdout and `text/plain` as ```` ```text ```` blocks, `text/markdown` as markdown,
//!   `text/html` as raw HTML, `image/svg+xml` (and `image/png`) as files named after the cell's
//!   id (`lab3-34.svg`) shown with `![title](…)`. stderr is left out (warnings, progress).
//!
//! What varies between machines or runs is replaced as in the snapshots
//! ([`Normalizer::text`]): durations, paths, long decimals. Charts are written as they come; the
//! comparison ([`compare`]) looks at their summary (elements and labels), so a chart whose
//! coordinates differ in the last pixel on another machine is still up to date.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::generate::{self, strip_hidden_tests, strip_solutions, BEGIN, END};
use crate::normalize::Normalizer;
use crate::run::{CellRun, NotebookRun};
use crate::Error;

/// The folder of the lab chapters inside the book's `src/`.
pub const LABS_DIR: &str = "labs";

/// One generated chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// The notebook's file stem (`01_kto_loss`): the chapter is `labs/<stem>.md`.
    pub stem: String,
    /// The chapter's title (the notebook's first `# ` heading).
    pub title: String,
    /// The chapter's markdown.
    pub markdown: String,
    /// Files the chapter shows, by name, in `labs/<stem>/`.
    pub assets: BTreeMap<String, Vec<u8>>,
}

impl Chapter {
    /// The chapter's path relative to the book's `src/`: `labs/<stem>.md`.
    pub fn path(&self) -> PathBuf {
        Path::new(LABS_DIR).join(format!("{}.md", self.stem))
    }

    /// The folder of its assets relative to the book's `src/`: `labs/<stem>/`.
    pub fn assets_dir(&self) -> PathBuf {
        Path::new(LABS_DIR).join(&self.stem)
    }

    /// Every file of the chapter (relative to the book's `src/`) with its contents.
    pub fn files(&self) -> Vec<(PathBuf, &[u8])> {
        let mut files = vec![(self.path(), self.markdown.as_bytes())];
        for (name, bytes) in &self.assets {
            files.push((self.assets_dir().join(name), bytes.as_slice()));
        }
        files
    }
}

/// Why a chapter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The notebook's markers are wrong (the same errors as `generate`).
    #[error(transparent)]
    Notebook(#[from] Error),
    /// The run did not get through the notebook: a book is made from runs that pass.
    #[error("{}: the run failed ({summary}): the book is made only from notebooks that run cleanly", path.display())]
    FailedRun {
        /// The notebook.
        path: PathBuf,
        /// The run's summary line.
        summary: String,
    },
    /// A file could not be read, written or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BookError + '_ {
    move |source| BookError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The chapter of an executed solution notebook. Fails unless every code cell ran without an
/// error or a panic.
pub fn chapter(run: &NotebookRun, normalizer: &Normalizer) -> Result<Chapter, BookError> {
    if !run.ok() || run.checks().failed > 0 {
        return Err(BookError::FailedRun {
            path: run.path.clone(),
            summary: run.summary(),
        });
    }
    // Marker errors as `generate` reports them (file, cell, line).
    generate::lab_notebook(&run.notebook, &run.path)?;
    let stem = run
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let by_index: BTreeMap<usize, &CellRun> = run.cells.iter().map(|c| (c.at.index, c)).collect();
    let mut blocks: Vec<String> = Vec::new();
    let mut assets = BTreeMap::new();
    let mut title = None;
    // An exercise's folded solution waits for the hint cell that follows it, if there is one:
    // stub, hint, then solution.
    let mut solution: Option<String> = None;
    for cell in run.notebook.cells() {
        let source = cell.source();
        let is_hint = cell.kind() == "markdown" && source.trim_start().starts_with("<details");
        if !is_hint {
            blocks.extend(solution.take());
        }
        match cell.kind() {
            "markdown" => {
                if title.is_none() {
                    title = source
                        .lines()
                        .find_map(|l| l.strip_prefix("# "))
                        .map(|t| t.trim().to_owned());
                }
                let text = markdown_fences(source.trim());
                if !text.is_empty() {
                    blocks.push(text);
                }
                if blocks.len() == 1 {
                    blocks.push(provenance_note(&run.path));
                }
            }
            "code" => {
                let shown = strip_hidden_tests(&source).unwrap_or(source.clone());
                if !shown.trim().is_empty() {
                    let (code, folded) = code_blocks(&shown);
                    blocks.push(code);
                    solution = folded;
                }
                if let Some(cell_run) = by_index.get(&cell.at().index) {
                    let name = cell
                        .at()
                        .id
                        .clone()
                        .filter(|id| safe_file_name(id))
                        .unwrap_or_else(|| format!("cell-{}", cell.at().index));
                    blocks.extend(outputs(cell_run, &stem, &name, normalizer, &mut assets));
                }
            }
            _ => {}
        }
        if is_hint {
            blocks.extend(solution.take());
        }
    }
    blocks.extend(solution.take());
    let mut markdown = format!(
        "<!-- Generated by `kto-lab-notebooks book` from {}: edit the notebook, not this file. -->\n\n",
        display_path(&run.path)
    );
    markdown.push_str(&blocks.join("\n\n"));
    markdown.push('\n');
    Ok(Chapter {
        title: title.unwrap_or_else(|| stem.clone()),
        stem,
        markdown,
        assets,
    })
}

fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn provenance_note(path: &Path) -> String {
    let lab = path
        .file_name()
        .map(|n| format!("labs/{}", n.to_string_lossy()))
        .unwrap_or_default();
    format!(
        "> This chapter is the solution notebook `{}` as it runs: every code cell with its \
         outputs. Exercises show the student's stub first (as in `{lab}`), the solution folded \
         under it.",
        display_path(path)
    )
}

/// A markdown cell with its fenced code blocks made safe for `mdbook test`: a `rust` block
/// (a hint's snippet is not a program) gets `ignore`, a block with no language becomes `text`
/// (rustdoc would compile it as Rust).
fn markdown_fences(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + 32);
    // The open fence: its character and length.
    let mut open: Option<(char, usize)> = None;
    for line in md.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let t = body.trim_start();
        let indent = &body[..body.len() - t.len()];
        let fence_char = t.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| t.len() - t.trim_start_matches(c).len());
        match (open, fence_char) {
            (None, Some(c)) if run >= 3 && indent.len() < 4 => {
                open = Some((c, run));
                let info = t[run..].trim();
                let lang = info.split([',', ' ']).next().unwrap_or("");
                let fence = &t[..run];
                let info = if info.is_empty() {
                    "text".to_owned()
                } else if lang == "rust"
                    && !info
                        .split([',', ' '])
                        .any(|a| matches!(a, "ignore" | "no_run" | "noplayground" | "compile_fail"))
                {
                    format!("{info},ignore")
                } else {
                    info.to_owned()
                };
                out.push_str(&format!("{indent}{fence}{info}{ending}"));
            }
            (Some((c, n)), Some(fc)) if fc == c && run >= n && t[run..].trim().is_empty() => {
                open = None;
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A name that can be a file name as it is (cell ids are `lab3-34`).
fn safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A code cell as a rust block, and for an exercise its solution, folded: the cell shows the
/// student's stub (each solution region as its `todo!()`), the solution has no marker lines.
fn code_blocks(source: &str) -> (String, Option<String>) {
    let has_solution = source.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with(BEGIN) || t.starts_with(END)
    });
    if !has_solution {
        return (fenced("rust,ignore", &rust_lines(source)), None);
    }
    let stub = strip_solutions(source).unwrap_or_else(|_| source.to_owned());
    let solution: String = source
        .split_inclusive('\n')
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with(BEGIN) || t.starts_with(END))
        })
        .collect();
    (
        fenced("rust,ignore", &rust_lines(&stub)),
        Some(format!(
            "<details class=\"solution\"><summary>Solution</summary>\n\n{}\n\n</details>",
            fenced("rust,ignore", &rust_lines(&solution))
        )),
    )
}

/// mdBook hides lines of a rust block that start with `# ` (rustdoc's hidden lines) and shows
/// `##` as `#`: escape such lines so every line shows.
fn rust_lines(source: &str) -> String {
    source
        .split_inclusive('\n')
        .map(|l| {
            let t = l.trim_start();
            if t == "#" || t.starts_with("# ") || t.starts_with("#\n") || t.starts_with("##") {
                let indent = &l[..l.len() - t.len()];
                format!("{indent}#{t}")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// `body` in a fenced block with a fence longer than any backtick run inside.
fn fenced(info: &str, body: &str) -> String {
    let body = body.trim_end();
    let longest = body
        .lines()
        .map(|l| {
            let t = l.trim_start();
            t.len() - t.trim_start_matches('`').len()
        })
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{body}\n{fence}")
}

/// The markdown blocks of one cell's outputs; images go into `assets`.
fn outputs(
    cell: &CellRun,
    stem: &str,
    name: &str,
    normalizer: &Normalizer,
    assets: &mut BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut blocks = Vec::new();
    if !cell.stdout.trim().is_empty() {
        blocks.push(text_block(&normalizer.text(&cell.stdout)));
    }
    let o = &cell.outputs;
    let image = |ext: &str, bytes: Vec<u8>, title: String, assets: &mut BTreeMap<_, _>| {
        let file = format!("{name}.{ext}");
        assets.insert(file.clone(), bytes);
        format!("![{}]({stem}/{file})", alt_text(&title))
    };
    if let Some(svg) = o.get("image/svg+xml") {
        let title = svg_title(svg).unwrap_or_else(|| "chart".to_owned());
        blocks.push(image("svg", svg.as_bytes().to_vec(), title, assets));
    } else if let Some(png) = o
        .get("image/png")
        .and_then(|b| crate::normalize::decode_base64(b))
    {
        blocks.push(image("png", png, "chart".to_owned(), assets));
    } else if let Some(md) = o.get("text/markdown") {
        blocks.push(normalizer.text(md.trim()));
    } else if let Some(html) = o
        .get("text/html")
        .filter(|h| !h.contains("<svg") && !h.contains(";base64,"))
    {
        // `$` would start math for the KaTeX preprocessor.
        blocks.push(html_block(&normalizer.text(html).replace('$', "&#36;")));
    } else if let Some(text) = o.get("text/plain") {
        if !text.trim().is_empty() {
            blocks.push(text_block(&normalizer.text(text)));
        }
    }
    blocks
}

fn text_block(text: &str) -> String {
    let text: String = text
        .trim_end()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    fenced("text", text.trim_matches('\n'))
}

/// Raw HTML as one HTML block: a blank line would end it, so there are none.
fn html_block(html: &str) -> String {
    let lines: Vec<&str> = html
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    format!("<div class=\"nb-output\">\n{}\n</div>", lines.join("\n"))
}

/// The first `<text>` of an SVG (the chart's title), unescaped.
fn svg_title(svg: &str) -> Option<String> {
    let start = svg.find("<text")?;
    let rest = &svg[start..];
    let body = &rest[rest.find('>')? + 1..];
    let text = body.split('<').next()?.trim();
    (!text.is_empty()).then(|| {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    })
}

/// Text safe inside `![…]`: no brackets, backslashes or line breaks.
fn alt_text(text: &str) -> String {
    text.replace(['[', ']', '\\'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a file of the book compares with what the generator makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The file does not exist.
    Missing(PathBuf),
    /// The file differs.
    OutOfDate(PathBuf),
    /// A file in a chapter's asset folder that the chapter no longer shows.
    Extra(PathBuf),
}

impl Drift {
    /// The file, relative to the book's `src/`.
    pub fn path(&self) -> &Path {
        match self {
            Drift::Missing(p) | Drift::OutOfDate(p) | Drift::Extra(p) => p,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Missing(p) => write!(f, "{} is missing", p.display()),
            Drift::OutOfDate(p) => write!(f, "{} is out of date", p.display()),
            Drift::Extra(p) => write!(f, "{} is no longer generated", p.display()),
        }
    }
}

/// Whether two versions of a generated file say the same: markdown byte for byte, an SVG by
/// its summary (elements and labels: [`Normalizer::text`]), anything else byte for byte.
pub fn same_content(path: &Path, old: &[u8], new: &[u8], normalizer: &Normalizer) -> bool {
    if old == new {
        return true;
    }
    if path.extension().is_some_and(|e| e == "svg") {
        if let (Ok(a), Ok(b)) = (std::str::from_utf8(old), std::str::from_utf8(new)) {
            return normalizer.text(a) == normalizer.text(b);
        }
    }
    false
}

/// Where the book's `src/` differs from `chapter`.
pub fn compare(
    chapter: &Chapter,
    src: &Path,
    normalizer: &Normalizer,
) -> Result<Vec<Drift>, BookError> {
    let mut drift = Vec::new();
    for (rel, new) in chapter.files() {
        let full = src.join(&rel);
        match fs::read(&full) {
            Ok(old) if same_content(&rel, &old, new, normalizer) => {}
            Ok(_) => drift.push(Drift::OutOfDate(rel)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => drift.push(Drift::Missing(rel)),
            Err(e) => return Err(io_error(&full)(e)),
        }
    }
    for rel in extra_assets(chapter, src)? {
        drift.push(Drift::Extra(rel));
    }
    Ok(drift)
}

/// Files in the chapter's asset folder that it does not show (relative to `src`).
fn extra_assets(chapter: &Chapter, src: &Path) -> Result<Vec<PathBuf>, BookError> {
    let dir = src.join(chapter.assets_dir());
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let mut extra = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !chapter.assets.contains_key(&name) {
            extra.push(chapter.assets_dir().join(name));
        }
    }
    extra.sort();
    Ok(extra)
}

/// Writes the chapter into the book's `src/`: each file only when [`compare`] finds it
/// changed (atomically), and removes asset files it no longer shows. Returns what changed.
pub fn write(
    chapter: &Chapter,
    src: &Path,
    normalizer: &Normalizer,
) -> Result<Vec<Drift>, BookError> {
    let drift = compare(chapter, src, normalizer)?;
    let files: BTreeMap<PathBuf, &[u8]> = chapter.files().into_iter().collect();
    for d in &drift {
        let full = src.join(d.path());
        match d {
            Drift::Missing(rel) | Drift::OutOfDate(rel) => {
                if let Some(dir) = full.parent() {
                    fs::create_dir_all(dir).map_err(io_error(dir))?;
                }
                let bytes = files.get(rel).copied().unwrap_or_default();
                write_atomic_bytes(&full, bytes)?;
            }
            Drift::Extra(_) => fs::remove_file(&full).map_err(io_error(&full))?,
        }
    }
    Ok(drift)
}

fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<(), BookError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

/// What `kto-lab-notebooks book` does: run notebooks and write (or check) their chapters.
#[derive(Debug, Clone)]
pub struct Options {
    /// The solution notebooks to run.
    pub notebooks: Vec<PathBuf>,
    /// The book's source folder (`book/src`).
    pub src: PathBuf,
    /// Only compare: write nothing.
    pub check: bool,
    /// The shared evcxr build folder.
    pub build_dir: PathBuf,
    /// The workspace root (paths in outputs become `<repo>`; notebooks are named relative to
    /// it).
    pub root: PathBuf,
    /// The workspace's `Cargo.lock`, to seed the build folder with.
    pub lockfile: Option<PathBuf>,
}

/// One notebook's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The run's summary line.
    pub summary: String,
    /// The chapter, when the run passed.
    pub chapter: Option<Chapter>,
    /// What differed (and, unless checking, was written), or why there is no chapter.
    pub result: Result<Vec<Drift>, String>,
}

/// Runs every notebook of `opts` with evcxr and writes (or compares) its chapter; `progress`
/// is called with each outcome as it comes. Errors that stop everything (the build folder, a
/// file that cannot be written) come back as `Err`.
pub fn build(
    opts: &Options,
    mut progress: impl FnMut(&Outcome),
) -> Result<Vec<Outcome>, BookError> {
    for path in &opts.notebooks {
        crate::Notebook::load(path)?;
    }
    let mut runner = crate::run::Runner::new(&opts.build_dir).map_err(|e| BookError::Io {
        path: opts.build_dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(lock) = &opts.lockfile {
        runner.seed_lockfile(lock).map_err(|e| BookError::Io {
            path: lock.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let normalizer = Normalizer::new(&opts.root, runner.build_dir());
    let mut outcomes = Vec::new();
    for path in &opts.notebooks {
        let mut run = match runner.run(path, |_| {}) {
            Ok(run) => run,
            Err(e) => {
                let o = Outcome {
                    summary: format!("{}: did not run", path.display()),
                    chapter: None,
                    result: Err(e.to_string()),
                };
                progress(&o);
                outcomes.push(o);
                continue;
            }
        };
        run.path = relative_to(path, &opts.root);
        let summary = run.summary();
        let o = match chapter(&run, &normalizer) {
            Ok(ch) => {
                let drift = if opts.check {
                    compare(&ch, &opts.src, &normalizer)?
                } else {
                    write(&ch, &opts.src, &normalizer)?
                };
                Outcome {
                    summary,
                    chapter: Some(ch),
                    result: Ok(drift),
                }
            }
            Err(e) => Outcome {
                summary,
                chapter: None,
                result: Err(e.to_string()),
            },
        };
        progress(&o);
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// `path` relative to `root` when it lies inside it (how the book names notebooks).
pub fn relative_to(path: &Path, root: &Path) -> PathBuf {
    let full = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    full.strip_prefix(&root)
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned())
}

/// The `labs/<stem>.md` links that `SUMMARY.md` (text) lacks.
pub fn missing_from_summary(summary: &str, stems: &[String]) -> Vec<String> {
    stems
        .iter()
        .filter(|stem| !summary.contains(&format!("({LABS_DIR}/{stem}.md)")))
        .map(|stem| format!("{LABS_DIR}/{stem}.md"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckCounts;
    use crate::notebook::{CellRef, Notebook};
    use std::time::Duration;

    fn normalizer() -> Normalizer {
        Normalizer::new(Path::new("/work/repo"), Path::new("/work/repo/target/b"))
    }

    fn notebook(cells: &[(&str, &str)]) -> Notebook {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .enumerate()
            .map(|(i, (kind, src))| {
                let mut c = serde_json::json!({
                    "cell_type": kind, "id": format!("t-{i:02}"), "metadata": {}, "source": src,
                });
                if *kind == "code" {
                    c["outputs"] = serde_json::json!([]);
                    c["execution_count"] = serde_json::Value::Null;
                }
                c
            })
            .collect();
        let json =
            serde_json::json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5});
        Notebook::parse(&json.to_string(), Path::new("t.ipynb")).unwrap()
    }

    fn cell_run(index: usize, outputs: &[(&str, &str)], stdout: &str) -> CellRun {
        CellRun {
            at: CellRef {
                index,
                id: Some(format!("t-{index:02}")),
            },
            source: String::new(),
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdout: stdout.to_owned(),
            stderr: "warning: unused\n".to_owned(),
            error: None,
            panicked: false,
            duration: Duration::ZERO,
            phases: Vec::new(),
            checks: CheckCounts::default(),
            timed_out: false,
            terminated: false,
            truncated: false,
        }
    }

    fn run(nb: Notebook, cells: Vec<CellRun>) -> NotebookRun {
        NotebookRun {
            path: PathBuf::from("solutions/09_test.ipynb"),
            code_cells: nb.code_cells().len(),
            notebook: nb,
            startup: Duration::ZERO,
            cells,
            total: Duration::ZERO,
        }
    }

    const SVG: &str = "<svg width=\"10\" height=\"10\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"1\">Loss &amp; [gain]</text><rect x=\"1\"/></svg>";

    #[test]
    fn a_chapter_shows_text_code_outputs_and_charts() {
        let nb = notebook(&[
            ("markdown", "# Lab 9 — a test\n\nThe value $v(x)$."),
            ("code", "let x = 1;\n# [allow(unused)]\nx"),
            (
                "code",
                "fn f() -> u8 {\n    // BEGIN SOLUTION: return one\n    1\n    // END SOLUTION\n}",
            ),
            (
                "markdown",
                "<details><summary>Hint</summary>\n\nOne.\n</details>",
            ),
            (
                "code",
                "check(f)\n// BEGIN HIDDEN TESTS\n.with_hidden(secret)\n// END HIDDEN TESTS",
            ),
            ("code", "chart"),
        ]);
        let cells = vec![
            cell_run(
                1,
                &[("text/plain", "1")],
                "took 1.25 s in /work/repo/labs\n",
            ),
            cell_run(2, &[], ""),
            cell_run(
                4,
                &[
                    ("text/html", "<div>\n\n<p>✅ passed, $5</p></div>"),
                    ("text/plain", "✅ passed"),
                ],
                "",
            ),
            cell_run(5, &[("image/svg+xml", SVG)], ""),
        ];
        let c = chapter(&run(nb, cells), &normalizer()).unwrap();
        assert_eq!(c.stem, "09_test");
        assert_eq!(c.title, "Lab 9 — a test");
        let md = &c.markdown;
        assert!(
            md.starts_with(
                "<!-- Generated by `kto-lab-notebooks book` from solutions/09_test.ipynb"
            ),
            "{md}"
        );
        assert!(md.contains("The value $v(x)$."));
        assert!(
            md.contains("```rust,ignore\nlet x = 1;\n## [allow(unused)]\nx\n```"),
            "{md}"
        );
        assert!(
            md.contains("```text\ntook <duration> in <repo>/labs\n```"),
            "{md}"
        );
        assert!(md.contains("```text\n1\n```"));
        // The exercise: the stub, the hint, then the solution folded without the markers.
        assert!(md.contains("```rust,ignore\nfn f() -> u8 {\n    todo!(\"return one\")\n}\n```\n\n<details><summary>Hint</summary>\n\nOne.\n</details>\n\n<details class=\"solution\"><summary>Solution</summary>\n\n```rust,ignore\nfn f() -> u8 {\n    1\n}\n```\n\n</details>"), "{md}");
        assert!(!md.contains("SOLUTION"));
        // Hidden tests are gone, markers included.
        assert!(md.contains("```rust,ignore\ncheck(f)\n```"), "{md}");
        assert!(!md.contains("HIDDEN") && !md.contains("secret"));
        // HTML output as one block (no blank line), stderr left out.
        assert!(
            md.contains("<div class=\"nb-output\">\n<div>\n<p>✅ passed, &#36;5</p></div>\n</div>"),
            "{md}"
        );
        assert!(!md.contains("warning: unused"));
        // The chart is a file named after the cell, titled by its first text.
        assert!(md.contains("![Loss & gain](09_test/t-05.svg)"), "{md}");
        assert_eq!(
            c.assets.get("t-05.svg").map(Vec::as_slice),
            Some(SVG.as_bytes())
        );
        assert!(md.ends_with("```\n") || md.ends_with(")\n"));
    }

    #[test]
    fn a_failed_run_makes_no_chapter() {
        let nb = notebook(&[("code", "boom()")]);
        let mut cell = cell_run(0, &[], "");
        cell.panicked = true;
        let err = chapter(&run(nb, vec![cell]), &normalizer()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("solutions/09_test.ipynb: the run failed"),
            "{err}"
        );
    }

    #[test]
    fn bad_markers_name_the_cell() {
        let nb = notebook(&[("code", "// BEGIN SOLUTION\nx")]);
        let err = chapter(&run(nb, vec![cell_run(0, &[], "")]), &normalizer()).unwrap_err();
        assert!(
            err.to_string().contains("cells[0] (id t-00), line 1"),
            "{err}"
        );
    }

    #[test]
    fn markdown_code_blocks_are_not_doctests() {
        let md = "Hint:\n\n```rust\nlet x = f(p);\n```\n\n```\nplain\n```\n\n````rust,no_run\n```\n````\n\n~~~python\nx\n~~~";
        assert_eq!(
            markdown_fences(md),
            "Hint:\n\n```rust,ignore\nlet x = f(p);\n```\n\n```text\nplain\n```\n\n````rust,no_run\n```\n````\n\n~~~python\nx\n~~~"
        );
    }

    #[test]
    fn fences_outgrow_backticks_inside() {
        assert_eq!(fenced("text", "a\n````\nb"), "`````text\na\n````\nb\n`````");
        assert_eq!(fenced("text", "a"), "```text\na\n```");
    }

    #[test]
    fn write_then_compare_is_clean_and_extra_assets_go() {
        let dir = tempfile::tempdir().unwrap();
        let n = normalizer();
        let mut c = Chapter {
            stem: "01_x".into(),
            title: "X".into(),
            markdown: "# X\n".into(),
            assets: BTreeMap::from([("a.svg".to_owned(), SVG.as_bytes().to_vec())]),
        };
        assert_eq!(write(&c, dir.path(), &n).unwrap().len(), 2);
        assert!(compare(&c, dir.path(), &n).unwrap().is_empty());
        // A chart moved by a pixel is the same chart; a new label is not.
        let moved = SVG.replace("x=\"1\"", "x=\"2\"");
        fs::write(dir.path().join("labs/01_x/a.svg"), &moved).unwrap();
        assert!(compare(&c, dir.path(), &n).unwrap().is_empty());
        fs::write(
            dir.path().join("labs/01_x/a.svg"),
            SVG.replace("Loss", "Gain"),
        )
        .unwrap();
        assert_eq!(
            compare(&c, dir.path(), &n).unwrap(),
            vec![Drift::OutOfDate(PathBuf::from("labs/01_x/a.svg"))]
        );
        c.assets.clear();
        c.markdown.push_str("more\n");
        let changed = write(&c, dir.path(), &n).unwrap();
        assert_eq!(
            changed,
            vec![
                Drift::OutOfDate(PathBuf::from("labs/01_x.md")),
                Drift::Extra(PathBuf::from("labs/01_x/a.svg"))
            ]
        );
        assert!(!dir.path().join("labs/01_x/a.svg").exists());
        assert!(compare(&c, dir.path(), &n).unwrap().is_empty());
    }
}
