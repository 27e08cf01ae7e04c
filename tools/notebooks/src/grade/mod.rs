//! Grading one submitted notebook against its pristine solution (`kto-lab-notebooks grade-one`,
//! run by [`crate::gradebook`] once per submission, each in its own process).
//!
//! The notebook that runs is built from the **solution**, not from the submission: every cell
//! is the solution's, except the exercise cells (metadata `kto_lab.exercise`), which are the
//! student's cell for that exercise — found by cell id, else by the same exercise metadata, else
//! by position when the submission has the lab's cells (a notebook saved without ids, as Colab
//! and nbformat 4.4 do), the last copy when an id appears twice (what the student's kernel ran
//! last), and the lab's `todo!()` stub when the student deleted it. So an edited or deleted
//! check cell counts for nothing, and cells a student added are not run.
//!
//! **The judge is this process; the student's code runs in another.** The kernel's library is
//! built with the `exam` feature: there, the graded exercises' reference answers are
//! crate-private (a submission that calls one does not compile) and a check cell does not check
//! but answers questions on a Unix socket this process opened
//! (`kto_lab::checks::exam`). For each check cell this process runs the check itself
//! — the visible cases and the hidden ones, drawn from this run's seed, which the student's
//! process never holds — sending only each call's inputs and reading back what the student's
//! function returned. Nothing the student's process prints, and no state of it, reaches the
//! verdict.
//!
//! One kernel runs the cells in order; each cell but the `:dep` cell has a time limit and an
//! output cap. A compile error, a panic, a time-out or a `std::process::exit` is charged to the
//! exercise whose cell it happened in. When the kernel's process dies (time-out, exit), evcxr
//! restarts it with every variable gone: the setup cells before the next cell run again, so the
//! other exercises are graded as if nothing happened.

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use kto_lab::checks::exam::{self, JudgeError};
use kto_lab::checks::{CheckResult, Status as CheckStatus};

use crate::generate::{strip_hidden_tests, strip_solutions};
use crate::notebook::{write_atomic, CellRef, Notebook};
use crate::run::{CellRun, Kernel, Limits, Runner};

mod judge;
mod plan;
#[cfg(test)]
mod tests;
mod verdict;

use judge::*;
use plan::*;
use verdict::*;

/// Why a submission could not be graded at all (the grader's fault or its inputs').
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// The solution notebook is unreadable or has no exercises.
    #[error(transparent)]
    Notebook(#[from] crate::Error),
    /// The kernel could not be started or a file could not be written.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    /// The solution notebook's grading metadata is wrong.
    #[error("{}: {message}", path.display())]
    Metadata {
        /// The solution notebook.
        path: PathBuf,
        /// What is wrong, naming the cell.
        message: String,
    },
}

/// An exercise as the solution notebook declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exercise {
    /// Its stable id (`1.1`).
    pub id: String,
    /// What it is worth.
    pub points: f64,
}

/// How an exercise came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every visible and hidden case passed: full points.
    Passed,
    /// A visible case failed.
    Failed,
    /// The visible cases passed, the hidden ones did not.
    HiddenFailed,
    /// The student's code called the library's reference for this exercise.
    ReferenceCall,
    /// The exercise still holds its `todo!()`.
    NotDone,
    /// The exercise cell is not in the submission.
    Missing,
    /// The student's cell, or the check calling it, does not compile.
    CompileError,
    /// The student's cell panicked outside the check.
    Panicked,
    /// A cell ran past the time limit.
    TimedOut,
    /// The kernel's process ended (`std::process::exit`, a crash).
    Exited,
    /// The check ran but its report did not arrive on the grader's channel.
    NoResult,
    /// The submission's notebook cannot be read.
    Unreadable,
    /// No notebook for this lab was submitted.
    NotSubmitted,
    /// The grader failed on this submission (its log says why).
    GraderError,
}

