//! Lab 2 — prospect theory, and why KTO is named after Kahneman and Tversky.
//!
//! Prospect theory says people do not judge outcomes by their absolute size but by
//! *gains and losses relative to a reference point*, and that they judge them unevenly:
//!
//! * **diminishing sensitivity** — the step from 0 to 100 feels bigger than the step from
//!   1000 to 1100, so the value function is concave for gains (and convex for losses);
//! * **loss aversion** — losing 100 hurts about twice as much as winning 100 pleases, so the
//!   curve is steeper for losses by a factor λ ≈ 2.25.
//!
//! KTO (Ethayarajh et al. 2024) borrows that shape for alignment. The "outcome" is
//! `d = r − z0`: how much more likely the policy makes a completion than the reference
//! model does (`r`, a log-ratio), measured against a reference point `z0` (an estimate of
//! the policy/reference KL). A thumbs-up example is worth `λD·σ(β·d)`, a thumbs-down one
//! `λU·σ(−β·d)`; the logistic σ plays the role of the S-shaped value function, and the
//! loss is what is still missing from the best possible value: `λ − v`.
//!
//! Every function here is plain `f64` arithmetic so that a notebook can print, test and plot
//! it; [`crate::charts`] turns the curves into pictures.

use crate::math::{log_sigmoid, sigmoid};
use serde::Serialize;
use thiserror::Error;

/// The β that TRL and the KTO paper use by default.
pub const DEFAULT_KTO_BETA: f64 = 0.1;

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

fn check_finite(name: &'static str, value: f64) -> Result<(), ProspectError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ProspectError::NonFinite { name, value })
    }
}

fn check_positive(name: &'static str, value: f64) -> Result<(), ProspectError> {
    check_finite(name, value)?;
    if value > 0.0 {
        Ok(())
    } else {
        Err(ProspectError::NotPositive { name, value })
    }
}

fn check_curvature(name: &'static str, value: f64) -> Result<(), ProspectError> {
    check_finite(name, value)?;
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ProspectError::CurvatureOutOfRange { name, value })
    }
}

// ---------------------------------------------------------------------------------------
// The Kahneman–Tversky value function
// ---------------------------------------------------------------------------------------

/// The three numbers of the Kahneman–Tversky value function.
///
/// `Default` gives the estimates of Tversky & Kahneman (1992), measured on people choosing
/// between gambles: α = β = 0.88, λ = 2.25.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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

/// The value function v(x): `x^α` for gains (x ≥ 0), `−λ·(−x)^β` for losses (x < 0).
///
/// `x` is an outcome *relative to the reference point* (0 = "nothing changed").
/// This is pure arithmetic and never panics; with parameters that fail
/// [`ProspectParams::validate`] the number it returns is meaningless, so check them first
/// (the curve helpers, e.g. [`value_curve`], do).
pub fn value(x: f64, p: &ProspectParams) -> f64 {
    crate::checks::grading::reference("prospect::value");
    if x >= 0.0 {
        x.powf(p.alpha)
    } else {
        -p.lambda * (-x).powf(p.beta)
    }
}

// ---------------------------------------------------------------------------------------
// KTO's version: value and loss as functions of d = r − z0
// ---------------------------------------------------------------------------------------

/// Which thumb an example got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Label {
    /// Thumbs up: we want the policy to make this completion *more* likely than the reference does.
    Desirable,
    /// Thumbs down: we want the policy to make it *less* likely.
    Undesirable,
}

/// The signed margin: how far `d` is on the *good* side for this label, times β.
///
/// Desirable examples are good when `d > 0`, undesirable ones when `d < 0`; writing both as
/// one margin `m` lets the value, the loss and the simplified loss share one formula each.
fn margin(d: f64, label: Label, beta: f64) -> f64 {
    match label {
        Label::Desirable => beta * d,
        Label::Undesirable => -beta * d,
    }
}

/// KTO's value of an example (the paper's value function): `λD·σ(β·d)` for thumbs up, `λU·σ(−β·d)` for
/// thumbs down, with `d = r − z0` and `weight` the λ of that label.
///
/// It lives in `(0, weight)`: like a person's value function it flattens out at both ends,
/// so an example already far on the right side (or hopelessly on the wrong side) stops
/// mattering much.
pub fn kto_value(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
    weight * sigmoid(margin(d, label, beta))
}

/// KTO's loss of an example (the paper's loss): `λ − v`, i.e. `λD·(1 − σ(β·d))` for thumbs up and
/// `λU·(1 − σ(−β·d))` for thumbs down.
///
/// Bounded by `weight`: it *saturates*. This is what TRL computes. We evaluate it as
/// `λ·σ(−m)` (the same number, since 1 − σ(m) = σ(−m)) because subtracting two numbers close
/// to 1 would lose digits once σ(m) is near 1.
pub fn kto_loss(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
    crate::checks::grading::reference("prospect::kto_loss");
    weight * sigmoid(-margin(d, label, beta))
}

