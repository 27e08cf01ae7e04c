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

/// What a cell of the graded notebook is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// The `:dep` cell: no time limit (the first build takes minutes).
    Dep,
    /// A cell of the solution's: runs again after a kernel restart.
    Setup,
    /// The student's cell of an exercise.
    Answer(String),
    /// The check cell of an exercise: the judge runs its check while it serves.
    Check(String),
}

struct PlanCell {
    at: CellRef,
    role: Role,
    source: String,
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

/// `kto_lab::` and `checks::` at the start of a path become `::kto_lab::` and
/// `::kto_lab::checks::`, so that nothing the student defined can stand in for them.
fn absolute_paths(source: &str) -> String {
    let re = regex::Regex::new(r"(^|[^\w:])(kto_lab::|checks::)").expect("valid regex");
    re.replace_all(source, |c: &regex::Captures| {
        let to = if &c[2] == "checks::" {
            "::kto_lab::checks::"
        } else {
            "::kto_lab::"
        };
        format!("{}{to}", &c[1])
    })
    .into_owned()
}

/// Relative `path = "…"` in a `:dep` line made absolute, relative to `dir`.
fn absolute_dep(source: &str, dir: &Path) -> String {
    let re = regex::Regex::new(r#"path\s*=\s*"([^"]*)""#).expect("valid regex");
    re.replace_all(source, |c: &regex::Captures| {
        let p = Path::new(&c[1]);
        let abs = if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p).canonicalize().unwrap_or_else(|_| dir.join(p))
        };
        format!("path = {:?}", abs.display().to_string())
    })
    .into_owned()
}

/// The cells to run, the exercises whose cell the submission lacks, and notes on how the
/// student's cells were found.
type Plan = (Vec<PlanCell>, Vec<String>, Vec<String>);

fn plan(
    solution: &Notebook,
    solution_path: &Path,
    submission: &Notebook,
) -> Result<Plan, GradeError> {
    let dir = solution_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|source| crate::Error::Io {
            path: solution_path.to_owned(),
            source,
        })?;
    let student = submission.code_cells();
    let solution_cells = solution.code_cells();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    let mut cells = Vec::new();
    for cell in solution.code_cells() {
        let meta = &cell.json()["metadata"]["kto_lab"];
        let source = cell.source();
        let (role, source) = if let Some(id) = meta["exercise"].as_str() {
            let theirs = students_cell(&student, &solution_cells, &cell, id, &mut notes);
            let source = match theirs {
                // A Rust statement first: evcxr takes `:command` and `!shell` lines only at the
                // start of a cell, so a student's `:dep` or `!rm` is a compile error, not a
                // command run by the grader (same line, so error positions stay the student's).
                Some(c) => format!("let _ = (); {}", c.source()),
                None => {
                    missing.push(id.to_owned());
                    strip_solutions(&source).map_err(|e| GradeError::Metadata {
                        path: solution_path.to_owned(),
                        message: format!("{}: {e:?}", cell.at()),
                    })?
                }
            };
            (Role::Answer(id.to_owned()), source)
        } else if let Some(id) = meta["check"].as_str() {
            // In the exam build the check call answers the judge's questions; its hidden-test
            // region is the judge's business (it runs the hidden cases itself).
            let shown = strip_hidden_tests(&source).unwrap_or(source);
            // A statement first: a cell starting with `:` (as `::kto_lab::…` does) would be
            // taken for a kernel command.
            let code = format!("let _ = (); {}", absolute_paths(shown.trim_end()));
            (Role::Check(id.to_owned()), code)
        } else if source.trim_start().starts_with(":dep") {
            (Role::Dep, exam_dep(&absolute_dep(&source, &dir)))
        } else if uses_answer_key(&source) {
            // A demonstration of the library's own answers (lab 1's loss table, lab 4's
            // advice): it cannot compile against the exam build, and nothing graded needs it.
            continue;
        } else {
            let shown = strip_hidden_tests(&source).unwrap_or(source);
            (Role::Setup, shown)
        };
        cells.push(PlanCell {
            at: cell.at().clone(),
            role,
            source,
        });
    }
    Ok((without_demo_cells(cells), missing, notes))
}

