//! The kto-lab notebook tooling, kept out of the `kto-lab` library so that a notebook's
//! `:dep kto-lab` stays light.
//!
//! - [`generate`]: the student notebooks (`labs/`) from the solution notebooks (`solutions/`):
//!   every `// BEGIN SOLUTION[: text]` … `// END SOLUTION` region becomes `todo!("text")`.
//! - [`run`]: executes a notebook's code cells headless with the `evcxr` engine (the one behind
//!   the Jupyter kernel), capturing each cell's outputs, errors, panics and check results.
//! - [`grade`], [`gradebook`]: the instructor's autograder: submissions → `gradebook.csv` and
//!   per-student feedback, with check cells restored from the solutions and hidden tests.
//! - [`book`]: the book's lab chapters (`book/src/labs/`) from executed solution notebooks.
//! - [`normalize`]: turns a run into text stable across machines, for snapshot tests.
//!
//! A program that uses [`run`] must call [`evcxr::runtime_hook`] first thing in `main`: evcxr
//! re-executes the current binary to run compiled cells.

pub mod book;
pub mod checks;
pub mod generate;
pub mod grade;
pub mod gradebook;
pub mod normalize;
pub mod notebook;
pub mod run;
pub mod sandbox;

use std::path::PathBuf;

pub use notebook::{CellRef, Notebook};

/// Everything that can go wrong reading, generating or writing notebooks.
///
/// Each message is one line naming the file, and for marker problems the cell (index and id)
/// and the line within the cell's source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}:{line}:{column}: malformed JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The file is JSON but not an nbformat 4 notebook.
    #[error("{}: not a Jupyter notebook: {reason}", path.display())]
    NotANotebook {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong (naming the cell when it is a cell's fault).
        reason: String,
    },
    /// A `// BEGIN SOLUTION` with no `// END SOLUTION` after it in the same cell.
    #[error(
        "{}: {cell}, line {line}: `// BEGIN SOLUTION` has no matching `// END SOLUTION` in this cell",
        path.display()
    )]
    UnmatchedBegin {
        /// The notebook.
        path: PathBuf,
        /// The cell.
        cell: CellRef,
        /// 1-based line in the cell's source.
        line: usize,
    },
    /// A `// END SOLUTION` with no open `// BEGIN SOLUTION`.
    #[error(
        "{}: {cell}, line {line}: `// END SOLUTION` without a `// BEGIN SOLUTION` before it",
        path.display()
    )]
    EndWithoutBegin {
        /// The notebook.
        path: PathBuf,
        /// The cell.
        cell: CellRef,
        /// 1-based line in the cell's source.
        line: usize,
    },
    /// A `// BEGIN SOLUTION` inside an open region.
    #[error(
        "{}: {cell}, line {line}: nested `// BEGIN SOLUTION` (the region opened at line {outer} is not closed; markers never nest)",
        path.display()
    )]
    NestedBegin {
        /// The notebook.
        path: PathBuf,
        /// The cell.
        cell: CellRef,
        /// 1-based line of the inner BEGIN.
        line: usize,
        /// 1-based line of the BEGIN that opened the region.
        outer: usize,
    },
    /// A marker line with extra text (`// BEGIN SOLUTIONS`, `// END SOLUTION here`).
    #[error(
        "{}: {cell}, line {line}: malformed marker: write `// BEGIN SOLUTION`, `// BEGIN SOLUTION: text` or `// END SOLUTION`",
        path.display()
    )]
    MalformedMarker {
        /// The notebook.
        path: PathBuf,
        /// The cell.
        cell: CellRef,
        /// 1-based line in the cell's source.
        line: usize,
    },
}
