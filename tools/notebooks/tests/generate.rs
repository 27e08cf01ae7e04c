//! The generator on fixture notebooks (tests/data): the lab it writes, its errors (exact
//! messages), what it touches on disk, and the binary's `generate` / `check`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kto_lab_notebooks::generate::{self, Stale, Written};
use kto_lab_notebooks::notebook::Notebook;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kto-lab-notebooks"))
}

/// Generates the lab for `tests/data/bad/<name>` and returns the error message, with the data
/// folder shown as `tests/data`.
fn error_for(name: &str) -> String {
    let path = data().join("bad").join(name);
    let err = Notebook::load(&path)
        .and_then(|nb| generate::lab_notebook(&nb, &path))
        .expect_err("a bad fixture must not generate");
    err.to_string()
        .replace(&data().display().to_string(), "tests/data")
}

#[test]
fn unmatched_begin() {
    assert_eq!(
        error_for("unmatched_begin.ipynb"),
        "tests/data/bad/unmatched_begin.ipynb: cells[2] (id bad-02), line 2: `// BEGIN SOLUTION` has no matching `// END SOLUTION` in this cell"
    );
}

#[test]
fn end_without_begin() {
    assert_eq!(
        error_for("end_without_begin.ipynb"),
        "tests/data/bad/end_without_begin.ipynb: cells[1] (id bad-02), line 3: `// END SOLUTION` without a `// BEGIN SOLUTION` before it"
    );
}

#[test]
fn nested_begin() {
    assert_eq!(
        error_for("nested_begin.ipynb"),
        "tests/data/bad/nested_begin.ipynb: cells[2] (id bad-03), line 4: nested `// BEGIN SOLUTION` (the region opened at line 2 is not closed; markers never nest)"
    );
}

#[test]
fn malformed_marker_in_a_cell_without_id() {
    assert_eq!(
        error_for("malformed_marker.ipynb"),
        "tests/data/bad/malformed_marker.ipynb: cells[0] (no id), line 2: malformed marker: write `// BEGIN SOLUTION`, `// BEGIN SOLUTION: text` or `// END SOLUTION`"
    );
}

#[test]
fn malformed_json() {
    assert_eq!(
        error_for("malformed_json.ipynb"),
        "tests/data/bad/malformed_json.ipynb:7:2: malformed JSON: trailing comma"
    );
}

#[test]
fn not_a_notebook() {
    assert_eq!(
        error_for("not_a_notebook.ipynb"),
        "tests/data/bad/not_a_notebook.ipynb: not a Jupyter notebook: no `nbformat` number"
    );
    assert_eq!(
        error_for("cell_without_source.ipynb"),
        "tests/data/bad/cell_without_source.ipynb: not a Jupyter notebook: cells[1] (id bad-02): `source` is neither a string nor a list of strings"
    );
}

#[test]
fn a_missing_file_is_named() {
    let path = data().join("bad/no_such.ipynb");
    let err = Notebook::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
}

#[test]
fn notebooks_round_trip_as_jupyter_writes_them() {
    // The fixture was written by Python's json.dumps(indent=1, sort_keys=True,
    // ensure_ascii=False), like Jupyter.
    let path = data().join("solutions/00_fixture.ipynb");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        Notebook::parse(&text, &path).unwrap().to_json_string(),
        text
    );
}

#[test]
fn the_fixture_lab_is_the_solution_with_stubs() {
    let path = data().join("solutions/00_fixture.ipynb");
    let solution = Notebook::load(&path).unwrap();
    let lab = generate::lab_notebook(&solution, &path).unwrap();
    // Only the two exercise cells change.
    let changed: Vec<String> = solution
        .cells()
        .iter()
        .zip(lab.cells())
        .filter(|(s, l)| s.json() != l.json())
        .map(|(s, l)| format!("{}:\n{}", s.at(), l.source()))
        .collect();
    insta::assert_snapshot!(changed.join("\n---\n"), @r#"
    cells[3] (id fix-04):
    fn square(x: f64) -> f64 {
        todo!("multiply x by itself")
    }
    ---
    cells[7] (id fix-08):
    fn mean(xs: &[f64]) -> f64 {
        let n = xs.len() as f64;
        todo!("your code here")
    }
    "#);
}

#[test]
fn outputs_are_cleared_and_everything_else_kept() {
    let path = Path::new("executed.ipynb");
    let text = r#"{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "id": "c1",
   "metadata": {"tags": ["x"], "zeta": 1, "alpha": 2},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}],
   "source": "let x = 1;\n// BEGIN SOLUTION: é\nx\n// END SOLUTION"
  },
  {"cell_type": "raw", "id": "r", "metadata": {}, "source": ["// BEGIN SOLUTION\n"]}
 ],
 "metadata": {"custom": {"b": [1, 2], "a": null}},
 "nbformat": 4,
 "nbformat_minor": 5
}"#;
    let lab = generate::lab_notebook(&Notebook::parse(text, path).unwrap(), path).unwrap();
    // Key order is kept (not sorted), a string source stays a string, raw cells are untouched.
    insta::assert_snapshot!(lab.to_json_string(), @r#"
    {
     "cells": [
      {
       "cell_type": "code",
       "execution_count": null,
       "id": "c1",
       "metadata": {
        "tags": [
         "x"
        ],
        "zeta": 1,
        "alpha": 2
       },
       "outputs": [],
       "source": "let x = 1;\ntodo!(\"é\")"
      },
      {
       "cell_type": "raw",
       "id": "r",
       "metadata": {},
       "source": [
        "// BEGIN SOLUTION\n"
       ]
      }
     ],
     "metadata": {
      "custom": {
       "b": [
        1,
        2
       ],
       "a": null
      }
     },
     "nbformat": 4,
     "nbformat_minor": 5
    }
    "#);
}

