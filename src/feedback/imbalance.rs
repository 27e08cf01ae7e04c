//! How to weight imbalanced feedback: the KTO paper's rule.
//!
//! KTO weights the loss of desirable examples by λD (`desirable_weight` in TRL) and of
//! undesirable ones by λU (`undesirable_weight`). With nD desirable and nU undesirable
//! examples the paper recommends
//!
//! ```text
//!     1  ≤  λD·nD / (λU·nU)  ≤  4/3
//! ```
//!
//! i.e. the weighted desirable side should match or slightly outweigh the undesirable side
//! (losses loom larger than gains, so desirable examples get a little extra). TRL warns when a
//! run falls outside this range. Fix it by changing **one** of the weights:
//!
//! * keep λU, choose λD in `[λU·nU/nD, (4/3)·λU·nU/nD]`, or
//! * keep λD, choose λU in `[λD·nD/((4/3)·nU), λD·nD/nU]`.
//!
//! Example: 10 desirable, 100 undesirable, both weights 1 → λD in [10, 13.33].

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// The recommended range of λD·nD / (λU·nU).
pub const RECOMMENDED_RATIO: (f64, f64) = (1.0, 4.0 / 3.0);

/// Relative slack when testing whether a ratio is in range, so that a weight computed from
/// the bounds (say 10/3) is not rejected over a rounding error.
const TOLERANCE: f64 = 1e-9;

/// Why [`advise`] cannot give advice.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ImbalanceError {
    /// There are no examples at all.
    #[error("no feedback at all: collect some thumbs-up and thumbs-down examples first")]
    NoData,
    /// Only one class is present: the ratio is undefined (0 or division by zero).
    #[error(
        "only {present} examples ({count}), no {missing} ones: the ratio λD·nD / (λU·nU) is undefined. \
         KTO can still train on one class, but it only moves those completions against the KL \
         baseline — a weak signal — and DPO cannot train at all. Collect some {missing} feedback."
    )]
    OneClass {
        /// The class present, e.g. `desirable (thumbs-up)`.
        present: &'static str,
        /// The class missing.
        missing: &'static str,
        /// How many examples of the present class there are.
        count: usize,
    },
    /// A weight is zero, negative, infinite or NaN.
    #[error("{name} must be a positive, finite number, got {value}")]
    InvalidWeight {
        /// `desirable_weight` or `undesirable_weight`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
}

/// Advice on `desirable_weight` / `undesirable_weight` for a dataset. `Display` prints
/// [`message`](Self::message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImbalanceAdvice {
    /// nD: desirable (thumbs-up) examples.
    pub n_desirable: usize,
    /// nU: undesirable (thumbs-down) examples.
    pub n_undesirable: usize,
    /// λD as given.
    pub desirable_weight: f64,
    /// λU as given.
    pub undesirable_weight: f64,
    /// λD·nD / (λU·nU).
    pub ratio: f64,
    /// Whether `ratio` lies in [`RECOMMENDED_RATIO`] = [1, 4/3].
    pub in_range: bool,
    /// The λD values that put the ratio in range while λU stays as given: `[low, high]`.
    pub desirable_weight_range: [f64; 2],
    /// The λU values that put the ratio in range while λD stays as given: `[low, high]`.
    pub undesirable_weight_range: [f64; 2],
    /// λD to use with the given λU: the given λD when already in range, otherwise the low end
    /// of [`desirable_weight_range`](Self::desirable_weight_range) (weighted classes exactly
    /// balanced), rounded *up* to 4 significant digits so that it stays in range.
    pub suggested_desirable_weight: f64,
    /// λU to use with the given λD: the given λU when already in range, otherwise the high end
    /// of [`undesirable_weight_range`](Self::undesirable_weight_range) (weighted classes exactly
    /// balanced), rounded *down* to 4 significant digits so that it stays in range.
    pub suggested_undesirable_weight: f64,
    /// A short explanation for a person.
    pub message: String,
}

