//! Counting the check results a notebook shows.
//!
//! A check cell's result (`kto_lab::checks::CheckResult`) carries exactly one of three markers on its
//! first line; these constants are the same strings as `kto_lab::checks::Status::marker` (a test
//! keeps them in step without making this crate depend on the library).

use std::fmt;
use std::ops::AddAssign;

/// `Status::Passed.marker()`.
pub const PASSED: &str = "✅ passed";
/// `Status::Failed.marker()`.
pub const FAILED: &str = "❌ failed";
/// `Status::NotDone.marker()`.
pub const NOT_DONE: &str = "⏳ not done yet";

/// How many checks passed, failed, or are not done yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Lines with `✅ passed`.
    pub passed: usize,
    /// Lines with `❌ failed`.
    pub failed: usize,
    /// Lines with `⏳ not done yet`.
    pub not_done: usize,
}

impl CheckCounts {
    /// Counts the markers in `text`, one per line at most.
    pub fn in_text(text: &str) -> CheckCounts {
        let mut c = CheckCounts::default();
        for line in text.lines() {
            if line.contains(PASSED) {
                c.passed += 1;
            } else if line.contains(FAILED) {
                c.failed += 1;
            } else if line.contains(NOT_DONE) {
                c.not_done += 1;
            }
        }
        c
    }

    /// Every check, whatever its result.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.not_done
    }
}

impl AddAssign for CheckCounts {
    fn add_assign(&mut self, o: CheckCounts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.not_done += o.not_done;
    }
}

impl fmt::Display for CheckCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {PASSED}, {} {FAILED}, {} {NOT_DONE}",
            self.passed, self.failed, self.not_done
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_count_per_line() {
        let text = "Exercise 1: ✅ passed (3/3 cases)\n  ok  a\nExercise 2: ❌ failed (0/1 cases)\nExercise 3: ⏳ not done yet — replace\n";
        let c = CheckCounts::in_text(text);
        assert_eq!(
            c,
            CheckCounts {
                passed: 1,
                failed: 1,
                not_done: 1
            }
        );
        assert_eq!(c.total(), 3);
    }
}
