//! Scalar helpers shared by the plain-data APIs and the charts.
//!
//! The tensor versions live in [`crate::losses::ops`]; these are the `f64` twins used
//! where no autodiff is needed (curves for the prospect-theory lab, reference values in tests).

/// The logistic function σ(x) = 1 / (1 + e^(−x)), computed without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log σ(x) = min(x, 0) − ln(1 + e^(−|x|)): finite for every finite x
/// (the naive `sigmoid(x).ln()` returns −inf once σ underflows, near x ≈ −745).
pub fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_symmetric_and_bounded() {
        for &x in &[-800.0, -30.0, -1.0, 0.0, 0.5, 30.0, 800.0] {
            let s = sigmoid(x);
            assert!((0.0..=1.0).contains(&s), "σ({x}) = {s}");
            assert!((s + sigmoid(-x) - 1.0).abs() < 1e-12);
        }
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn log_sigmoid_matches_naive_where_naive_is_exact_and_stays_finite_elsewhere() {
        for &x in &[-20.0, -3.0, -0.1, 0.0, 0.1, 3.0, 20.0] {
            let naive = (1.0 / (1.0 + f64::exp(-x))).ln();
            assert!((log_sigmoid(x) - naive).abs() < 1e-12, "x = {x}");
        }
        // Far in the tails: log σ(x) ≈ x for very negative x, ≈ −e^(−x) for very positive x.
        assert!((log_sigmoid(-1000.0) + 1000.0).abs() < 1e-9);
        assert!(log_sigmoid(1000.0) <= 0.0 && log_sigmoid(1000.0) > -1e-300);
    }
}