impl Status {
    /// As the gradebook writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::HiddenFailed => "hidden-failed",
            Status::ReferenceCall => "reference-call",
            Status::NotDone => "not-done",
            Status::Missing => "missing",
            Status::CompileError => "compile-error",
            Status::Panicked => "panicked",
            Status::TimedOut => "timed-out",
            Status::Exited => "exited",
            Status::NoResult => "no-result",
            Status::Unreadable => "unreadable",
            Status::NotSubmitted => "not-submitted",
            Status::GraderError => "grader-error",
        }
    }
}

/// One case of a check, as the feedback shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// What was asked.
    pub name: String,
    /// The reference's answer.
    pub expected: String,
    /// The student's.
    pub got: String,
    /// Whether they agree.
    pub ok: bool,
}

/// The grade of one exercise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExerciseGrade {
    /// The exercise's id.
    pub id: String,
    /// Its title as its check names it (empty when the check did not run).
    pub title: String,
    /// Points earned.
    pub points: f64,
    /// Points possible.
    pub max: f64,
    /// How it came out.
    pub status: Status,
    /// Why, in one line (empty when passed).
    pub reason: String,
    /// The check's cases, hidden ones included.
    pub cases: Vec<CaseResult>,
    /// The check's hint.
    pub hint: String,
}

/// The grade of one submitted notebook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookGrade {
    /// Every exercise, in notebook order.
    pub exercises: Vec<ExerciseGrade>,
    /// Things the instructor may want to know (output truncated, kernel restarted …).
    pub notes: Vec<String>,
}

/// The exercises a solution notebook declares, in order.
pub fn exercises(solution: &Notebook, path: &Path) -> Result<Vec<Exercise>, GradeError> {
    let mut out: Vec<Exercise> = Vec::new();
    let mut checks = Vec::new();
    for cell in solution.code_cells() {
        let meta = &cell.json()["metadata"]["kto_lab"];
        if let Some(id) = meta["exercise"].as_str() {
            let points = meta["points"]
                .as_f64()
                .filter(|p| *p > 0.0)
                .ok_or_else(|| GradeError::Metadata {
                    path: path.to_owned(),
                    message: format!(
                        "{}: field `metadata.kto_lab.points`: expected a positive number",
                        cell.at()
                    ),
                })?;
            if out.iter().any(|e| e.id == id) {
                return Err(GradeError::Metadata {
                    path: path.to_owned(),
                    message: format!("{}: exercise id `{id}` used twice", cell.at()),
                });
            }
            out.push(Exercise {
                id: id.to_owned(),
                points,
            });
        }
        if let Some(id) = meta["check"].as_str() {
            checks.push((id.to_owned(), cell.at().clone()));
        }
    }
    for e in &out {
        if !checks.iter().any(|(id, _)| *id == e.id) {
            return Err(GradeError::Metadata {
                path: path.to_owned(),
                message: format!("exercise `{}` has no check cell", e.id),
            });
        }
    }
    if let Some((id, at)) = checks
        .iter()
        .find(|(id, _)| !out.iter().any(|e| e.id == *id))
    {
        return Err(GradeError::Metadata {
            path: path.to_owned(),
            message: format!("{at}: check cell for unknown exercise `{id}`"),
        });
    }
    Ok(out)
}

/// Settings of one grading run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time limit of each cell (the `:dep` cell excepted).
    pub timeout: Duration,
    /// Bytes kept of each cell's stdout and stderr.
    pub output_cap: usize,
    /// Seed of the hidden tests' inputs.
    pub seed: u64,
}

/// A fresh random number (the per-run seeds and per-cell secrets), from the OS-seeded hasher.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Each exercise's cells, by exercise id, in the order they ran.
type SeenByExercise = Vec<(String, Seen)>;

/// What happened to one exercise's cells.
#[derive(Default)]
struct Seen {
    pub(super) answer: Option<CellRun>,
    pub(super) check: Option<(CellRun, Result<CheckResult, JudgeError>)>,
}

