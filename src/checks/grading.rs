//! What the instructor's grader (`kto-lab-notebooks grade`) needs from the checks.
//!
//! - **Hidden tests.** A solution's check cell ends with
//!   `.with_hidden(|| checks::labN::exercise(student_fn))` between `// BEGIN HIDDEN TESTS` and
//!   `// END HIDDEN TESTS` (student notebooks do not have that region). The hidden run is the
//!   same check with every random input drawn from another seed: [`hidden_seed`], fixed in an
//!   ordinary run, set per grading run by [`set_hidden_seed`]. An answer hard-coded to the visible
//!   cases fails it.
//! - **Reference calls.** The library functions the checks compare against say so with
//!   [`reference()`]; while a check runs the student's code (inside [`super::Checker::call`], on
//!   that thread) such a call is recorded, and a check that [forbids](super::Checker::forbid) it
//!   fails the exercise.
//! - **A result channel the student's code cannot forge.** The grader wraps each check cell as
//!   `emit("<nonce>", "<exercise>", { check cell })`: [`emit`] prints one line,
//!   `KTO_LAB_GRADE <nonce> <json>`, with a nonce drawn for that cell by the grader. Lines a
//!   student prints (a fake `✅ passed`, or a guessed grade line) do not carry it.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::{CheckResult, Status};

/// The prefix of a grade line.
pub const GRADE_LINE: &str = "KTO_LAB_GRADE";

/// The hidden tests' seed outside a grading run (the solution notebooks' runs use it).
pub const DEFAULT_HIDDEN_SEED: u64 = 0x6869_6464_656e;

static HIDDEN_SEED: AtomicU64 = AtomicU64::new(DEFAULT_HIDDEN_SEED);

thread_local! {
    /// XORed into the random seeds of the checks running on this thread: 0 for the visible run.
    static SEED_MIX: Cell<u64> = const { Cell::new(0) };
    /// How many calls into student code are running on this thread. Per thread, so that other
    /// threads calling the library meanwhile (tests run in parallel) are not blamed on the
    /// student; a student who calls the reference from a thread of their own is not caught.
    static IN_STUDENT_CODE: Cell<usize> = const { Cell::new(0) };
    /// The reference functions called while student code ran, not yet claimed by a check.
    static CALLED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Sets the seed the hidden tests draw their inputs from (the grader does, once per run).
pub fn set_hidden_seed(seed: u64) {
    HIDDEN_SEED.store(seed, Ordering::SeqCst);
}

/// The seed the hidden tests draw their inputs from.
pub fn hidden_seed() -> u64 {
    HIDDEN_SEED.load(Ordering::SeqCst)
}

/// A check's seed for one of its random draws: `base` in the visible run, `base` mixed with
/// [`hidden_seed`] while hidden tests run.
pub(crate) fn seed(base: u64) -> u64 {
    base ^ SEED_MIX.get()
}

/// A seeded generator for a check's random inputs (see [`seed`]).
pub(crate) fn rng(base: u64) -> rand_chacha::ChaCha8Rng {
    rand::SeedableRng::seed_from_u64(seed(base))
}

/// Runs `check` with every random input drawn from the hidden seed.
pub(crate) fn run_hidden(check: impl FnOnce() -> CheckResult) -> CheckResult {
    // A mix of 0 would repeat the visible cases.
    let mix = hidden_seed().wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let previous = SEED_MIX.replace(mix);
    let result = check();
    SEED_MIX.set(previous);
    result
}

/// Marks a call of the library function `name` (a reference a check compares against).
/// Recorded only while student code runs inside a check.
pub fn reference(name: &'static str) {
    if IN_STUDENT_CODE.get() > 0 {
        CALLED.with_borrow_mut(|called| {
            if !called.contains(&name) {
                called.push(name);
            }
        });
    }
}

/// Runs student code with reference calls recorded; returns its result and what it called.
pub(crate) fn watch<T>(f: impl FnOnce() -> T) -> (T, Vec<&'static str>) {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            IN_STUDENT_CODE.set(IN_STUDENT_CODE.get() - 1);
        }
    }
    IN_STUDENT_CODE.set(IN_STUDENT_CODE.get() + 1);
    let leave = Leave;
    let value = f();
    drop(leave);
    let called = CALLED.take();
    (value, called)
}

