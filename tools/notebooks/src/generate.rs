//! The generator: `solutions/*.ipynb` → `labs/*.ipynb`.
//!
//! In every code cell, each region from a `// BEGIN SOLUTION[: text]` line to the next
//! `// END SOLUTION` line, markers included, becomes `todo!("text")` (`todo!("your code here")`
//! without text) at the BEGIN marker's indentation. Outputs are cleared and execution counts set
//! to null; everything else is kept as it is.

use std::fs;
use std::path::{Path, PathBuf};

use crate::notebook::{write_atomic, CellRef, Notebook};
use crate::Error;

/// The opening marker (after the line's indentation).
pub const BEGIN: &str = "// BEGIN SOLUTION";
/// The closing marker (after the line's indentation).
pub const END: &str = "// END SOLUTION";
/// Opens a region of hidden grading tests (in a check cell): the region, markers included, is
/// left out of the student notebook; the grader runs it.
pub const HIDDEN_BEGIN: &str = "// BEGIN HIDDEN TESTS";
/// Closes a region of hidden grading tests.
pub const HIDDEN_END: &str = "// END HIDDEN TESTS";
/// The stub's message when the BEGIN marker has no text.
pub const DEFAULT_TODO: &str = "your code here";

/// A marker problem inside one cell; [`lab_notebook`] adds the file and cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerError {
    /// A BEGIN with no END after it in the cell.
    UnmatchedBegin {
        /// 1-based line of the BEGIN.
        line: usize,
    },
    /// An END with no open BEGIN.
    EndWithoutBegin {
        /// 1-based line of the END.
        line: usize,
    },
    /// A BEGIN inside an open region.
    NestedBegin {
        /// 1-based line of the inner BEGIN.
        line: usize,
        /// 1-based line of the BEGIN that opened the region.
        outer: usize,
    },
    /// A line starting with a marker followed by something else than `: text` (BEGIN) or
    /// nothing (END), e.g. `// BEGIN SOLUTIONS`.
    MalformedMarker {
        /// 1-based line of the marker.
        line: usize,
    },
}

impl MarkerError {
    fn in_cell(self, path: &Path, cell: CellRef) -> Error {
        let path = path.to_owned();
        match self {
            MarkerError::UnmatchedBegin { line } => Error::UnmatchedBegin { path, cell, line },
            MarkerError::EndWithoutBegin { line } => Error::EndWithoutBegin { path, cell, line },
            MarkerError::NestedBegin { line, outer } => Error::NestedBegin {
                path,
                cell,
                line,
                outer,
            },
            MarkerError::MalformedMarker { line } => Error::MalformedMarker { path, cell, line },
        }
    }
}

/// The student version of one code cell's source: every solution region replaced by a `todo!()`.
/// Returns the source unchanged when it has no markers.
pub fn strip_solutions(source: &str) -> Result<String, MarkerError> {
    let mut out = String::with_capacity(source.len());
    // (line of the BEGIN, its indentation, its text)
    let mut open: Option<(usize, &str, String)> = None;
    for (i, line) in source.split_inclusive('\n').enumerate() {
        let number = i + 1;
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        let indent = &body[..body.len() - trimmed.len()];
        if let Some(rest) = trimmed.strip_prefix(BEGIN) {
            if let Some((outer, _, _)) = open {
                return Err(MarkerError::NestedBegin {
                    line: number,
                    outer,
                });
            }
            let rest = rest.trim_end();
            let text = if rest.is_empty() {
                DEFAULT_TODO.to_owned()
            } else if let Some(text) = rest.strip_prefix(':') {
                match text.trim() {
                    "" => DEFAULT_TODO.to_owned(),
                    t => t.to_owned(),
                }
            } else {
                return Err(MarkerError::MalformedMarker { line: number });
            };
            open = Some((number, indent, text));
        } else if let Some(rest) = trimmed.strip_prefix(END) {
            if !rest.trim().is_empty() {
                return Err(MarkerError::MalformedMarker { line: number });
            }
            let Some((_, indent, text)) = open.take() else {
                return Err(MarkerError::EndWithoutBegin { line: number });
            };
            out.push_str(indent);
            out.push_str("todo!(\"");
            out.push_str(&escape_format_literal(&text));
            out.push_str("\")");
            out.push_str(ending);
        } else if open.is_none() {
            out.push_str(line);
        }
    }
    match open {
        Some((line, _, _)) => Err(MarkerError::UnmatchedBegin { line }),
        None => Ok(out),
    }
}

