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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_is_dfdx_layer_norm_values_and_gradients() {
        let dev = Cpu::default();
        let mut ln: LayerNorm1D<8, f32, Cpu> = LayerNorm1D {
            gamma: dev.tensor_from_vec((0..8).map(|i| 0.5 + 0.1 * i as f32).collect(), (Const,)),
            beta: dev.tensor_from_vec((0..8).map(|i| 0.05 * i as f32 - 0.2).collect(), (Const,)),
            epsilon: 1e-5,
        };
        let xs: Vec<f32> = (0..5 * 8)
            .map(|i| ((i * 13) % 17) as f32 * 0.3 - 2.0)
            .collect();
        let x: Tensor<(usize, Const<8>), f32, Cpu> = dev.tensor_from_vec(xs, (5, Const));
        let w: Tensor<(usize, Const<8>), f32, Cpu> = dev.tensor_from_vec(
            (0..40).map(|i| ((i * 7) % 5) as f32 - 2.0).collect(),
            (5, Const),
        );
        let run = |ln: &LayerNorm1D<8, f32, Cpu>, fused: bool| {
            let mut grads = Gradients::leaky();
            let y = if fused {
                layer_norm(ln, x.trace(grads))
            } else {
                ln.try_forward(x.trace(grads))
            }
            .unwrap();
            let values = y.as_vec();
            grads = (y * w.clone()).sum().backward();
            (
                values,
                grads.get(&x).as_vec(),
                grads.get(&ln.gamma).as_vec(),
                grads.get(&ln.beta).as_vec(),
            )
        };
        let (ours, theirs) = (run(&ln, true), run(&ln, false));
        for (a, b) in [
            (&ours.0, &theirs.0),
            (&ours.1, &theirs.1),
            (&ours.2, &theirs.2),
            (&ours.3, &theirs.3),
        ] {
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(b) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        let untaped = layer_norm(&ln, x.clone()).unwrap().as_vec();
        assert_eq!(untaped, ours.0);
        ln.epsilon = 0.5;
        assert_ne!(layer_norm(&ln, x.clone()).unwrap().as_vec(), untaped);
    }
}