/// The result as the grader reads it.
pub fn to_json(result: &CheckResult) -> Value {
    let status = match result.status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::NotDone => "not-done",
    };
    json!({
        "exercise": result.exercise,
        "status": status,
        "cases": result.cases.iter().map(|c| json!({
            "name": c.name, "expected": c.expected, "got": c.got, "ok": c.ok,
        })).collect::<Vec<_>>(),
        "hint": result.hint,
        "reference_calls": result.reference_calls,
        "hidden": result.hidden,
    })
}

/// Prints the grade line of `result` for exercise `id` with the grader's `nonce`, then returns
/// the result (so the cell still shows it).
pub fn emit(nonce: &str, id: &str, result: CheckResult) -> CheckResult {
    // The seed goes along so the grader can tell that the hidden tests drew from its seed.
    let line = json!({ "id": id, "hidden_seed": hidden_seed(), "report": to_json(&result) });
    println!("{GRADE_LINE} {nonce} {line}");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{lab1, Status};

    /// z0 written out (not the library's reference, which the check would catch).
    fn z0(p: &[f32], r: &[f32]) -> Option<f32> {
        (!p.is_empty()).then(|| {
            let s: f64 = p.iter().zip(r).map(|(a, b)| f64::from(a - b)).sum();
            (s / p.len() as f64).max(0.0) as f32
        })
    }

    #[test]
    fn hidden_tests_draw_other_inputs_and_catch_a_hard_coded_answer() {
        let asked = std::cell::RefCell::new(Vec::new());
        let visible = lab1::reference_point(|p: &[f32], r: &[f32]| {
            asked.borrow_mut().push(z0(p, r));
            z0(p, r)
        });
        assert!(visible.passed(), "{visible}");
        let answers = asked.into_inner();
        let calls = std::cell::Cell::new(0);
        let replay = |_: &[f32], _: &[f32]| {
            let i = calls.get();
            calls.set(i + 1);
            answers.get(i).copied().flatten()
        };
        // The replayed answers pass the visible check…
        assert!(lab1::reference_point(replay).passed());
        calls.set(0);
        // …but not the hidden tests, whose random pairs differ.
        let graded = lab1::reference_point(replay).with_hidden(|| lab1::reference_point(replay));
        assert_eq!(graded.status, Status::Failed);
        assert!(graded.hidden > 0);
        assert!(graded
            .failed_cases()
            .iter()
            .all(|name| name.starts_with("hidden: ")));
        // A correct answer passes both.
        let solid = lab1::reference_point(z0).with_hidden(|| lab1::reference_point(z0));
        assert!(solid.passed(), "{solid}");
    }

    #[test]
    fn calling_the_reference_fails_the_exercise() {
        let cheat = |p: &[f32], r: &[f32]| crate::losses::kto::reference_point(p, r).ok();
        let result = lab1::reference_point(cheat);
        assert_eq!(result.status, Status::Failed);
        assert_eq!(result.reference_calls, ["losses::kto::reference_point"]);
        assert_eq!(
            result.failed_cases(),
            ["written without the library's reference"]
        );
        // The check's own calls of the reference are not the student's.
        assert!(lab1::reference_point(z0).reference_calls.is_empty());
    }

    #[test]
    fn the_grade_line_carries_the_nonce_and_the_report() {
        let result = lab1::reference_point(z0);
        let v = to_json(&result);
        assert_eq!(v["status"], "passed");
        assert_eq!(
            v["cases"].as_array().map(Vec::len),
            Some(result.cases.len())
        );
    }
}
