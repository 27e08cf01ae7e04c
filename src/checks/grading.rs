//! What the instructor's grader (`kto-lab-notebooks grade`) needs from the checks: hidden tests.
//!
//! A solution's check cell ends with `.with_hidden(|| checks::labN::exercise(student_fn))`
//! between `// BEGIN HIDDEN TESTS` and `// END HIDDEN TESTS` (student notebooks do not have that
//! region). The hidden run is the same check with every random input drawn from another seed:
//! [`hidden_seed`], fixed in an ordinary run, set per grading run by [`set_hidden_seed`] — in the
//! grader's own process, where the judge runs the checks ([`super::exam`]); the student's
//! process never holds it. An answer hard-coded to the visible cases fails it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::CheckResult;

/// The hidden tests' seed outside a grading run (the solution notebooks' runs use it).
pub const DEFAULT_HIDDEN_SEED: u64 = 0x6869_6464_656e;

static HIDDEN_SEED: AtomicU64 = AtomicU64::new(DEFAULT_HIDDEN_SEED);

thread_local! {
    /// XORed into the random seeds of the checks running on this thread: 0 for the visible run.
    static SEED_MIX: Cell<u64> = const { Cell::new(0) };
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

#[cfg(test)]
mod tests {
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
}
