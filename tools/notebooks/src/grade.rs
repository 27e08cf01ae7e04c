//! Grading one submitted notebook against its pristine solution (`kto-lab-notebooks grade-one`,
//! run by [`crate::gradebook`] once per submission, each in its own process).
//!
//! The notebook that runs is built from the **solution**, not from the submission: every cell
//! is the solution's, except the exercise cells (metadata `kto_lab.exercise`), which are the
//! student's cell with the same id (the lab's `todo!()` stub when the student deleted it). So an
//! edited or deleted check cell counts for nothing, and cells a student added are not run.
//! Check cells (metadata `kto_lab.check`) run as the solution has them, hidden tests included,
//! wrapped so that their report reaches the grader on a line that carries a secret drawn for
//! that cell (`kto_lab::checks::grading::emit`); library paths in them are made absolute
//! (`::kto_lab::…`), so a student's `mod kto_lab` cannot stand in for the checks.
//!
//! One kernel runs the cells in order; each cell but the `:dep` cell has a time limit and an
//! output cap. A compile error, a panic, a time-out or a `std::process::exit` is charged to the
//! exercise whose cell it happened in. When the kernel's process dies (time-out, exit), evcxr
//! restarts it with every variable gone: the setup cells before the next cell run again, so the
//! other exercises are graded as if nothing happened.

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::generate::{strip_hidden_tests, strip_solutions};
use crate::notebook::{write_atomic, CellRef, Notebook};
use crate::run::{CellRun, Kernel, Limits, Runner, GRADE_LINE_PREFIX};

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
    /// The check cell of an exercise, with the secret its report must carry.
    Check { id: String, nonce: String },
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

