//! GPT-2's tanh GELU on the CPU, its derivative kept by the forward loop for the backward one.

use dfdx::prelude::*;

use crate::device::on_host;

use super::host::{add_backward, flat, host_copy, with_avx2};
use super::simd::exp;

/// √(2/π), the scale inside GPT-2's tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of GPT-2's tanh GELU.
const GELU_CUBIC: f32 = 0.044_715;

/// GPT-2's tanh GELU, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the function of dfdx's
/// `fast_gelu` — computed as `x·σ(2·√(2/π)·(x + 0.044715·x³))`, since `(1 + tanh(u))/2 = σ(2u)`.
/// The forward loop also keeps the derivative for the backward one.
pub fn gelu<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
) -> Result<Tensor<S, f32, D, T>, D::Err> {
    let two_c = 2.0 * SQRT_2_OVER_PI;
    if !on_host::<D>() {
        // 2c·(x + k·x³) = x·(2c + 2ck·x²)
        let u = x
            .with_empty_tape()
            .try_square()?
            .try_mul(two_c * GELU_CUBIC)?
            .try_add(two_c)?
            .try_mul(x.with_empty_tape())?;
        return u.try_sigmoid()?.try_mul(x);
    }
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let x = x.try_contiguous()?;
    let dev = x.device().clone();
    let mut ys = host_copy(&x)?;
    // Two loops, each straight-line per element, so both compile to SIMD code.
    let mut derivative = vec![0.0f32; if T::OWNS_TAPE { ys.len() } else { 0 }];
    with_avx2(
        #[inline(always)]
        || {
            if T::OWNS_TAPE {
                for (v, d) in ys.iter_mut().zip(derivative.iter_mut()) {
                    let x = *v;
                    let u = x * (two_c + two_c * GELU_CUBIC * x * x);
                    let s = 1.0 / (1.0 + exp(-u));
                    *v = x * s;
                    // d/dx x·σ(u(x)) = σ + x·σ(1 − σ)·u'(x),  u' = 2c + 6ck·x²
                    let du = two_c + 3.0 * two_c * GELU_CUBIC * x * x;
                    *d = s + x * s * (1.0 - s) * du;
                }
            } else {
                for v in ys.iter_mut() {
                    let x = *v;
                    let u = x * (two_c + two_c * GELU_CUBIC * x * x);
                    // The same operations as above, so taped and untaped values are bit-identical.
                    *v = x * (1.0 / (1.0 + exp(-u)));
                }
            }
        },
    );
    let y = dev.try_tensor_from_vec(ys, shape)?;
    add_backward(&mut tape, &y, [flat(&x)], move |gy, [gx]| {
        for ((gx, gy), d) in gx.iter_mut().zip(gy).zip(&derivative) {
            *gx += gy * d;
        }
    });
    Ok(y.put_tape(tape))
}
