//! The book (`book/`): its sources hang together, and the built book works in a real browser.
//!
//! - `SUMMARY.md` links every lab chapter, each solution notebook has one, and no chapter is
//!   left without its notebook (the chapters' contents are checked against the notebooks' runs
//!   by `tests/notebooks.rs`);
//! - every `{{#include}}` names a file that exists and an anchor that is there and not empty
//!   (mdBook silently includes nothing for a missing anchor);
//! - every relative link and image in the sources points at a file;
//! - `mdbook test` passes (no code block is a doctest), `mdbook build` succeeds and
//!   `scripts/check_book.py` finds, in headless Chromium, the math
//!   typeset, every image loaded, every link resolving and the search working. It needs
//!   mdBook and latex2mathml (`book/requirements.txt`, looked for in `.venv-book/` first),
//!   Chromium, chromedriver and Python: without them it is skipped with a message, except in
//!   CI (`CI` set), where they are required.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("the folder reads").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fenced code blocks blanked out (links and includes inside them are text, not links).
fn without_code_blocks(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let t = line.trim_start();
        let ticks = t.len() - t.trim_start_matches('`').len();
        match &fence {
            Some(f) if ticks >= f.len() && t.trim_start_matches('`').trim().is_empty() => {
                fence = None;
            }
            Some(_) => {}
            None if ticks >= 3 => fence = Some("`".repeat(ticks)),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn summary_lists_a_chapter_for_every_solution_notebook() {
    let root = root();
    let src = root.join("book/src");
    let summary = read(&src.join("SUMMARY.md"));
    let link = Regex::new(r"\]\(([^)]+)\)").unwrap();
    let listed: Vec<String> = link
        .captures_iter(&summary)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(!listed.is_empty(), "book/src/SUMMARY.md links no chapter");
    for chapter in &listed {
        assert!(
            src.join(chapter).is_file(),
            "book/src/SUMMARY.md links {chapter}, which does not exist"
        );
    }
    let solutions = kto_lab_notebooks::generate::solution_paths(&root.join("solutions"))
        .expect("solutions/ reads");
    let stems: Vec<String> = solutions
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let missing = kto_lab_notebooks::book::missing_from_summary(&summary, &stems);
    assert!(
        missing.is_empty(),
        "book/src/SUMMARY.md does not link {missing:?}"
    );
    for md in fs::read_dir(src.join("labs"))
        .expect("book/src/labs reads")
        .flatten()
    {
        let name = md.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".md") {
            assert!(
                stems.iter().any(|s| s == stem),
                "book/src/labs/{name} has no solution notebook solutions/{stem}.ipynb: remove it"
            );
        }
    }
}

/// The text `{{#include PATH[:ANCHOR]}}` would insert, or why it would be empty.
fn included(chapter: &Path, spec: &str) -> Result<String, String> {
    let (file, selector) = match spec.split_once(':') {
        Some((f, s)) => (f, Some(s)),
        None => (spec, None),
    };
    let path = chapter.parent().unwrap().join(file);
    let text = fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
    let Some(selector) = selector else {
        return Ok(text);
    };
    if selector.chars().next().is_some_and(|c| c.is_ascii_digit()) || selector.starts_with(':') {
        // A line range, `10:20`, `10:` or `:20` (1-based, inclusive).
        let (from, to) = selector.split_once(':').unwrap_or((selector, selector));
        let lines: Vec<&str> = text.lines().collect();
        let from = from.parse::<usize>().unwrap_or(1).max(1);
        let to = to.parse::<usize>().unwrap_or(lines.len()).min(lines.len());
        return Ok(lines
            .get(from - 1..to)
            .map(|l| l.join("\n"))
            .unwrap_or_default());
    }
    let begin = format!("ANCHOR: {selector}");
    let end = format!("ANCHOR_END: {selector}");
    let mut inside = false;
    let mut found = (false, false);
    let mut out = String::new();
    for line in text.lines() {
        if line.contains(&end) {
            found.1 = true;
            inside = false;
        } else if line.contains(&begin) {
            found.0 = true;
            inside = true;
        } else if inside && !line.contains("ANCHOR") {
            out.push_str(line);
            out.push('\n');
        }
    }
    match found {
        (true, true) => Ok(out),
        _ => Err(format!(
            "{file} has no anchor `{selector}` (ANCHOR: … ANCHOR_END:)"
        )),
    }
}

#[test]
fn every_include_resolves_and_is_not_empty() {
    let src = root().join("book/src");
    let include = Regex::new(r"\{\{#(?:include|rustdoc_include)\s+([^}\s]+)\s*\}\}").unwrap();
    let mut count = 0;
    for chapter in markdown_files(&src) {
        for c in include.captures_iter(&read(&chapter)) {
            count += 1;
            let shown = chapter.strip_prefix(&src).unwrap().display().to_string();
            match included(&chapter, &c[1]) {
                Ok(text) => assert!(
                    !text.trim().is_empty(),
                    "book/src/{shown}: {{{{#include {}}}}} includes nothing",
                    &c[1]
                ),
                Err(e) => panic!("book/src/{shown}: {{{{#include {}}}}}: {e}", &c[1]),
            }
        }
    }
    assert!(
        count > 0,
        "no {{{{#include}}}} found: the check would prove nothing"
    );
}

#[test]
fn included_anchors_are_checked() {
    // The checker itself: a missing anchor and an empty one are both caught.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("a.md"),
        "x\n<!-- ANCHOR: full -->\nbody\n<!-- ANCHOR_END: full -->\n<!-- ANCHOR: empty -->\n<!-- ANCHOR_END: empty -->\n",
    )
    .unwrap();
    let chapter = dir.path().join("c.md");
    assert_eq!(included(&chapter, "a.md:full").unwrap(), "body\n");
    assert_eq!(included(&chapter, "a.md:empty").unwrap(), "");
    assert!(included(&chapter, "a.md:nope").is_err());
    assert!(included(&chapter, "missing.md").is_err());
    assert_eq!(included(&chapter, "a.md:1:1").unwrap(), "x");
}

