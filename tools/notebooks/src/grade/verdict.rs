//! From what happened to an exercise's cells to its grade: a cell's failure (compile error,
//! reference call, panic, time-out), and the grade of the check the judge ran.

use super::*;

/// A cell's failure, if it had one: status and reason.
pub(super) fn cell_failure(run: &CellRun, what: &str) -> Option<(Status, String)> {
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
pub(super) fn reference_calls(error: &str) -> Option<String> {
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

pub(super) fn grade_exercise(e: &Exercise, seen: Option<&Seen>, missing: bool) -> ExerciseGrade {
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
