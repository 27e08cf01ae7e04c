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

mod render;
#[cfg(test)]
mod tests;

use render::*;

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
