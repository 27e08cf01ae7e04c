//! KTO's version of the value function: value and loss of one example as functions of
//! `d = r − z0`, and the curves lab 2 draws.

use super::error::{check_positive, ProspectError};
use super::linspace::linspace;
use crate::math::{log_sigmoid, sigmoid};
use serde::{Deserialize, Serialize};

/// The β that TRL and the KTO paper use by default.
pub const DEFAULT_KTO_BETA: f64 = 0.1;

/// Which thumb an example got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

answer_key! {
    /// KTO's loss of an example (the paper's loss): `λ − v`, i.e. `λD·(1 − σ(β·d))` for thumbs up and
    /// `λU·(1 − σ(−β·d))` for thumbs down.
    ///
    /// Bounded by `weight`: it *saturates*. This is what TRL computes. We evaluate it as
    /// `λ·σ(−m)` (the same number, since 1 − σ(m) = σ(−m)) because subtracting two numbers close
    /// to 1 would lose digits once σ(m) is near 1.
    pub fn kto_loss(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
        weight * sigmoid(-margin(d, label, beta))
    }
}

/// The seed notebook's simplified loss, `−λ·log σ(β·d)` (thumbs up) and `−λ·log σ(−β·d)`
/// (thumbs down) — DPO's loss shape applied to one example at a time.
///
/// Unlike [`kto_loss`] it is *unbounded*: it grows about linearly (`≈ −λ·β·d`) on the wrong
/// side, so a single badly-placed example can dominate a batch. Shown for comparison.
pub fn simplified_kto_loss(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
    -weight * log_sigmoid(margin(d, label, beta))
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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
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
    fn bad_beta_or_weights_are_errors_not_panics() {
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
