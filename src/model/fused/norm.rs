//! LayerNorm on the CPU: one forward loop, one backward loop.

use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;

use crate::device::on_host;

use super::host::{add_backward, flat, host_copy, with_avx2};
use crate::model::hidden::Hidden;

/// LayerNorm over the width of `[n, M]` rows, as dfdx's `LayerNorm1D` computes it
/// (`(x − mean) / sqrt(var + ε) · γ + β`, biased variance).
pub fn layer_norm<const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    ln: &LayerNorm1D<M, f32, D>,
    x: Hidden<M, D, T>,
) -> Result<Hidden<M, D, T>, D::Err> {
    if !on_host::<D>() {
        return ln.try_forward(x);
    }
    let (x, mut tape) = x.split_tape();
    let x = x.try_contiguous()?;
    let dev = x.device().clone();
    let n = x.shape().0;
    let xs = host_copy(&x)?;
    let gamma = host_copy(&ln.gamma)?;
    let beta = host_copy(&ln.beta)?;
    let eps = ln.epsilon as f32;
    let mut y = vec![0.0f32; n * M];
    let mut xhat = vec![0.0f32; if T::OWNS_TAPE { n * M } else { 0 }];
    let mut rstd = vec![0.0f32; n];
    with_avx2(
        #[inline(always)]
        || {
            for r in 0..n {
                let row = &xs[r * M..(r + 1) * M];
                let mean = row.iter().sum::<f32>() / M as f32;
                let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / M as f32;
                let rs = 1.0 / (var + eps).sqrt();
                rstd[r] = rs;
                for j in 0..M {
                    let h = (row[j] - mean) * rs;
                    y[r * M + j] = h * gamma[j] + beta[j];
                    if T::OWNS_TAPE {
                        xhat[r * M + j] = h;
                    }
                }
            }
        },
    );
    let y = dev.try_tensor_from_vec(y, (n, Const::<M>))?;
    let inputs = [flat(&x), flat(&ln.gamma), flat(&ln.beta)];
    add_backward(&mut tape, &y, inputs, move |gy, [gx, gg, gb]| {
        for r in 0..n {
            let (gy, h) = (&gy[r * M..(r + 1) * M], &xhat[r * M..(r + 1) * M]);
            let (mut mean_g, mut mean_gh) = (0.0f32, 0.0f32);
            for j in 0..M {
                let g = gy[j] * gamma[j];
                gg[j] += gy[j] * h[j];
                gb[j] += gy[j];
                mean_g += g;
                mean_gh += g * h[j];
            }
            mean_g /= M as f32;
            mean_gh /= M as f32;
            let gx = &mut gx[r * M..(r + 1) * M];
            for j in 0..M {
                gx[j] += rstd[r] * (gy[j] * gamma[j] - mean_g - h[j] * mean_gh);
            }
        }
    });
    Ok(y.put_tape(tape))
}