/// The student's cell for exercise `id` (the solution's cell `cell`): the last code cell with the
/// same id (a duplicated id is noted), else the last with the same `kto_lab.exercise` metadata,
/// else — when the submission has exactly the lab's code cells, as a notebook saved without
/// ids does — the one at the same position.
fn students_cell<'a>(
    student: &'a [crate::notebook::Cell<'a>],
    solution_cells: &[crate::notebook::Cell<'_>],
    cell: &crate::notebook::Cell<'_>,
    id: &str,
    notes: &mut Vec<String>,
) -> Option<&'a crate::notebook::Cell<'a>> {
    if let Some(cell_id) = &cell.at().id {
        let same: Vec<_> = student
            .iter()
            .filter(|c| c.at().id.as_ref() == Some(cell_id))
            .collect();
        if same.len() > 1 {
            notes.push(format!(
                "exercise {id}: the cell id `{cell_id}` appears {} times; graded the last copy \
                 ({}), which the student's kernel ran last in notebook order",
                same.len(),
                same[same.len() - 1].at()
            ));
        }
        if let Some(last) = same.last() {
            return Some(last);
        }
    }
    let by_meta: Vec<_> = student
        .iter()
        .filter(|c| c.json()["metadata"]["kto_lab"]["exercise"].as_str() == Some(id))
        .collect();
    if let Some(last) = by_meta.last() {
        return Some(last);
    }
    let position = solution_cells.iter().position(|c| c.at() == cell.at())?;
    if student.len() == solution_cells.len() {
        notes.push(format!(
            "exercise {id}: no cell with its id or metadata; graded code cell {} by position \
             (the submission has the lab's cells)",
            position + 1
        ));
        return student.get(position);
    }
    None
}

/// Whether a solution cell calls one of the graded references, which the exam build hides
/// (`prospect::value(…)`, `record.to_training_line()`, `final_votes(…)` …).
fn uses_answer_key(source: &str) -> bool {
    exam::ANSWER_KEY.iter().any(|key| {
        let parts: Vec<&str> = key.split("::").collect();
        let last = parts[parts.len() - 1];
        let qualified = parts[parts.len().saturating_sub(2)..].join("::");
        let method = format!(".{last}(");
        let distinctive =
            last.contains('_') && !["kto_loss", "kto_step", "parse_line"].contains(&last);
        source.contains(&qualified)
            || source.contains(&method)
            || (distinctive && source.contains(&format!("{last}(")))
    })
}

/// The `:dep` line of the library with the `exam` feature on: the graded references are
/// crate-private, and the check cells answer the judge (see the module's docs).
fn exam_dep(source: &str) -> String {
    let re = regex::Regex::new(r"(?m)^(:dep\s+kto-lab\s*=\s*\{)(.*)\}\s*$").expect("valid regex");
    re.replace(source, |c: &regex::Captures| {
        format!(
            "{} {}, features = [\"exam\"] }}",
            &c[1],
            c[2].trim().trim_end_matches(',')
        )
    })
    .into_owned()
}

