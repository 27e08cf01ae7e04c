//! What can be wrong with the numbers a student passes in, and the checks that find it.

use thiserror::Error;

/// What can be wrong with the numbers a student passes in.
///
/// Every public function that takes parameters checks them and returns one of these
/// instead of panicking or quietly producing NaNs.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProspectError {
    /// A parameter or range end is NaN or infinite.
    #[error("{name} must be a finite number, got {value}")]
    NonFinite {
        /// Which parameter.
        name: &'static str,
        /// The value that was passed.
        value: f64,
    },
    /// A curvature exponent (α or β of the value function) is not in (0, 1].
    #[error("{name} must be in (0, 1] (values above 1 would make sensitivity grow instead of diminish), got {value}")]
    CurvatureOutOfRange {
        /// Which parameter.
        name: &'static str,
        /// The value that was passed.
        value: f64,
    },
    /// A weight, λ or β_KTO is zero or negative.
    #[error("{name} must be > 0, got {value}")]
    NotPositive {
        /// Which parameter.
        name: &'static str,
        /// The value that was passed.
        value: f64,
    },
    /// A curve needs at least two points to be a line.
    #[error("a curve needs at least 2 points, got {0}")]
    TooFewPoints(usize),
    /// The range `lo..hi` is empty or reversed.
    #[error("the range must satisfy lo < hi, got lo = {lo}, hi = {hi}")]
    EmptyRange {
        /// Left end.
        lo: f64,
        /// Right end.
        hi: f64,
    },
}

pub(super) fn check_finite(name: &'static str, value: f64) -> Result<(), ProspectError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ProspectError::NonFinite { name, value })
    }
}

pub(super) fn check_positive(name: &'static str, value: f64) -> Result<(), ProspectError> {
    check_finite(name, value)?;
    if value > 0.0 {
        Ok(())
    } else {
        Err(ProspectError::NotPositive { name, value })
    }
}

pub(super) fn check_curvature(name: &'static str, value: f64) -> Result<(), ProspectError> {
    check_finite(name, value)?;
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ProspectError::CurvatureOutOfRange { name, value })
    }
}