/// `source` without its hidden-test regions (`// BEGIN HIDDEN TESTS` … `// END HIDDEN TESTS`,
/// markers included): what a student or a reader sees of a check cell.
pub fn strip_hidden_tests(source: &str) -> Result<String, MarkerError> {
    let mut out = String::with_capacity(source.len());
    let mut open: Option<usize> = None;
    for (i, line) in source.split_inclusive('\n').enumerate() {
        let number = i + 1;
        let trimmed = line.trim();
        if trimmed == HIDDEN_BEGIN {
            if let Some(outer) = open {
                return Err(MarkerError::NestedBegin {
                    line: number,
                    outer,
                });
            }
            open = Some(number);
        } else if trimmed == HIDDEN_END {
            if open.take().is_none() {
                return Err(MarkerError::EndWithoutBegin { line: number });
            }
        } else if trimmed.starts_with("// BEGIN HIDDEN") || trimmed.starts_with("// END HIDDEN") {
            return Err(MarkerError::MalformedMarker { line: number });
        } else if open.is_none() {
            out.push_str(line);
        }
    }
    match open {
        Some(line) => Err(MarkerError::UnmatchedBegin { line }),
        None => Ok(out),
    }
}

/// `text` as the inside of a `todo!("…")` literal: quotes and backslashes escaped, braces doubled
/// (the literal is a format string).
fn escape_format_literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '{' => s.push_str("{{"),
            '}' => s.push_str("}}"),
            c => s.push(c),
        }
    }
    s
}

/// The student notebook for a solution notebook read from `path` (named in errors).
pub fn lab_notebook(solution: &Notebook, path: &Path) -> Result<Notebook, Error> {
    let mut lab = solution.clone();
    for cell in solution.code_cells() {
        let source = cell.source();
        let stripped = strip_solutions(&source)
            .and_then(|s| strip_hidden_tests(&s))
            .map_err(|e| e.in_cell(path, cell.at().clone()))?;
        if stripped != source {
            lab.set_source(cell.at().index, &stripped);
        }
    }
    lab.clear_outputs();
    Ok(lab)
}

/// The solution notebooks in `dir`: every `*.ipynb`, sorted by name.
pub fn solution_paths(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "ipynb") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// One lab as the generator would write it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLab {
    /// The solution it comes from.
    pub solution: PathBuf,
    /// Where it goes: `labs/<same file name>`.
    pub lab: PathBuf,
    /// The file's contents.
    pub contents: String,
}

/// Every lab for the solutions in `solutions`, in memory: nothing is written unless all of them
/// generate.
pub fn plan(solutions: &Path, labs: &Path) -> Result<Vec<PlannedLab>, Error> {
    solution_paths(solutions)?
        .into_iter()
        .map(|solution| {
            let nb = Notebook::load(&solution)?;
            let contents = lab_notebook(&nb, &solution)?.to_json_string();
            let lab = labs.join(solution.file_name().expect("a listed file has a name"));
            Ok(PlannedLab {
                solution,
                lab,
                contents,
            })
        })
        .collect()
}

/// What [`generate`] did to one lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file did not exist.
    Created,
    /// The file existed with other contents.
    Updated,
    /// The file already had these contents (left untouched).
    Unchanged,
}

/// Writes every lab (atomically, only when its contents change). Never deletes anything.
pub fn generate(solutions: &Path, labs: &Path) -> Result<Vec<(PlannedLab, Written)>, Error> {
    let planned = plan(solutions, labs)?;
    fs::create_dir_all(labs).map_err(|source| Error::Io {
        path: labs.to_owned(),
        source,
    })?;
    let mut done = Vec::new();
    for p in planned {
        let written = match fs::read_to_string(&p.lab) {
            Ok(old) if old == p.contents => Written::Unchanged,
            Ok(_) => Written::Updated,
            Err(_) => Written::Created,
        };
        if written != Written::Unchanged {
            write_atomic(&p.lab, &p.contents)?;
        }
        done.push((p, written));
    }
    Ok(done)
}

/// A lab that does not match its solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// `labs/` has no file for this solution.
    Missing {
        /// The lab that should exist.
        lab: PathBuf,
        /// Its solution.
        solution: PathBuf,
    },
    /// The lab differs from what the generator writes.
    OutOfDate {
        /// The lab.
        lab: PathBuf,
        /// Its solution.
        solution: PathBuf,
    },
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Missing { lab, solution } => write!(
                f,
                "{} is missing (generated from {})",
                lab.display(),
                solution.display()
            ),
            Stale::OutOfDate { lab, solution } => write!(
                f,
                "{} is out of date with {}",
                lab.display(),
                solution.display()
            ),
        }
    }
}

