//! Small tensor operations dfdx 0.13 does not ship.

use dfdx::prelude::*;

/// log σ(x), element-wise, stable for any finite x.
///
/// dfdx has no log-sigmoid, and `x.sigmoid().ln()` returns −inf (and a NaN gradient) once σ(x)
/// underflows. Binary cross-entropy with logits against a target of 1 is exactly −log σ(x), and dfdx
/// computes it as max(x, 0) − x + ln(1 + e^(−|x|)), which never overflows; its gradient
/// −σ(−x) is exact too. So log σ(x) = −bce_with_logits(x, 1).
pub fn log_sigmoid<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
) -> Tensor<S, f32, D, T> {
    let ones = x.device().ones_like(&x);
    x.bce_with_logits(ones).negate()
}

/// Copies a 1-D tensor to the host (for metrics and validation).
/// A zero-length batch gives an empty vector (dfdx itself cannot read out an empty tensor).
pub(crate) fn host<D: Device<f32>, T>(t: &Tensor<(usize,), f32, D, T>) -> Vec<f32> {
    if t.shape().0 == 0 {
        Vec::new()
    } else {
        t.as_vec()
    }
}

/// Checks an unpaired loss's inputs (config, a non-empty batch, lengths matching the labels,
/// finite log-probs) and returns the policy and reference log-probs on the host.
pub(crate) fn unpaired_inputs<D: Device<f32>, T>(
    policy_logps: &Tensor<(usize,), f32, D, T>,
    reference_logps: &Tensor<(usize,), f32, D>,
    labels: &[bool],
    cfg: &super::KtoConfig,
) -> Result<(Vec<f32>, Vec<f32>), super::LossError> {
    cfg.validate()?;
    let n = labels.len();
    if n == 0 {
        return Err(super::LossError::EmptyBatch { field: "labels" });
    }
    let policy = host(policy_logps);
    let reference = host(reference_logps);
    super::error::check_finite("policy_logps", &policy, "labels", n)?;
    super::error::check_finite("reference_logps", &reference, "labels", n)?;
    Ok((policy, reference))
}

/// One value per example: `up` for a thumbs up, `down` for a thumbs down, as a batch tensor.
pub(crate) fn per_label<D: Device<f32>>(
    dev: &D,
    labels: &[bool],
    up: f32,
    down: f32,
) -> Tensor<(usize,), f32, D> {
    let values = labels
        .iter()
        .map(|&good| if good { up } else { down })
        .collect();
    dev.tensor_from_vec(values, (labels.len(),))
}

/// The mean of the selected entries, or `None` when nothing is selected.
pub(crate) fn masked_mean(values: &[f32], keep: impl Fn(usize) -> bool) -> Option<f32> {
    let (sum, n) = values
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .fold((0.0f64, 0usize), |(s, n), (_, &v)| (s + v as f64, n + 1));
    (n > 0).then(|| (sum / n as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math;

    #[test]
    fn log_sigmoid_matches_the_scalar_reference_and_stays_finite() {
        let dev = Cpu::default();
        let xs = vec![-200.0f32, -30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0, 200.0];
        let t = dev.tensor_from_vec(xs.clone(), (xs.len(),));
        let got = log_sigmoid(t).as_vec();
        for (x, y) in xs.iter().zip(&got) {
            let want = math::log_sigmoid(*x as f64) as f32;
            assert!(y.is_finite(), "log σ({x}) = {y}");
            assert!(
                (y - want).abs() <= 1e-5 * want.abs().max(1.0),
                "log σ({x}) = {y}, want {want}"
            );
        }
    }

    #[test]
    fn log_sigmoid_gradient_is_sigma_of_minus_x_even_in_the_tails() {
        let dev = Cpu::default();
        let xs = vec![-200.0f32, -3.0, 0.0, 1.5, 200.0];
        let t = dev.tensor_from_vec(xs.clone(), (xs.len(),));
        let grads = log_sigmoid(t.leaky_trace()).sum().backward();
        let g = grads.get(&t).as_vec();
        for (x, gx) in xs.iter().zip(&g) {
            let want = math::sigmoid(-*x as f64) as f32;
            assert!(gx.is_finite());
            assert!(
                (gx - want).abs() < 1e-6,
                "d log σ / dx at {x} = {gx}, want {want}"
            );
        }
    }
}