/// A scratch `solutions/` with the fixture and a `labs/` holding an unrelated file.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let solutions = dir.path().join("solutions");
    let labs = dir.path().join("labs");
    fs::create_dir_all(&solutions).unwrap();
    fs::create_dir_all(&labs).unwrap();
    fs::copy(
        data().join("solutions/00_fixture.ipynb"),
        solutions.join("00_fixture.ipynb"),
    )
    .unwrap();
    fs::write(solutions.join("README.md"), "not a notebook").unwrap();
    fs::write(labs.join("README.md"), "keep me").unwrap();
    fs::write(labs.join("99_extra.ipynb"), "not generated").unwrap();
    (dir, solutions, labs)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn generate_writes_only_labs_of_solutions_and_is_idempotent() {
    let (_dir, solutions, labs) = scratch();
    let lab = labs.join("00_fixture.ipynb");
    assert_eq!(
        generate::check(&solutions, &labs).unwrap(),
        vec![Stale::Missing {
            lab: lab.clone(),
            solution: solutions.join("00_fixture.ipynb")
        }]
    );

    let done = generate::generate(&solutions, &labs).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1, Written::Created);
    assert_eq!(
        listing(&labs),
        ["00_fixture.ipynb", "99_extra.ipynb", "README.md"]
    );
    assert_eq!(
        fs::read_to_string(labs.join("README.md")).unwrap(),
        "keep me"
    );
    assert_eq!(
        fs::read_to_string(&lab).unwrap(),
        fs::read_to_string(data().join("labs/00_fixture.ipynb")).unwrap()
    );
    assert!(generate::check(&solutions, &labs).unwrap().is_empty());
    assert_eq!(
        generate::orphans(&solutions, &labs).unwrap(),
        vec![labs.join("99_extra.ipynb")]
    );

    let again = generate::generate(&solutions, &labs).unwrap();
    assert_eq!(again[0].1, Written::Unchanged);

    fs::write(&lab, "edited by hand").unwrap();
    let stale = generate::check(&solutions, &labs).unwrap();
    assert_eq!(
        stale.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "{} is out of date with {}",
            lab.display(),
            solutions.join("00_fixture.ipynb").display()
        )]
    );
    assert_eq!(
        generate::generate(&solutions, &labs).unwrap()[0].1,
        Written::Updated
    );
    // No temporary file is left behind.
    assert_eq!(
        listing(&labs),
        ["00_fixture.ipynb", "99_extra.ipynb", "README.md"]
    );
}

#[test]
fn one_bad_solution_writes_nothing() {
    let (_dir, solutions, labs) = scratch();
    fs::copy(
        data().join("bad/nested_begin.ipynb"),
        solutions.join("01_nested.ipynb"),
    )
    .unwrap();
    assert!(generate::generate(&solutions, &labs).is_err());
    assert_eq!(listing(&labs), ["99_extra.ipynb", "README.md"]);
}

#[test]
fn the_binary_generates_checks_and_fails_in_one_line() {
    let (dir, solutions, labs) = scratch();
    let run = |args: &[&str]| {
        let out = bin().args(args).current_dir(dir.path()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = run(&["check"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "labs/00_fixture.ipynb is missing (generated from solutions/00_fixture.ipynb)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: labs/99_extra.ipynb has no solution notebook"),
        "{stderr}"
    );

    assert_eq!(
        run(&["generate"]),
        (
            Some(0),
            "created: labs/00_fixture.ipynb\n".into(),
            String::new()
        )
    );
    let (code, stdout, _) = run(&["check"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "labs are in sync with solutions\n")
    );

    fs::copy(
        data().join("bad/unmatched_begin.ipynb"),
        solutions.join("02_bad.ipynb"),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["generate"]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: solutions/02_bad.ipynb: cells[2] (id bad-02), line 2: `// BEGIN SOLUTION` has no matching `// END SOLUTION` in this cell\n"
    );
    assert!(!labs.join("02_bad.ipynb").exists());

    let (code, _, stderr) = run(&["run", "labs/no_such.ipynb"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: labs/no_such.ipynb: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_markers_are_the_library_s() {
    use kto_lab::checks::Status;
    use kto_lab_notebooks::checks::{FAILED, NOT_DONE, PASSED};
    assert_eq!(Status::Passed.marker(), PASSED);
    assert_eq!(Status::Failed.marker(), FAILED);
    assert_eq!(Status::NotDone.marker(), NOT_DONE);
}