#[test]
fn every_relative_link_and_image_points_at_a_file() {
    let src = root().join("book/src");
    let link = Regex::new(r"!?\[[^\]]*\]\(([^)\s]+)\)").unwrap();
    for chapter in markdown_files(&src) {
        let text = without_code_blocks(&read(&chapter));
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let path = chapter.parent().unwrap().join(file);
            let path = match path.extension().and_then(|e| e.to_str()) {
                Some("html") => path.with_extension("md"),
                _ => path,
            };
            assert!(
                path.is_file(),
                "book/src/{}: the link {target} points at nothing",
                chapter.strip_prefix(&src).unwrap().display()
            );
        }
    }
}

/// `PATH` with the book's tools' virtual environment (`.venv-book/bin`, made from
/// `book/requirements.txt`) in front, when it exists: mdBook comes from there, and so does the
/// `python3` with latex2mathml that the math preprocessor needs.
fn tool_path(root: &Path) -> std::ffi::OsString {
    let mut dirs = vec![root.join(".venv-book/bin")];
    dirs.retain(|d| d.is_dir());
    if let Some(paths) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&paths));
    }
    std::env::join_paths(dirs).expect("PATH entries join")
}

fn on_path(path: &std::ffi::OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| dir.join(program).is_file())
}

/// Whether `python3` (as found on `path`) imports latex2mathml.
fn has_latex2mathml(path: &std::ffi::OsStr) -> bool {
    Command::new("python3")
        .args(["-c", "import latex2mathml"])
        .env("PATH", path)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_built_book_works_in_chromium() {
    let root = root();
    let path = tool_path(&root);
    let needed = ["mdbook", "chromedriver", "chromium", "python3"];
    let mut missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|p| !on_path(&path, p))
        .collect();
    if missing.is_empty() && !has_latex2mathml(&path) {
        missing.push("latex2mathml (Python)");
    }
    if !missing.is_empty() {
        let message = format!(
            "the book's browser check needs {} (python3 -m venv .venv-book && \
             .venv-book/bin/pip install -r book/requirements.txt; \
             apt-get install chromium chromium-driver)",
            missing.join(", ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{message}: required in CI");
        }
        eprintln!("skipped: {message}");
        return;
    }
    // No code block of the book is a doctest (evcxr cells are not programs): `mdbook test`
    // compiles nothing and passes.
    let test = Command::new("mdbook")
        .env("PATH", &path)
        .arg("test")
        .arg(root.join("book"))
        .output()
        .expect("mdbook runs");
    assert!(
        test.status.success(),
        "mdbook test book failed (a code block without `ignore`?):\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let out = tempfile::tempdir().expect("a temporary folder");
    let html = out.path().join("html");
    let build = Command::new("mdbook")
        .env("PATH", &path)
        .arg("build")
        .arg(root.join("book"))
        .arg("--dest-dir")
        .arg(&html)
        .output()
        .expect("mdbook runs");
    assert!(
        build.status.success(),
        "mdbook build book failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let check = Command::new("python3")
        .arg(root.join("scripts/check_book.py"))
        .arg(&html)
        .output()
        .expect("python3 runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    println!("{report}");
    assert!(
        check.status.success(),
        "scripts/check_book.py found problems in the built book:\n{report}"
    );
}
