//! The Kahneman–Tversky value function: concave for gains, convex and λ times steeper for
//! losses.

use super::error::{check_curvature, check_positive, ProspectError};
use super::linspace::linspace;
use serde::{Deserialize, Serialize};

/// The three numbers of the Kahneman–Tversky value function.
///
/// `Default` gives the estimates of Tversky & Kahneman (1992), measured on people choosing
/// between gambles: α = β = 0.88, λ = 2.25.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProspectParams {
    /// Curvature for gains, in (0, 1]: below 1, each extra unit of gain is worth a bit less.
    pub alpha: f64,
    /// Curvature for losses, in (0, 1]: below 1, each extra unit of loss hurts a bit less.
    pub beta: f64,
    /// Loss aversion, > 0: how many times more a loss hurts than an equal gain pleases.
    pub lambda: f64,
}

impl Default for ProspectParams {
    fn default() -> Self {
        Self {
            alpha: 0.88,
            beta: 0.88,
            lambda: 2.25,
        }
    }
}

impl ProspectParams {
    /// Checks α, β ∈ (0, 1] and λ > 0, all finite.
    pub fn validate(&self) -> Result<(), ProspectError> {
        check_curvature("alpha", self.alpha)?;
        check_curvature("beta", self.beta)?;
        check_positive("lambda", self.lambda)
    }
}

answer_key! {
    /// The value function v(x): `x^α` for gains (x ≥ 0), `−λ·(−x)^β` for losses (x < 0).
    ///
    /// `x` is an outcome *relative to the reference point* (0 = "nothing changed").
    /// This is pure arithmetic and never panics; with parameters that fail
    /// [`ProspectParams::validate`] the number it returns is meaningless, so check them first
    /// (the curve helpers, e.g. [`value_curve`], do).
    pub fn value(x: f64, p: &ProspectParams) -> f64 {
        if x >= 0.0 {
            x.powf(p.alpha)
        } else {
            -p.lambda * (-x).powf(p.beta)
        }
    }
}

/// Points `(x, v(x))` of the value function on `n` evenly spaced x in `[lo, hi]`.
pub fn value_curve(
    params: &ProspectParams,
    lo: f64,
    hi: f64,
    n: usize,
) -> Result<Vec<(f64, f64)>, ProspectError> {
    params.validate()?;
    Ok(linspace(lo, hi, n)?
        .into_iter()
        .map(|x| (x, value(x, params)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TK: ProspectParams = ProspectParams {
        alpha: 0.88,
        beta: 0.88,
        lambda: 2.25,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn default_is_tversky_kahneman_1992() {
        assert_eq!(ProspectParams::default(), TK);
        assert!(TK.validate().is_ok());
    }

    #[test]
    fn value_matches_hand_computed_numbers() {
        assert_eq!(value(0.0, &TK), 0.0);
        assert!(close(value(1.0, &TK), 1.0));
        assert!(close(value(-1.0, &TK), -2.25));
        assert!(close(value(2.0, &TK), 2f64.powf(0.88)));
        assert!(close(value(-2.0, &TK), -2.25 * 2f64.powf(0.88)));
        // 2^0.88 = e^(0.88 ln 2) ≈ 1.8404
        assert!((value(2.0, &TK) - 1.8404).abs() < 1e-4);
    }

    #[test]
    fn value_is_continuous_at_zero() {
        for eps in [1e-6, 1e-9, 1e-12] {
            assert!(value(eps, &TK).abs() < 1e-4, "v(+{eps})");
            assert!(value(-eps, &TK).abs() < 1e-4, "v(-{eps})");
        }
    }

    #[test]
    fn losses_loom_larger_by_exactly_lambda_when_curvatures_match() {
        for x in [0.1, 0.5, 1.0, 2.0, 3.0, 10.0] {
            let gain = value(x, &TK);
            let loss = value(-x, &TK);
            assert!((loss.abs() - TK.lambda * gain).abs() < 1e-12, "x = {x}");
        }
    }

    #[test]
    fn value_is_increasing() {
        let curve = value_curve(&TK, -3.0, 3.0, 121).unwrap();
        assert!(curve.windows(2).all(|w| w[1].1 > w[0].1));
    }

    #[test]
    fn bad_parameters_are_errors_not_panics() {
        let bad = |p: ProspectParams| value_curve(&p, -1.0, 1.0, 5);
        assert!(matches!(
            bad(ProspectParams { lambda: 0.0, ..TK }),
            Err(ProspectError::NotPositive { name: "lambda", .. })
        ));
        assert!(matches!(
            bad(ProspectParams { alpha: 1.5, ..TK }),
            Err(ProspectError::CurvatureOutOfRange { name: "alpha", .. })
        ));
        assert!(matches!(
            bad(ProspectParams { beta: 0.0, ..TK }),
            Err(ProspectError::CurvatureOutOfRange { name: "beta", .. })
        ));
        assert!(matches!(
            bad(ProspectParams {
                alpha: f64::NAN,
                ..TK
            }),
            Err(ProspectError::NonFinite { name: "alpha", .. })
        ));
    }
}
