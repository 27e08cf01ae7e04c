//! Log-softmax over the vocabulary and the pick of the target token, in one pass per row.

use dfdx::prelude::*;

use crate::device::on_host;

use super::host::{add_backward, flat, host_copy, with_avx2};
use super::simd::exp;

/// `log softmax(logits[i])[targets[i]]` for every row `i`: `[n, V]` logits → `[n]` log-probs,
/// carrying the logits' tape. Errors (with the device's `WrongNumElements`) if `targets` has not
/// one entry per row or holds an id ≥ `V`.
pub fn select_logprobs<const V: usize, D: Device<f32>, T: Tape<f32, D>>(
    logits: Tensor<(usize, Const<V>), f32, D, T>,
    targets: &[usize],
) -> Result<Tensor<(usize,), f32, D, T>, D::Err> {
    let dev = logits.device().clone();
    let n = logits.shape().0;
    if targets.len() != n || targets.iter().any(|&t| t >= V) {
        // Let the device report it in its own error type (dfdx's `WrongNumElements`).
        dev.try_tensor_from_vec(Vec::<f32>::new(), (n + 1,))?;
    }
    if !on_host::<D>() {
        let targets = dev.try_tensor_from_vec(targets.to_vec(), (n,))?;
        return logits.try_log_softmax::<Axis<1>>()?.try_select(targets);
    }
    let (x, mut tape) = logits.split_tape();
    let x = x.try_contiguous()?;
    // Overwritten with the softmax row by row: the backward needs it.
    let mut probs = host_copy(&x)?;
    let mut out = Vec::with_capacity(n);
    with_avx2(
        #[inline(always)]
        || {
            for (row, &t) in probs.chunks_exact_mut(V).zip(targets) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let picked = row[t];
                let mut total = 0.0f32;
                for v in row.iter_mut() {
                    *v = exp(*v - max);
                    total += *v;
                }
                out.push(picked - max - total.ln());
                for v in row.iter_mut() {
                    *v /= total;
                }
            }
        },
    );
    let y = dev.try_tensor_from_vec(out, (n,))?;
    let targets = targets.to_vec();
    add_backward(&mut tape, &y, [flat(&x)], move |gy, [gx]| {
        // ∂ log p_t / ∂x_j = [j = t] − p_j
        for (i, (gx, p)) in gx
            .chunks_exact_mut(V)
            .zip(probs.chunks_exact(V))
            .enumerate()
        {
            for (g, p) in gx.iter_mut().zip(p) {
                *g -= gy[i] * p;
            }
            gx[targets[i]] += gy[i];
        }
    });
    Ok(y.put_tape(tape))
}