/// The plan without the solution's demonstration cells that nothing graded depends on.
///
/// Most of a lab's cells show something (a table, a chart, a training run) and define nothing
/// an exercise or a check uses; each costs a compile. Kept: the `:dep` cell, every cell that
/// declares an item (`use`, `fn`, `const`, `struct` …) or is a kernel command, every exercise
/// and check cell, and every cell that binds (`let`) a name a kept cell after it mentions,
/// the student's own code included — so an answer that reads a variable of the notebook's gets
/// the cells that make it. (A demo cell that only *changes* such a variable, without `let`, is
/// not kept; no check cell of ours reads a notebook variable.)
fn without_demo_cells(cells: Vec<PlanCell>) -> Vec<PlanCell> {
    let item = regex::Regex::new(
        r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?(?:use|fn|const|static|struct|enum|trait|type|impl|mod|macro_rules!|extern|#\[)",
    )
    .expect("valid regex");
    // The names a `let` binds: its pattern, up to a type annotation or the `=`.
    let binding = regex::Regex::new(r"\blet\s+([^=;:]*)").expect("valid regex");
    let word = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("valid regex");
    let words = |text: &str| -> std::collections::HashSet<String> {
        word.find_iter(text)
            .map(|m| m.as_str().to_owned())
            .collect()
    };
    let mut mentioned = std::collections::HashSet::new();
    let mut keep = vec![false; cells.len()];
    for (i, cell) in cells.iter().enumerate().rev() {
        let kept = match cell.role {
            Role::Setup => {
                item.is_match(&cell.source)
                    || cell.source.trim_start().starts_with(':')
                    || binding
                        .captures_iter(&cell.source)
                        .flat_map(|c| words(&c[1]))
                        .any(|w| w != "mut" && w != "ref" && mentioned.contains(&w))
            }
            _ => true,
        };
        if kept {
            mentioned.extend(words(&cell.source));
            keep[i] = true;
        }
    }
    cells
        .into_iter()
        .zip(keep)
        .filter_map(|(cell, kept)| kept.then_some(cell))
        .collect()
}

/// Each exercise's cells, by exercise id, in the order they ran.
type SeenByExercise = Vec<(String, Seen)>;

/// What happened to one exercise's cells.
#[derive(Default)]
struct Seen {
    answer: Option<CellRun>,
    check: Option<(CellRun, Result<CheckResult, JudgeError>)>,
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

fn run_plan(
    cells: &[PlanCell],
    solution_path: &Path,
    settings: &Settings,
) -> Result<(SeenByExercise, Vec<String>), GradeError> {
    // The judge's end of the socket and the student's end, which the kernel's process (and
    // the one evcxr starts after a crash) inherits by number.
    let (judge_end, student_end) = socket_pair()?;
    std::env::set_var(exam::EXAM_FD_VAR, student_end.as_raw_fd().to_string());
    let mut kernel = Kernel::start(solution_path)?;
    let limits = Limits {
        timeout: Some(settings.timeout),
        output_cap: settings.output_cap,
    };
    // The judge's hidden tests draw from this run's seed, in this process only.
    kto_lab::checks::grading::set_hidden_seed(settings.seed);
    let mut seen: Vec<(String, Seen)> = Vec::new();
    let mut notes = Vec::new();
    let entry = |seen: &mut Vec<(String, Seen)>, id: &str| -> usize {
        match seen.iter().position(|(i, _)| i == id) {
            Some(p) => p,
            None => {
                seen.push((id.to_owned(), Seen::default()));
                seen.len() - 1
            }
        }
    };
    for (n, cell) in cells.iter().enumerate() {
        let cell_limits = if cell.role == Role::Dep {
            Limits {
                timeout: None,
                ..limits
            }
        } else {
            limits
        };
        let judging = match &cell.role {
            Role::Check(id) => Some(Judging::start(id.clone(), &judge_end, settings.timeout)?),
            _ => None,
        };
        let run = kernel.execute(&cell.at, &cell.source, cell_limits);
        let verdict = judging.map(Judging::finish);
        if run.truncated {
            notes.push(format!("{}: output over the cap was dropped", cell.at));
        }
        let terminated = run.terminated;
        match &cell.role {
            Role::Answer(id) => {
                let i = entry(&mut seen, id);
                seen[i].1.answer = Some(run);
            }
            Role::Check(id) => {
                let i = entry(&mut seen, id);
                let verdict = verdict
                    .unwrap_or_else(|| Err(JudgeError::NotReady("the judge did not run".into())));
                seen[i].1.check = Some((run, verdict));
            }
            Role::Dep | Role::Setup => {
                if let Some(e) = &run.error {
                    notes.push(format!(
                        "{}: a solution cell failed: {}",
                        cell.at,
                        e.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        if terminated {
            // Every variable is gone: run the setup cells before the next cell again.
            notes.push(format!(
                "{}: the kernel was restarted and the notebook's setup cells ran again",
                cell.at
            ));
            for earlier in &cells[..=n] {
                if earlier.role == Role::Setup {
                    kernel.execute(&earlier.at, &earlier.source, limits);
                }
            }
        }
    }
    drop(kernel);
    drop(student_end);
    Ok((seen, notes))
}

/// A Unix socket pair: the judge's end, and the student's end without close-on-exec (so the
/// kernel's process inherits it).
fn socket_pair() -> Result<(UnixStream, UnixStream), GradeError> {
    let (judge, student) = UnixStream::pair().map_err(socket_error)?;
    // SAFETY: F_SETFD on a descriptor we own; clearing FD_CLOEXEC has no memory effects.
    if unsafe { libc::fcntl(student.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(socket_error(std::io::Error::last_os_error()));
    }
    Ok((judge, student))
}

/// The judge's end of the socket for one check cell: a read waits in short slices until data
/// comes, the cell is over, or its time limit has passed (then `TimedOut`).
struct Interruptible {
    stream: UnixStream,
    stop: Arc<AtomicBool>,
    deadline: std::time::Instant,
}

impl std::io::Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.stop.load(Ordering::SeqCst)
                        || std::time::Instant::now() >= self.deadline
                    {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer before the cell ended",
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl std::io::Write for Interruptible {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A failure of the grader's socket, as the grade's error.
fn socket_error(source: std::io::Error) -> GradeError {
    GradeError::Run(crate::run::RunError::Io {
        path: PathBuf::from("(the grader's socket)"),
        source,
    })
}

/// The judge of one check cell, on a thread of this process, while the kernel runs the cell.
struct Judging {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<CheckResult, JudgeError>>,
}

impl Judging {
    fn start(
        exercise: String,
        socket: &UnixStream,
        limit: Duration,
    ) -> Result<Judging, GradeError> {
        let stream = socket.try_clone().map_err(socket_error)?;
        // An answer from an earlier process of this kernel that came after its judge gave up
        // (a time-out) is still in the socket: drop it before this cell's judge listens.
        exam::drain(&stream).map_err(socket_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Wait for the cell to start serving (it compiles first), or for the cell to end.
            let mut ready = libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                // SAFETY: poll(2) on one pollfd we own, with a 100 ms timeout.
                let n = unsafe { libc::poll(&mut ready, 1, 100) };
                if n > 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if n < 0 && e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(JudgeError::NotReady(e.to_string()));
                }
                if stopped.load(Ordering::SeqCst) {
                    return Err(JudgeError::NotReady(
                        "the check cell ended without asking for questions".into(),
                    ));
                }
            }
            // From here on a silent student's side costs at most the cell's time limit, and
            // nothing once the cell is over (its process killed or ended).
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.set_write_timeout(Some(limit));
            exam::judge(
                &exercise,
                Interruptible {
                    stream,
                    stop: stopped,
                    deadline: std::time::Instant::now() + limit,
                },
            )
        });
        Ok(Judging { stop, thread })
    }

    fn finish(self) -> Result<CheckResult, JudgeError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(JudgeError::NotReady("the judge panicked".into())))
    }
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

/// A cell's failure, if it had one: status and reason.
fn cell_failure(run: &CellRun, what: &str) -> Option<(Status, String)> {
    if run.timed_out {
        return Some((
            Status::TimedOut,
            format!("{what} ran past the time limit (an endless loop?)"),
        ));
    }
    if run.terminated {
        return Some((
            Status::Exited,
            format!("the kernel's process ended while {what} ran (std::process::exit?)"),
        ));
    }
    if let Some(e) = &run.error {
        if let Some(names) = reference_calls(e) {
            return Some((
                Status::ReferenceCall,
                format!(
                    "{what} calls the library's own answer ({names}) instead of computing it: \
                     the grader's build of the library does not have it"
                ),
            ));
        }
        let first = e.lines().next().unwrap_or("").trim();
        let at = e
            .lines()
            .find_map(|l| l.trim().strip_prefix("--> "))
            .map(|l| format!(" ({})", l.split(": ").next().unwrap_or(l)))
            .unwrap_or_default();
        return Some((
            Status::CompileError,
            format!("{what} does not compile: {first}{at}"),
        ));
    }
    if run.panicked {
        let message = run
            .stderr
            .lines()
            .skip_while(|l| !l.contains(" panicked at "))
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_owned();
        return Some((Status::Panicked, format!("{what} panicked: {message}")));
    }
    None
}

/// The answer-key items a compile error says are private (`error[E0603]: function
/// `reference_point` is private`, E0624 for methods), as `kto_lab::…` paths; `None` when the
/// error is about something else.
fn reference_calls(error: &str) -> Option<String> {
    let re =
        regex::Regex::new(r"error\[E06(?:03|24)\]: \w+ `(\w+)` is private").expect("valid regex");
    let mut names: Vec<String> = Vec::new();
    for c in re.captures_iter(error) {
        for key in exam::ANSWER_KEY {
            if key.rsplit("::").next() == Some(&c[1]) {
                let name = format!("kto_lab::{key}");
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    (!names.is_empty()).then(|| names.join(" or "))
}

fn grade_exercise(e: &Exercise, seen: Option<&Seen>, missing: bool) -> ExerciseGrade {
    let mut g = ExerciseGrade {
        id: e.id.clone(),
        title: String::new(),
        points: 0.0,
        max: e.points,
        status: Status::GraderError,
        reason: String::new(),
        cases: Vec::new(),
        hint: String::new(),
    };
    let fail = |mut g: ExerciseGrade, (status, reason): (Status, String)| {
        g.status = status;
        g.reason = reason;
        g
    };
    if missing {
        return fail(
            g,
            (
                Status::Missing,
                "the exercise cell was deleted: graded as not done".to_owned(),
            ),
        );
    }
    let Some(seen) = seen else {
        return fail(g, (Status::GraderError, "the exercise did not run".into()));
    };
    if let Some(f) = seen
        .answer
        .as_ref()
        .and_then(|r| cell_failure(r, "the exercise cell"))
    {
        return fail(g, f);
    }
    let Some((run, verdict)) = &seen.check else {
        return fail(g, (Status::GraderError, "the check did not run".into()));
    };
    if let Some(f) = cell_failure(run, "the check") {
        return fail(g, f);
    }
    let result = match verdict {
        Ok(r) => r,
        Err(JudgeError::UnknownExercise(id)) => {
            return fail(
                g,
                (
                    Status::GraderError,
                    format!("the library has no check for exercise `{id}`"),
                ),
            )
        }
        Err(JudgeError::NotReady(why)) => return fail(g, (Status::NoResult, why.clone())),
    };
    g.title = result.exercise.clone();
    g.hint = result.hint.clone();
    g.cases = result
        .cases
        .iter()
        .map(|c| CaseResult {
            name: c.name.clone(),
            expected: c.expected.clone(),
            got: c.got.clone(),
            ok: c.ok,
        })
        .collect();
    let failed: Vec<&CaseResult> = g.cases.iter().filter(|c| !c.ok).collect();
    let (visible, hidden): (Vec<&CaseResult>, Vec<&CaseResult>) = failed
        .into_iter()
        .partition(|c| !c.name.starts_with("hidden: "));
    let outcome = match result.status {
        CheckStatus::NotDone => Some((Status::NotDone, "still holds its todo!() stub".to_owned())),
        _ if g.cases.is_empty() => Some((
            Status::Failed,
            "the check ran no case: nothing to give points for".to_owned(),
        )),
        _ if !visible.is_empty() => Some((
            Status::Failed,
            format!(
                "{} of {} visible cases failed, first: {} (expected {}, got {})",
                visible.len(),
                g.cases.len() - result.hidden,
                visible[0].name,
                visible[0].expected,
                visible[0].got
            ),
        )),
        _ if !hidden.is_empty() => Some((
            Status::HiddenFailed,
            "passes every visible case but fails the hidden tests (inputs drawn for this run): \
             is the answer hard-coded?"
                .to_owned(),
        )),
        CheckStatus::Passed => None,
        CheckStatus::Failed => Some((Status::Failed, "the check did not pass".to_owned())),
    };
    match outcome {
        Some(f) => fail(g, f),
        None => {
            g.status = Status::Passed;
            g.points = e.points;
            g
        }
    }
}

/// Writes `grade` as JSON to `path`, atomically.
pub fn write_grade(path: &Path, grade: &NotebookGrade) -> Result<(), crate::Error> {
    let text = serde_json::to_string_pretty(grade).expect("a grade serializes");
    write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_cells_nothing_graded_needs_are_left_out() {
        let cell = |index: usize, role: Role, source: &str| PlanCell {
            at: CellRef { index, id: None },
            role,
            source: source.to_owned(),
        };
        let answer = || Role::Answer("1.1".into());
        let plan = vec![
            cell(0, Role::Dep, ":dep kto-lab = { path = \"..\" }"),
            cell(1, Role::Setup, "use kto_lab::losses::KtoConfig;"),
            cell(
                2,
                Role::Setup,
                "let cfg: KtoConfig = KtoConfig::default();\ncfg",
            ),
            cell(
                3,
                Role::Setup,
                "let shown = 2.0_f32;\nprintln!(\"{shown} {cfg:?}\");",
            ),
            cell(4, Role::Setup, "chart.evcxr_display()"),
            cell(5, Role::Setup, "const N: usize = 3;"),
            cell(
                6,
                answer(),
                "let _ = (); fn f(x: f32) -> f32 { x * cfg.beta as f32 }",
            ),
            cell(7, Role::Setup, "let later = 1;"),
        ];
        let kept: Vec<usize> = without_demo_cells(plan)
            .iter()
            .map(|c| c.at.index)
            .collect();
        // 2 binds `cfg`, which the answer reads; 3 and 4 show things; 5 is an item; 7 comes
        // after everything graded.
        assert_eq!(kept, [0, 1, 2, 5, 6]);
    }

    #[test]
    fn library_paths_become_absolute() {
        assert_eq!(
            absolute_paths("kto_lab::checks::lab1::f(f)\n.with_hidden(|| checks::lab3::g(g))"),
            "::kto_lab::checks::lab1::f(f)\n.with_hidden(|| ::kto_lab::checks::lab3::g(g))"
        );
        assert_eq!(
            absolute_paths("::kto_lab::x; my_checks::y"),
            "::kto_lab::x; my_checks::y"
        );
    }

    #[test]
    fn the_dep_line_asks_for_the_exam_build() {
        assert_eq!(
            exam_dep(":dep kto-lab = { path = \"/repo\" }"),
            ":dep kto-lab = { path = \"/repo\", features = [\"exam\"] }"
        );
    }

    #[test]
    fn a_private_answer_in_a_compile_error_is_a_reference_call() {
        let e = "error[E0603]: function `reference_point` is private\n  --> line 3:40: private function";
        assert_eq!(
            reference_calls(e).as_deref(),
            Some("kto_lab::losses::kto::reference_point")
        );
        let m = "error[E0624]: method `to_training_line` is private";
        assert_eq!(
            reference_calls(m).as_deref(),
            Some("kto_lab::feedback::Record::to_training_line")
        );
        assert_eq!(
            reference_calls("error[E0603]: function `helper` is private"),
            None
        );
        assert_eq!(reference_calls("error[E0308]: mismatched types"), None);
    }

    #[test]
    fn demonstrations_of_the_answers_are_recognised() {
        assert!(uses_answer_key("let t = plain::kto_batch_mean(&b, &cfg)?;"));
        assert!(uses_answer_key(
            "println!(\"{}\", prospect::value(1.0, &p));"
        ));
        assert!(uses_answer_key("for r in final_votes(&clicks) {}"));
        assert!(uses_answer_key("r.to_training_line()"));
        assert!(!uses_answer_key("let cfg = KtoConfig::default();"));
        assert!(!uses_answer_key("fn kto_loss(d: f64) -> f64 { d }"));
    }

    /// A notebook of code cells: (id, exercise metadata, source).
    fn notebook(cells: &[(Option<&str>, Option<&str>, &str)]) -> Notebook {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(id, ex, src)| {
                let mut c = serde_json::json!({
                    "cell_type": "code", "metadata": {}, "source": src,
                    "outputs": [], "execution_count": null
                });
                if let Some(id) = id {
                    c["id"] = (*id).into();
                }
                if let Some(ex) = ex {
                    c["metadata"] = serde_json::json!({"kto_lab": {"exercise": ex}});
                }
                c
            })
            .collect();
        let json = serde_json::json!({
            "cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5
        });
        Notebook::parse(&json.to_string(), Path::new("t.ipynb")).unwrap()
    }

    #[test]
    fn the_students_cell_is_found_by_id_then_metadata_then_position() {
        let solution = notebook(&[
            (Some("a"), None, "setup"),
            (Some("ex"), Some("1.1"), "solution"),
            (Some("b"), None, "check"),
        ]);
        let sol = solution.code_cells();
        let find = |student: &Notebook, notes: &mut Vec<String>| {
            let cells = student.code_cells();
            students_cell(&cells, &sol, &sol[1], "1.1", notes).map(|c| c.source())
        };
        let mut notes = Vec::new();
        // By id; a duplicated id takes the last copy, with a note.
        let dup = notebook(&[
            (Some("a"), None, "setup"),
            (Some("ex"), None, "first"),
            (Some("ex"), None, "last"),
            (Some("b"), None, "check"),
        ]);
        assert_eq!(find(&dup, &mut notes).as_deref(), Some("last"));
        assert!(notes[0].contains("appears 2 times"), "{notes:?}");
        // No ids (nbformat 4.4, Colab): the exercise metadata…
        let meta = notebook(&[
            (None, None, "setup"),
            (None, Some("1.1"), "mine"),
            (None, None, "c"),
        ]);
        assert_eq!(find(&meta, &mut notes).as_deref(), Some("mine"));
        // …or, without it, the position when the cells are the lab's.
        let bare = notebook(&[
            (None, None, "setup"),
            (None, None, "mine"),
            (None, None, "c"),
        ]);
        assert_eq!(find(&bare, &mut notes).as_deref(), Some("mine"));
        // Cells added or deleted and no id or metadata: not found (graded as missing).
        let other = notebook(&[(None, None, "setup"), (None, None, "mine")]);
        assert_eq!(find(&other, &mut notes), None);
    }

    #[test]
    fn dep_paths_become_absolute() {
        let out = absolute_dep(":dep kto-lab = { path = \"..\" }", Path::new("/tmp"));
        assert_eq!(out, ":dep kto-lab = { path = \"/\" }");
    }

    #[test]
    fn an_unreadable_submission_scores_zero_naming_the_file_and_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let solution = root.join("solutions/01_kto_loss.ipynb");
        let tmp = tempfile::tempdir().unwrap();
        let broken = tmp.path().join("01_kto_loss.ipynb");
        fs::write(&broken, "{\n \"cells\": [\n").unwrap();
        let settings = Settings {
            timeout: Duration::from_secs(1),
            output_cap: 1024,
            seed: 1,
        };
        let g = grade_notebook(&solution, &broken, tmp.path(), tmp.path(), &settings).unwrap();
        assert_eq!(g.exercises.len(), 3);
        for e in &g.exercises {
            assert_eq!(e.status, Status::Unreadable);
            assert_eq!(e.points, 0.0);
            assert!(e.reason.contains("01_kto_loss.ipynb:3:"), "{}", e.reason);
        }
    }

    #[test]
    fn the_solutions_declare_their_exercises() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut ids = Vec::new();
        for p in crate::generate::solution_paths(&root.join("solutions")).unwrap() {
            let nb = Notebook::load(&p).unwrap();
            ids.extend(exercises(&nb, &p).unwrap().into_iter().map(|e| e.id));
        }
        assert_eq!(ids.len(), 16, "{ids:?}");
    }
}