/// The labs that `generate` would create or change; empty when `labs/` is in sync.
pub fn check(solutions: &Path, labs: &Path) -> Result<Vec<Stale>, Error> {
    let mut stale = Vec::new();
    for p in plan(solutions, labs)? {
        match fs::read_to_string(&p.lab) {
            Ok(old) if old == p.contents => {}
            Ok(_) => stale.push(Stale::OutOfDate {
                lab: p.lab,
                solution: p.solution,
            }),
            Err(_) => stale.push(Stale::Missing {
                lab: p.lab,
                solution: p.solution,
            }),
        }
    }
    Ok(stale)
}

/// `labs/*.ipynb` files with no solution of the same name (the generator leaves them alone).
pub fn orphans(solutions: &Path, labs: &Path) -> Result<Vec<PathBuf>, Error> {
    if !labs.is_dir() {
        return Ok(Vec::new());
    }
    Ok(solution_paths(labs)?
        .into_iter()
        .filter(|lab| {
            !lab.file_name()
                .is_some_and(|name| solutions.join(name).is_file())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_become_todo_at_the_marker_indentation() {
        let src = "fn f() -> f64 {\n    let a = 1.0;\n    // BEGIN SOLUTION: add one\n    a + 1.0\n    // END SOLUTION\n}";
        assert_eq!(
            strip_solutions(src).unwrap(),
            "fn f() -> f64 {\n    let a = 1.0;\n    todo!(\"add one\")\n}"
        );
    }

    #[test]
    fn no_text_gives_the_default_message_and_braces_are_escaped() {
        assert_eq!(
            strip_solutions("// BEGIN SOLUTION\nx\n// END SOLUTION\n").unwrap(),
            "todo!(\"your code here\")\n"
        );
        assert_eq!(
            strip_solutions("\t// BEGIN SOLUTION:  use {x} and \"y\" \\ \n\tx\n\t// END SOLUTION")
                .unwrap(),
            "\ttodo!(\"use {{x}} and \\\"y\\\" \\\\\")"
        );
    }

    #[test]
    fn crlf_and_several_regions() {
        let src = "a\r\n  // BEGIN SOLUTION: one\r\n  x\r\n  // END SOLUTION\r\nb\r\n// BEGIN SOLUTION\r\n// END SOLUTION\r\n";
        assert_eq!(
            strip_solutions(src).unwrap(),
            "a\r\n  todo!(\"one\")\r\nb\r\ntodo!(\"your code here\")\r\n"
        );
    }

    #[test]
    fn marker_errors_name_the_line() {
        assert_eq!(
            strip_solutions("a\n// BEGIN SOLUTION\nb\n"),
            Err(MarkerError::UnmatchedBegin { line: 2 })
        );
        assert_eq!(
            strip_solutions("a\nb\n  // END SOLUTION\n"),
            Err(MarkerError::EndWithoutBegin { line: 3 })
        );
        assert_eq!(
            strip_solutions("// BEGIN SOLUTION\n// BEGIN SOLUTION: inner\n// END SOLUTION\n"),
            Err(MarkerError::NestedBegin { line: 2, outer: 1 })
        );
        assert_eq!(
            strip_solutions("// BEGIN SOLUTIONS\n"),
            Err(MarkerError::MalformedMarker { line: 1 })
        );
        assert_eq!(
            strip_solutions("// BEGIN SOLUTION\nx\n// END SOLUTION here\n"),
            Err(MarkerError::MalformedMarker { line: 3 })
        );
    }

    #[test]
    fn markers_must_start_the_line() {
        let src = "let s = \"// BEGIN SOLUTION\"; // END SOLUTION\n";
        assert_eq!(strip_solutions(src).unwrap(), src);
    }

    #[test]
    fn hidden_tests_are_left_out() {
        let src = "check(f)\n// BEGIN HIDDEN TESTS\n.with_hidden(|| check(f))\n// END HIDDEN TESTS";
        assert_eq!(strip_hidden_tests(src).unwrap(), "check(f)\n");
        assert_eq!(
            strip_hidden_tests("a\n// BEGIN HIDDEN TESTS\nb\n"),
            Err(MarkerError::UnmatchedBegin { line: 2 })
        );
        assert_eq!(
            strip_hidden_tests("a\n// END HIDDEN TESTS\n"),
            Err(MarkerError::EndWithoutBegin { line: 2 })
        );
        assert_eq!(
            strip_hidden_tests("// BEGIN HIDDEN TEST\n"),
            Err(MarkerError::MalformedMarker { line: 1 })
        );
    }
}