fn plan(
    solution: &Notebook,
    solution_path: &Path,
    submission: &Notebook,
    seed: u64,
) -> Result<(Vec<PlanCell>, Vec<String>), GradeError> {
    let dir = solution_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|source| crate::Error::Io {
            path: solution_path.to_owned(),
            source,
        })?;
    let student: Vec<_> = submission.code_cells();
    let mut missing = Vec::new();
    let mut cells = Vec::new();
    for cell in solution.code_cells() {
        let meta = &cell.json()["metadata"]["kto_lab"];
        let source = cell.source();
        let (role, source) = if let Some(id) = meta["exercise"].as_str() {
            let theirs = student
                .iter()
                .find(|c| c.at().id.is_some() && c.at().id == cell.at().id);
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
            let nonce = format!("{:016x}{:016x}", random_u64(), random_u64());
            // The hidden seed is set in the check's own cell: evcxr links the library into
            // every cell, each with its own statics, so a seed set in an earlier cell is not
            // seen here.
            let code = format!(
                "(::kto_lab::checks::grading::emit({nonce:?}, {id:?}, {{\n\
                 ::kto_lab::checks::grading::set_hidden_seed({seed});\n{}\n}}))",
                absolute_paths(source.trim_end())
            );
            (
                Role::Check {
                    id: id.to_owned(),
                    nonce,
                },
                code,
            )
        } else if source.trim_start().starts_with(":dep") {
            (Role::Dep, absolute_dep(&source, &dir))
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
    Ok((without_demo_cells(cells), missing))
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
    check: Option<(CellRun, String)>,
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
    let (cells, missing) = plan(&solution, solution_path, &submission, settings.seed)?;

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
    // Inherited by the kernel's process, which confines its writes to the work folder.
    std::env::set_var(crate::sandbox::SANDBOX_VAR, work_dir);
    let previous = std::env::current_dir().ok();
    std::env::set_current_dir(work_dir).map_err(|source| crate::Error::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let result = run_plan(&cells, solution_path, settings);
    if let Some(dir) = previous {
        let _ = std::env::set_current_dir(dir);
    }
    let (seen, mut notes) = result?;

    let mut grades = Vec::new();
    for e in &exercises {
        let s = seen.iter().find(|(id, _)| *id == e.id).map(|(_, s)| s);
        grades.push(judge(e, s, missing.contains(&e.id), settings.seed));
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
    let mut kernel = Kernel::start(solution_path)?;
    let limits = Limits {
        timeout: Some(settings.timeout),
        output_cap: settings.output_cap,
    };
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
        let run = kernel.execute(&cell.at, &cell.source, cell_limits);
        if run.truncated {
            notes.push(format!("{}: output over the cap was dropped", cell.at));
        }
        let terminated = run.terminated;
        match &cell.role {
            Role::Answer(id) => {
                let i = entry(&mut seen, id);
                seen[i].1.answer = Some(run);
            }
            Role::Check { id, nonce } => {
                let i = entry(&mut seen, id);
                seen[i].1.check = Some((run, nonce.clone()));
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
    Ok((seen, notes))
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

/// The report the check cell sent on the grader's channel.
fn received_report(
    run: &CellRun,
    nonce: &str,
    id: &str,
    seed: u64,
) -> Result<Value, (Status, String)> {
    let prefix = format!("{GRADE_LINE_PREFIX}{nonce} ");
    let lines: Vec<&String> = run
        .grade_lines
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    match lines.as_slice() {
        [one] => {
            let v: Value = serde_json::from_str(&one[prefix.len()..]).map_err(|_| {
                (
                    Status::NoResult,
                    "the check's report arrived garbled".to_owned(),
                )
            })?;
            if v["id"] != id {
                return Err((
                    Status::NoResult,
                    "the check's report names another exercise".to_owned(),
                ));
            }
            // The check itself says which seed its hidden tests drew from: anything but this
            // run's seed is the grader's fault, never a pass.
            if v["hidden_seed"].as_u64() != Some(seed) {
                return Err((
                    Status::GraderError,
                    format!(
                        "the hidden tests ran with seed {} instead of this run's {seed}",
                        v["hidden_seed"]
                    ),
                ));
            }
            Ok(v["report"].clone())
        }
        [] => Err((
            Status::NoResult,
            "the check ran but sent no report to the grader".to_owned(),
        )),
        _ => Err((
            Status::NoResult,
            "more than one report carried this cell's secret: results forged, none counted"
                .to_owned(),
        )),
    }
}

fn judge(e: &Exercise, seen: Option<&Seen>, missing: bool, seed: u64) -> ExerciseGrade {
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
    let Some((run, nonce)) = &seen.check else {
        return fail(g, (Status::GraderError, "the check did not run".into()));
    };
    if let Some(f) = cell_failure(run, "the check") {
        return fail(g, f);
    }
    let report = match received_report(run, nonce, &e.id, seed) {
        Ok(r) => r,
        Err(f) => return fail(g, f),
    };
    g.title = report["exercise"].as_str().unwrap_or("").to_owned();
    g.hint = report["hint"].as_str().unwrap_or("").to_owned();
    g.cases = report["cases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .map(|c| CaseResult {
                    name: c["name"].as_str().unwrap_or("").to_owned(),
                    expected: c["expected"].as_str().unwrap_or("").to_owned(),
                    got: c["got"].as_str().unwrap_or("").to_owned(),
                    ok: c["ok"].as_bool().unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let failed: Vec<&CaseResult> = g.cases.iter().filter(|c| !c.ok).collect();
    let (visible, hidden): (Vec<&CaseResult>, Vec<&CaseResult>) = failed
        .into_iter()
        .partition(|c| !c.name.starts_with("hidden: "));
    let calls: Vec<&str> = report["reference_calls"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let outcome = match report["status"].as_str() {
        Some("not-done") => Some((Status::NotDone, "still holds its todo!() stub".to_owned())),
        _ if !calls.is_empty() => Some((
            Status::ReferenceCall,
            format!(
                "calls the library's own answer ({}) instead of computing it",
                calls
                    .iter()
                    .map(|c| format!("kto_lab::{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ if !visible.is_empty() => Some((
            Status::Failed,
            format!(
                "{} of {} visible cases failed, first: {} (expected {}, got {})",
                visible.len(),
                g.cases.len() - report["hidden"].as_u64().unwrap_or(0) as usize,
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
        Some("passed") => None,
        _ => Some((Status::Failed, "the check did not pass".to_owned())),
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