/// Grades `submission` against `solution`, running it in `work_dir` with the kernel building in
/// `build_dir`.
pub fn grade_notebook(
    solution_path: &Path,
    submission_path: &Path,
    work_dir: &Path,
    build_dir: &Path,
    settings: &Settings,
) -> Result<NotebookGrade, GradeError> {
    let solution = Notebook::load(solution_path)?;
    let exercises = exercises(&solution, solution_path)?;
    let submission = match Notebook::load(submission_path) {
        Ok(nb) => nb,
        Err(e) => {
            return Ok(all_exercises(
                &exercises,
                Status::Unreadable,
                &e.to_string(),
            ));
        }
    };
    let (cells, missing, plan_notes) = plan(&solution, solution_path, &submission)?;

    let _runner = Runner::new(build_dir)?;
    if let Some(root) = solution_path.parent().and_then(Path::parent) {
        _runner.seed_lockfile(&root.join("Cargo.lock"))?;
    }
    fs::create_dir_all(work_dir).map_err(|source| crate::Error::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let work_dir = work_dir.canonicalize().map_err(|source| crate::Error::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let work_dir = work_dir.as_path();
    // The kernel's process confines itself from these (crate::sandbox); the cgroup bounds its
    // memory and tasks and is emptied when this function returns.
    fs::create_dir_all(build_dir.join("target")).map_err(|source| crate::Error::Io {
        path: build_dir.to_owned(),
        source,
    })?;
    let report = work_dir.with_extension("sandbox-report");
    let mut spec = crate::sandbox::SandboxSpec::new(
        work_dir,
        _runner.build_dir(),
        crate::sandbox::rust_sysroot().ok().as_deref(),
    );
    spec.report = report.clone();
    let _ = fs::remove_file(&report);
    let cgroup =
        crate::sandbox::Cgroup::create(&format!("kto-lab-grade-{}", std::process::id()), &spec);
    for (k, v) in spec.to_env() {
        std::env::set_var(k, v);
    }
    let mut sandbox_notes = Vec::new();
    match &cgroup {
        Ok(cg) => {
            let (k, v) = cg.env();
            std::env::set_var(k, v);
            sandbox_notes.extend(cg.missing().iter().map(|m| format!("sandbox: {m}")));
        }
        Err(e) => sandbox_notes.push(format!("sandbox: no cgroup ({e})")),
    }
    let previous = std::env::current_dir().ok();
    std::env::set_current_dir(work_dir).map_err(|source| crate::Error::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let result = run_plan(&cells, solution_path, settings);
    if let Some(dir) = previous {
        let _ = std::env::set_current_dir(dir);
    }
    let (seen, run_notes) = result?;
    drop(cgroup);
    let mut notes = plan_notes;
    notes.extend(run_notes);
    notes.extend(sandbox_notes);
    notes.extend(
        crate::sandbox::report(&report)
            .into_iter()
            .filter(|l| l.starts_with("not enforced"))
            .map(|l| format!("sandbox: {l}")),
    );

    let mut grades = Vec::new();
    for e in &exercises {
        let s = seen.iter().find(|(id, _)| *id == e.id).map(|(_, s)| s);
        grades.push(grade_exercise(e, s, missing.contains(&e.id)));
    }
    notes.dedup();
    Ok(NotebookGrade {
        exercises: grades,
        notes,
    })
}

/// Every exercise of a notebook with the same status and reason, 0 points (a notebook that could
/// not be graded, or was not submitted).
pub fn all_exercises(exercises: &[Exercise], status: Status, reason: &str) -> NotebookGrade {
    NotebookGrade {
        exercises: exercises
            .iter()
            .map(|e| ExerciseGrade {
                id: e.id.clone(),
                title: String::new(),
                points: 0.0,
                max: e.points,
                status,
                reason: reason.to_owned(),
                cases: Vec::new(),
                hint: String::new(),
            })
            .collect(),
        notes: Vec::new(),
    }
}

/// Writes `grade` as JSON to `path`, atomically.
pub fn write_grade(path: &Path, grade: &NotebookGrade) -> Result<(), crate::Error> {
    let text = serde_json::to_string_pretty(grade).expect("a grade serializes");
    write_atomic(path, &text)
}