answer_key! {
    /// Check λD·nD / (λU·nU) against the paper's range [1, 4/3] and suggest weights.
    ///
    /// Errors when a class is empty (the ratio is undefined) or a weight is not positive and
    /// finite.
    ///
    /// ```
    /// use kto_lab::feedback::advise;
    /// let a = advise(10, 100, 1.0, 1.0).unwrap();
    /// assert!(!a.in_range);
    /// assert_eq!(a.desirable_weight_range[0], 10.0);
    /// assert_eq!(a.suggested_desirable_weight, 10.0);
    /// ```
    pub fn advise(
        n_desirable: usize,
        n_undesirable: usize,
        desirable_weight: f64,
        undesirable_weight: f64,
    ) -> Result<ImbalanceAdvice, ImbalanceError> {
        for (name, value) in [
            ("desirable_weight", desirable_weight),
            ("undesirable_weight", undesirable_weight),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ImbalanceError::InvalidWeight { name, value });
            }
        }
        match (n_desirable, n_undesirable) {
            (0, 0) => return Err(ImbalanceError::NoData),
            (count, 0) => {
                return Err(ImbalanceError::OneClass {
                    present: "desirable (thumbs-up)",
                    missing: "undesirable (thumbs-down)",
                    count,
                })
            }
            (0, count) => {
                return Err(ImbalanceError::OneClass {
                    present: "undesirable (thumbs-down)",
                    missing: "desirable (thumbs-up)",
                    count,
                })
            }
            _ => {}
        }
        let (lo, hi) = RECOMMENDED_RATIO;
        let (nd, nu) = (n_desirable as f64, n_undesirable as f64);
        let ratio = desirable_weight * nd / (undesirable_weight * nu);
        let in_range = ratio >= lo * (1.0 - TOLERANCE) && ratio <= hi * (1.0 + TOLERANCE);

        let d_low = undesirable_weight * nu / nd * lo;
        let d_high = undesirable_weight * nu / nd * hi;
        let u_low = desirable_weight * nd / (nu * hi);
        let u_high = desirable_weight * nd / (nu * lo);

        let (suggested_d, suggested_u) = if in_range {
            (desirable_weight, undesirable_weight)
        } else {
            (round_sig(d_low, Round::Up), round_sig(u_high, Round::Down))
        };

        let sides = format!(
            "{n_desirable} desirable × λD {} vs {n_undesirable} undesirable × λU {}",
            num(desirable_weight),
            num(undesirable_weight)
        );
        let message = if in_range {
            format!(
                "λD·nD / (λU·nU) = {} ({sides}) lies in the recommended range [1, 4/3]: the weights fit the data.",
                num(ratio)
            )
        } else {
            let (where_, which) = if ratio < lo {
                ("below", "desirable examples are under-weighted")
            } else {
                ("above", "desirable examples are over-weighted")
            };
            format!(
                "λD·nD / (λU·nU) = {} ({sides}) is {where_} the recommended range [1, 4/3]: {which}. \
                 Change ONE weight: desirable_weight in [{}, {}] (suggested {}), \
                 OR undesirable_weight in [{}, {}] (suggested {}).",
                num(ratio),
                num(round_sig(d_low, Round::Up)),
                num(round_sig(d_high, Round::Down)),
                num(suggested_d),
                num(round_sig(u_low, Round::Up)),
                num(round_sig(u_high, Round::Down)),
                num(suggested_u),
            )
        };

        Ok(ImbalanceAdvice {
            n_desirable,
            n_undesirable,
            desirable_weight,
            undesirable_weight,
            ratio,
            in_range,
            desirable_weight_range: [d_low, d_high],
            undesirable_weight_range: [u_low, u_high],
            suggested_desirable_weight: suggested_d,
            suggested_undesirable_weight: suggested_u,
            message,
        })
    }
}

impl fmt::Display for ImbalanceAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Clone, Copy)]
enum Round {
    Up,
    Down,
    Nearest,
}

/// Decimal places that show `x` with 4 significant digits (none for x ≥ 1000).
fn places(x: f64) -> usize {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    (3 - x.abs().log10().floor() as i64).clamp(0, 300) as usize
}

/// `x` rounded to 4 significant digits in the given direction. A value already within a
/// hair (1e-9 relative) of the grid is snapped to it, so 10.000000000000002 rounds up to 10.
fn round_sig(x: f64, round: Round) -> f64 {
    let scale = 10f64.powi(places(x) as i32);
    let scaled = x * scale;
    let nearest = scaled.round();
    let r = if (scaled - nearest).abs() <= scaled.abs() * TOLERANCE {
        nearest
    } else {
        match round {
            Round::Up => scaled.ceil(),
            Round::Down => scaled.floor(),
            Round::Nearest => nearest,
        }
    };
    r / scale
}

/// A number for people: 4 significant digits, no trailing zeros (10, 13.33, 0.075).
pub(crate) fn num(x: f64) -> String {
    let s = format!("{:.*}", places(x), round_sig(x, Round::Nearest));
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(num(10.0), "10");
        assert_eq!(num(40.0 / 3.0), "13.33");
        assert_eq!(num(0.075), "0.075");
        assert_eq!(num(1.0 / 3.0), "0.3333");
        assert_eq!(num(1234.5), "1235");
    }

    #[test]
    fn directed_rounding_stays_inside() {
        assert_eq!(round_sig(10.0 / 3.0, Round::Up), 3.334);
        assert_eq!(round_sig(10.0 / 3.0, Round::Down), 3.333);
        assert_eq!(round_sig(10.000000000000002, Round::Up), 10.0);
    }
}