/// The seed notebook's simplified loss, `−λ·log σ(β·d)` (thumbs up) and `−λ·log σ(−β·d)`
/// (thumbs down) — DPO's loss shape applied to one example at a time.
///
/// Unlike [`kto_loss`] it is *unbounded*: it grows about linearly (`≈ −λ·β·d`) on the wrong
/// side, so a single badly-placed example can dominate a batch. Shown for comparison.
pub fn simplified_kto_loss(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
    -weight * log_sigmoid(margin(d, label, beta))
}

// ---------------------------------------------------------------------------------------
// Curves for plotting
// ---------------------------------------------------------------------------------------

/// `n` evenly spaced numbers from `lo` to `hi`, both included (like NumPy's `linspace`).
///
/// Each point is computed as `lo + (hi − lo)·i/(n − 1)` rather than by adding a step
/// repeatedly, so rounding errors do not pile up and the last point is exactly `hi`.
pub fn linspace(lo: f64, hi: f64, n: usize) -> Result<Vec<f64>, ProspectError> {
    check_range(lo, hi, n)?;
    let last = (n - 1) as f64;
    Ok((0..n)
        .map(|i| {
            if i == n - 1 {
                hi
            } else {
                lo + (hi - lo) * (i as f64) / last
            }
        })
        .collect())
}

fn check_range(lo: f64, hi: f64, n: usize) -> Result<(), ProspectError> {
    check_finite("lo", lo)?;
    check_finite("hi", hi)?;
    if n < 2 {
        return Err(ProspectError::TooFewPoints(n));
    }
    if lo >= hi {
        return Err(ProspectError::EmptyRange { lo, hi });
    }
    Ok(())
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

/// Every KTO curve lab 2 draws, each as points `(d, y)` with `d = r − z0`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KtoCurves {
    /// The β the curves were computed with.
    pub beta: f64,
    /// λD, the weight of thumbs-up examples.
    pub desirable_weight: f64,
    /// λU, the weight of thumbs-down examples.
    pub undesirable_weight: f64,
    /// Paper loss for thumbs up, `λD·(1 − σ(β·d))`: falls from λD to 0.
    pub desirable_loss: Vec<(f64, f64)>,
    /// Paper loss for thumbs down, `λU·(1 − σ(−β·d))`: rises from 0 to λU.
    pub undesirable_loss: Vec<(f64, f64)>,
    /// Simplified loss for thumbs up, `−λD·log σ(β·d)`: unbounded on the left.
    pub desirable_simplified_loss: Vec<(f64, f64)>,
    /// Simplified loss for thumbs down, `−λU·log σ(−β·d)`: unbounded on the right.
    pub undesirable_simplified_loss: Vec<(f64, f64)>,
    /// KTO value for thumbs up, `λD·σ(β·d)`.
    pub desirable_value: Vec<(f64, f64)>,
    /// KTO value for thumbs down, `λU·σ(−β·d)`.
    pub undesirable_value: Vec<(f64, f64)>,
}

