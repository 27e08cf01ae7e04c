//! Linear layers on the CPU: the bias written first and one GEMM (the `gemm` crate dfdx itself
//! uses) adding the product onto it; the backward adds straight into the gradient buffers.

use dfdx::prelude::*;

use crate::device::on_host;

use super::host::{add_backward, flat, host_copy};
use crate::model::hidden::Hidden;

thread_local! {
    /// Set on the threads that each train one part of a split batch
    /// ([`crate::train`]): the cores are already busy, so their GEMMs stay on one thread.
    static SERIAL_GEMM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's GEMMs kept on this thread (no rayon fan-out). Used when the
/// caller has already put one job on each core.
pub fn with_serial_gemm<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL_GEMM.with(|s| s.replace(true));
    let out = f();
    SERIAL_GEMM.with(|s| s.set(before));
    out
}

/// A row-major matrix view: `data[r·row + c·col]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    row: usize,
    col: usize,
}

impl<'a> View<'a> {
    /// Row-major `[_, width]`.
    fn rows(data: &'a [f32], width: usize) -> Self {
        View {
            data,
            row: width,
            col: 1,
        }
    }
    /// The transpose of a row-major `[_, width]` matrix.
    fn transposed(data: &'a [f32], width: usize) -> Self {
        View {
            data,
            row: 1,
            col: width,
        }
    }
    /// Whether every element of an `m × n` view lies inside `data`.
    fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.row + (n - 1) * self.col < self.data.len()
    }
}

/// `c[m×n] += a[m×k] · b[k×n]` with `c` row-major of width `n` (the `gemm` crate dfdx uses,
/// called directly so the bias and the gradient buffers need no extra pass).
fn gemm_acc(m: usize, n: usize, k: usize, c: &mut [f32], a: View, b: View) {
    assert!(
        c.len() >= m * n && a.fits(m, k) && b.fits(k, n),
        "GEMM shapes"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let parallelism = if SERIAL_GEMM.with(|s| s.get()) {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(0)
    };
    // SAFETY: the assert above keeps every index the kernel touches inside the three slices,
    // and `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.data.as_ptr(),
            a.col as isize,
            a.row as isize,
            b.data.as_ptr(),
            b.col as isize,
            b.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x · Wᵀ + b` for rows `x: [n, I]`, as dfdx's `Linear` computes it: the bias is written into
/// the output first and one GEMM adds the product onto it. The backward adds straight into the
/// gradient buffers: `∂x += ∂y·W`, `∂W += ∂yᵀ·x`, `∂b += Σ_rows ∂y`.
pub fn linear<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    lin: &dfdx::nn::modules::Linear<I, O, f32, D>,
    x: Hidden<I, D, T>,
) -> Result<Hidden<O, D, T>, D::Err> {
    if !on_host::<D>() {
        return lin.try_forward(x);
    }
    matmul_wt(x, &lin.weight, Some(&lin.bias), Weights::Train)
}

/// Whether a layer's own weights are trained or frozen (LoRA: only the adapters learn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Gradients flow into the weights (and the input).
    Train,
    /// Gradients flow into the input only: the backward skips the `∂W` GEMM and allocates no
    /// gradient buffer for the weights. (Off the CPU, dfdx's own ops still compute `∂W`; the
    /// optimizer simply never reads it.)
    Frozen,
}

/// [`linear`] with the layer's weights trained or [`Weights::Frozen`].
pub fn linear_with<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    lin: &dfdx::nn::modules::Linear<I, O, f32, D>,
    x: Hidden<I, D, T>,
    weights: Weights,
) -> Result<Hidden<O, D, T>, D::Err> {
    if !on_host::<D>() {
        return lin.try_forward(x);
    }
    matmul_wt(x, &lin.weight, Some(&lin.bias), weights)
}

/// `x · Wᵀ` for rows `x: [n, I]` and `W: [O, I]`: the tied LM head (`W` = the token embedding).
pub fn matmul_transposed<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: Hidden<I, D, T>,
    weight: &Tensor<(Const<O>, Const<I>), f32, D>,
    weights: Weights,
) -> Result<Hidden<O, D, T>, D::Err> {
    if !on_host::<D>() {
        return x.try_matmul(weight.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?);
    }
    matmul_wt(x, weight, None, weights)
}

fn matmul_wt<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: Hidden<I, D, T>,
    weight: &Tensor<(Const<O>, Const<I>), f32, D>,
    bias: Option<&Tensor<(Const<O>,), f32, D>>,
    weights: Weights,
) -> Result<Hidden<O, D, T>, D::Err> {
    let (x, mut tape) = x.split_tape();
    let x = x.try_contiguous()?;
    let dev = x.device().clone();
    let n = x.shape().0;
    let xs = host_copy(&x)?;
    let w = host_copy(weight)?;
    let mut y = match bias {
        Some(bias) => {
            let b = host_copy(bias)?;
            let mut y = Vec::with_capacity(n * O);
            for _ in 0..n {
                y.extend_from_slice(&b);
            }
            y
        }
        None => vec![0.0; n * O],
    };
    gemm_acc(n, O, I, &mut y, View::rows(&xs, I), View::transposed(&w, I));
    let y = dev.try_tensor_from_vec(y, (n, Const::<O>))?;
    if weights == Weights::Frozen {
        // ∂x only: no ∂W GEMM, no gradient buffer for the weights.
        add_backward(&mut tape, &y, [flat(&x)], move |gy, [gx]| {
            gemm_acc(n, I, O, gx, View::rows(gy, O), View::rows(&w, I));
        });
        return Ok(y.put_tape(tape));
    }
    // ∂x += ∂y·W ([n, O]·[O, I]) and ∂W += ∂yᵀ·x ([O, n]·[n, I]).
    let backward = move |gy: &[f32], gx: &mut [f32], gw: &mut [f32]| {
        gemm_acc(n, I, O, gx, View::rows(gy, O), View::rows(&w, I));
        gemm_acc(O, I, n, gw, View::transposed(gy, O), View::rows(&xs, I));
    };
    match bias {
        Some(bias) => {
            let inputs = [flat(&x), flat(weight), flat(bias)];
            add_backward(&mut tape, &y, inputs, move |gy, [gx, gw, gb]| {
                backward(gy, gx, gw);
                for row in gy.chunks_exact(O) {
                    for (g, v) in gb.iter_mut().zip(row) {
                        *g += v;
                    }
                }
            });
        }
        None => {
            let inputs = [flat(&x), flat(weight)];
            add_backward(&mut tape, &y, inputs, move |gy, [gx, gw]| {
                backward(gy, gx, gw)
            });
        }
    }
    Ok(y.put_tape(tape))
}
