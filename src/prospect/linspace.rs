//! Evenly spaced sample points for the curves.

use super::error::{check_finite, ProspectError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bad_ranges_are_errors_not_panics() {
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
    }
}