/// Computes all [`KtoCurves`] on `n` evenly spaced `d` in `[lo, hi]`.
///
/// `beta` and both weights must be finite and positive (TRL's defaults: 0.1, 1.0, 1.0).
pub fn kto_curves(
    beta: f64,
    desirable_weight: f64,
    undesirable_weight: f64,
    lo: f64,
    hi: f64,
    n: usize,
) -> Result<KtoCurves, ProspectError> {
    check_positive("beta", beta)?;
    check_positive("desirable_weight", desirable_weight)?;
    check_positive("undesirable_weight", undesirable_weight)?;
    let ds = linspace(lo, hi, n)?;
    let curve = |f: fn(f64, Label, f64, f64) -> f64, label: Label| -> Vec<(f64, f64)> {
        let weight = match label {
            Label::Desirable => desirable_weight,
            Label::Undesirable => undesirable_weight,
        };
        ds.iter().map(|&d| (d, f(d, label, beta, weight))).collect()
    };
    Ok(KtoCurves {
        beta,
        desirable_weight,
        undesirable_weight,
        desirable_loss: curve(kto_loss, Label::Desirable),
        undesirable_loss: curve(kto_loss, Label::Undesirable),
        desirable_simplified_loss: curve(simplified_kto_loss, Label::Desirable),
        undesirable_simplified_loss: curve(simplified_kto_loss, Label::Undesirable),
        desirable_value: curve(kto_value, Label::Desirable),
        undesirable_value: curve(kto_value, Label::Undesirable),
    })
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
    fn kto_loss_at_the_reference_point_is_half_the_weight() {
        for (beta, w) in [(0.1, 1.0), (0.5, 1.33), (2.0, 0.25)] {
            assert!(close(kto_loss(0.0, Label::Desirable, beta, w), w / 2.0));
            assert!(close(kto_loss(0.0, Label::Undesirable, beta, w), w / 2.0));
            // The simplified loss starts at λ·ln 2 instead.
            let s = simplified_kto_loss(0.0, Label::Desirable, beta, w);
            assert!(close(s, w * std::f64::consts::LN_2));
        }
    }

    #[test]
    fn loss_plus_value_is_the_weight() {
        for d in [-50.0, -3.0, 0.0, 0.7, 40.0] {
            for label in [Label::Desirable, Label::Undesirable] {
                let sum = kto_loss(d, label, 0.1, 1.5) + kto_value(d, label, 0.1, 1.5);
                assert!(close(sum, 1.5), "d = {d}, {label:?}");
            }
        }
    }

    #[test]
    fn paper_loss_saturates_and_simplified_does_not() {
        let (beta, w) = (0.1, 1.0);
        for d in [-1e6, -1e3, -40.0, 0.0, 40.0, 1e3, 1e6] {
            for label in [Label::Desirable, Label::Undesirable] {
                let l = kto_loss(d, label, beta, w);
                assert!((0.0..=w).contains(&l), "d = {d}: {l}");
            }
        }
        // Far on the wrong side the paper loss is pinned at λ ...
        assert!((kto_loss(-1e3, Label::Desirable, beta, w) - w).abs() < 1e-12);
        assert!((kto_loss(1e3, Label::Undesirable, beta, w) - w).abs() < 1e-12);
        // ... while the simplified loss keeps growing like β·|d|.
        let far = simplified_kto_loss(-1e3, Label::Desirable, beta, w);
        assert!((far - 100.0).abs() < 1e-9, "{far}");
        assert!(simplified_kto_loss(1e3, Label::Undesirable, beta, w) > 99.0);
    }

    #[test]
    fn desirable_loss_falls_and_undesirable_loss_rises_with_d() {
        let c = kto_curves(0.1, 1.0, 1.0, -40.0, 40.0, 81).unwrap();
        let falls = |v: &[(f64, f64)]| v.windows(2).all(|w| w[1].1 < w[0].1);
        let rises = |v: &[(f64, f64)]| v.windows(2).all(|w| w[1].1 > w[0].1);
        assert!(falls(&c.desirable_loss));
        assert!(falls(&c.desirable_simplified_loss));
        assert!(rises(&c.desirable_value));
        assert!(rises(&c.undesirable_loss));
        assert!(rises(&c.undesirable_simplified_loss));
        assert!(falls(&c.undesirable_value));
    }

    #[test]
    fn weights_scale_the_curves() {
        let c = kto_curves(0.1, 1.0, 2.25, -1.0, 1.0, 3).unwrap();
        assert!(close(c.desirable_loss[1].1, 0.5));
        assert!(close(c.undesirable_loss[1].1, 1.125));
    }

    #[test]
    fn linspace_hits_both_ends_and_zero() {
        let xs = linspace(-3.0, 3.0, 121).unwrap();
        assert_eq!(xs.len(), 121);
        assert_eq!(xs[0], -3.0);
        assert_eq!(xs[120], 3.0);
        assert_eq!(xs[60], 0.0);
        assert_eq!(linspace(0.0, 1.0, 2).unwrap(), vec![0.0, 1.0]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(linspace(0.0, 1.0, 1), Err(ProspectError::TooFewPoints(1)));
        assert!(matches!(
            linspace(1.0, 1.0, 10),
            Err(ProspectError::EmptyRange { .. })
        ));
        assert!(matches!(
            linspace(f64::NAN, 1.0, 10),
            Err(ProspectError::NonFinite { name: "lo", .. })
        ));
        assert!(matches!(
            linspace(0.0, f64::INFINITY, 10),
            Err(ProspectError::NonFinite { name: "hi", .. })
        ));
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
        assert!(matches!(
            kto_curves(-0.1, 1.0, 1.0, -1.0, 1.0, 5),
            Err(ProspectError::NotPositive { name: "beta", .. })
        ));
        assert!(matches!(
            kto_curves(0.1, 1.0, f64::NAN, -1.0, 1.0, 5),
            Err(ProspectError::NonFinite {
                name: "undesirable_weight",
                ..
            })
        ));
    }
}
