use thiserror::Error;

/// What can be wrong with the inputs of a loss. Every variant names the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LossError {
    /// A loss needs at least one example; an empty batch would give NaN.
    #[error("empty batch: `{field}` has no examples (a loss needs at least one)")]
    EmptyBatch {
        /// The input that was empty.
        field: &'static str,
    },
    /// Two inputs that must line up example by example have different lengths.
    #[error(
        "`{field}` has {got} values but `{like}` has {expected}: they must line up one per example"
    )]
    LengthMismatch {
        /// The input with the wrong length.
        field: &'static str,
        /// The input whose length it must match.
        like: &'static str,
        /// The length of `like`.
        expected: usize,
        /// The length of `field`.
        got: usize,
    },
    /// A log-prob is NaN or infinite (often: a fully masked sequence, or an overflow upstream).
    #[error("`{field}[{index}]` is {value}: log-probs must be finite numbers")]
    NonFinite {
        /// The input holding the bad value.
        field: &'static str,
        /// Its position in the batch.
        index: usize,
        /// The value itself (NaN or ±inf).
        value: f32,
    },
    /// A hyper-parameter outside its valid range.
    #[error("`{name}` = {value} is invalid: it must be {expected}")]
    BadParameter {
        /// The parameter's name, as in the config.
        name: &'static str,
        /// The value given.
        value: f32,
        /// What it should be.
        expected: &'static str,
    },
}

/// Checks that `values` has `expected` entries (the length of `like`) and holds only
/// finite numbers.
pub(crate) fn check_finite(
    field: &'static str,
    values: &[f32],
    like: &'static str,
    expected: usize,
) -> Result<(), LossError> {
    if values.len() != expected {
        return Err(LossError::LengthMismatch {
            field,
            like,
            expected,
            got: values.len(),
        });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(LossError::NonFinite {
            field,
            index,
            value,
        });
    }
    Ok(())
}

/// Checks a strictly positive, finite hyper-parameter (β, class weights).
pub(crate) fn check_positive(name: &'static str, value: f32) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossError::BadParameter {
            name,
            value,
            expected: "a finite number > 0",
        })
    }
}
