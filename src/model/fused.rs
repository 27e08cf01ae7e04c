//! The hot spots of a training step as single host loops instead of chains of dfdx ops:
//! the linear layers (bias and GEMM in one pass, via the `gemm` crate dfdx itself uses), the
//! attention core (scores, causal softmax and weighted values per row and head, in place),
//! LayerNorm, GELU, and the log-softmax + pick of the target token.
//!
//! dfdx runs each element-wise op as its own kernel with its own output buffer, forward and
//! backward: a LayerNorm is about ten such ops, GELU six, a softmax five, a linear layer a
//! GEMM plus a broadcast add whose backward is a strided reduction, and attention needs four
//! permuted copies of q, k, v and its output. Here each is one forward loop and one backward
//! loop. The backward is registered on dfdx's tape as a closure (`Tape::add_backward_op`, public
//! API) that reads the output's gradient and adds into the inputs' gradients, as dfdx's own ops
//! do. Those buffers are only reachable on the CPU device, so these functions take the loops on
//! `Cpu` ([`on_host`]) and run the equivalent chain of dfdx ops on any other device (CUDA): the
//! model stays device-generic. Each function's unit test checks values and gradients against
//! the plain dfdx ops.

use std::any::{Any, TypeId};

use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;

use super::Hidden;

/// Attention scores or weights, `[batch, heads, query, key]`.
pub type Scores<D, T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, D, T>;

/// Whether `D` keeps its numbers in host memory (dfdx's `Cpu`): then the fused host loops are
/// used; otherwise the equivalent chain of dfdx ops.
pub fn on_host<D: Device<f32>>() -> bool {
    TypeId::of::<D>() == TypeId::of::<Cpu>()
}

/// A tensor's numbers in a host vector, row-major. `try_contiguous` is free for a contiguous
/// tensor (every input here comes out of a matmul or an element-wise op) and makes one otherwise.
fn host_copy<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Result<Vec<f32>, D::Err> {
    let t = t.clone().try_contiguous()?;
    let mut out = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut out);
    Ok(out)
}

/// The CPU view of a generic gradient store. Only called when [`on_host`] said `D` is `Cpu`.
fn cpu_grads<D: Device<f32>>(grads: &mut Gradients<f32, D>) -> &mut Gradients<f32, Cpu> {
    (grads as &mut dyn Any)
        .downcast_mut()
        .expect("host ops are only used on the Cpu device")
}

/// The CPU view of a generic tensor (a cheap clone). Only called when `D` is `Cpu`.
fn cpu_tensor<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Tensor<S, f32, Cpu> {
    (t as &dyn Any)
        .downcast_ref::<Tensor<S, f32, Cpu>>()
        .expect("host ops are only used on the Cpu device")
        .clone()
}

/// Registers `backward(grads of the output, &mut grads of each input)` on `tape`. Every buffer is
/// allocated through the generic store first (so an allocation failure is the device's error);
/// then the closure gets plain slices.
fn add_backward<S: Shape, D: Device<f32>, T: Tape<f32, D>, const N: usize>(
    tape: &mut T,
    output: &Tensor<S, f32, D>,
    inputs: [Tensor<(usize,), f32, D>; N],
    backward: impl FnOnce(&[f32], [&mut [f32]; N]) + 'static,
) {
    if !T::OWNS_TAPE {
        return;
    }
    let output = output.clone();
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&output)?;
        for input in &inputs {
            grads.try_alloc_for(input)?;
        }
        let grads = cpu_grads(grads);
        // Taken out of the store (and put back below), so no copy and no second borrow.
        let gy = std::mem::take(
            &mut **grads
                .get_or_alloc_mut(&cpu_tensor(&output))
                .map_err(|_| ())
                .expect("allocated above"),
        );
        let mut buffers: Vec<Vec<f32>> = Vec::with_capacity(N);
        for input in &inputs {
            let g = grads
                .get_or_alloc_mut(&cpu_tensor(input))
                .map_err(|_| ())
                .expect("allocated above");
            buffers.push(std::mem::take(&mut **g));
        }
        {
            let mut it = buffers.iter_mut();
            let slices: [&mut [f32]; N] =
                std::array::from_fn(|_| it.next().expect("N buffers").as_mut_slice());
            with_avx2(
                #[inline(always)]
                || backward(&gy, slices),
            );
        }
        for (input, buffer) in inputs.iter().zip(buffers) {
            let g = grads
                .get_or_alloc_mut(&cpu_tensor(input))
                .map_err(|_| ())
                .expect("allocated above");
            **g = buffer;
        }
        **grads
            .get_or_alloc_mut(&cpu_tensor(&output))
            .map_err(|_| ())
            .expect("allocated above") = gy;
        Ok(())
    });
}

/// A flat `(n,)` view of a tensor that shares its id (and so its gradient) and data. The
/// gradient buffer of a tensor is laid out as its contiguous data, whatever its shape.
fn flat<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Tensor<(usize,), f32, D> {
    // `t` is contiguous (outputs of ops and parameters are): the reshape keeps id and data.
    t.clone().reshape_like(&(t.shape().num_elements(),))
}

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

/// Runs `f` compiled for AVX2 when the CPU has it (checked once, at run time), else as is.
///
/// The crate is built for the baseline x86-64 (SSE2, 4 lanes) so that it runs on any x86-64
/// CPU; the host loops here are straight-line per element, and with AVX2 the compiler gives
/// them 8 lanes. Same operations in the same order either way (no FMA contraction), so the
/// results are bit-identical with and without AVX2.
#[inline(always)]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { wide(f) };
        }
    }
    f()
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
    matmul_wt(x, &lin.weight, Some(&lin.bias))
}

/// `x · Wᵀ` for rows `x: [n, I]` and `W: [O, I]`: the tied LM head (`W` = the token embedding).
pub fn matmul_transposed<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: Hidden<I, D, T>,
    weight: &Tensor<(Const<O>, Const<I>), f32, D>,
) -> Result<Hidden<O, D, T>, D::Err> {
    if !on_host::<D>() {
        return x.try_matmul(weight.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?);
    }
    matmul_wt(x, weight, None)
}

fn matmul_wt<const I: usize, const O: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: Hidden<I, D, T>,
    weight: &Tensor<(Const<O>, Const<I>), f32, D>,
    bias: Option<&Tensor<(Const<O>,), f32, D>>,
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

/// The core of causal self-attention on rows `[b·s, M]` of queries, keys and values with
/// `heads` heads of `M / heads` dims: per row and head, `softmax(q·kᵀ/√hd)` over the positions
/// up to and including its own, times the values, written back into the head's columns.
///
/// The dfdx path (`attention.rs`) reshapes and permutes q, k and v into `[b, H, s, hd]`
/// copies, runs one small GEMM per (row, head) for the scores and another for the values, and
/// permutes back; here each (row, head) is two short loops over the causal triangle that read
/// q, k and v where they are. Masked (future) positions get weight exactly 0, as −1e9 does.
pub fn causal_attention<const M: usize, D: Device<f32>, T: Tape<f32, D>>(
    q: Hidden<M, D, T>,
    k: Hidden<M, D, T>,
    v: Hidden<M, D, T>,
    heads: usize,
    seq: usize,
) -> Result<Hidden<M, D, T>, D::Err> {
    let n = q.shape().0;
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let dev = q.device().clone();
    if heads == 0 || !M.is_multiple_of(heads) || seq == 0 || !n.is_multiple_of(seq) {
        // Let the device report it in its own error type.
        dev.try_tensor_from_vec(Vec::<f32>::new(), (n + 1,))?;
    }
    let (q, k, v) = (
        q.try_contiguous()?,
        k.try_contiguous()?,
        v.try_contiguous()?,
    );
    let (qs, ks, vs) = (host_copy(&q)?, host_copy(&k)?, host_copy(&v)?);
    let (b, s, hd) = (n / seq, seq, M / heads);
    let scale = 1.0 / (hd as f32).sqrt();
    let at = move |r: usize, h: usize| r * M + h * hd..r * M + (h + 1) * hd;
    // Attention weights per (row, head): an s × s block, filled on and below the diagonal.
    let mut p = vec![0.0f32; b * heads * s * s];
    let mut y = vec![0.0f32; n * M];
    with_avx2(
        #[inline(always)]
        || {
            for bi in 0..b {
                for h in 0..heads {
                    let block = &mut p[(bi * heads + h) * s * s..][..s * s];
                    for i in 0..s {
                        let qi = &qs[at(bi * s + i, h)];
                        let w = &mut block[i * s..i * s + i + 1];
                        let mut max = f32::NEG_INFINITY;
                        for (j, wj) in w.iter_mut().enumerate() {
                            *wj = dot(qi, &ks[at(bi * s + j, h)]) * scale;
                            max = max.max(*wj);
                        }
                        let mut total = 0.0f32;
                        for wj in w.iter_mut() {
                            *wj = exp(*wj - max);
                            total += *wj;
                        }
                        let yi = &mut y[at(bi * s + i, h)];
                        for (j, wj) in w.iter_mut().enumerate() {
                            *wj /= total;
                            for (yd, vd) in yi.iter_mut().zip(&vs[at(bi * s + j, h)]) {
                                *yd += *wj * vd;
                            }
                        }
                    }
                }
            }
        },
    );
    let y = dev.try_tensor_from_vec(y, (n, Const::<M>))?;
    let inputs = [flat(&q), flat(&k), flat(&v)];
    add_backward(&mut tape, &y, inputs, move |gy, [gq, gk, gv]| {
        let mut gw = vec![0.0f32; s];
        for bi in 0..b {
            for h in 0..heads {
                let block = &p[(bi * heads + h) * s * s..][..s * s];
                for i in 0..s {
                    let gyi = &gy[at(bi * s + i, h)];
                    let w = &block[i * s..i * s + i + 1];
                    // ∂w_j = ∂y_i·v_j and ∂v_j += w_j·∂y_i; then the softmax's backward.
                    let mut mean = 0.0f32;
                    for (j, &wj) in w.iter().enumerate() {
                        let r = at(bi * s + j, h);
                        gw[j] = dot(gyi, &vs[r.clone()]);
                        mean += wj * gw[j];
                        for (g, y) in gv[r].iter_mut().zip(gyi) {
                            *g += wj * y;
                        }
                    }
                    // ∂score_j = w_j·(∂w_j − Σ w·∂w)·scale; score_j = q_i·k_j.
                    let ri = at(bi * s + i, h);
                    for (j, &wj) in w.iter().enumerate() {
                        let gs = wj * (gw[j] - mean) * scale;
                        let rj = at(bi * s + j, h);
                        for (g, kd) in gq[ri.clone()].iter_mut().zip(&ks[rj.clone()]) {
                            *g += gs * kd;
                        }
                        for (g, qd) in gk[rj].iter_mut().zip(&qs[ri.clone()]) {
                            *g += gs * qd;
                        }
                    }
                }
            }
        }
    });
    Ok(y.put_tape(tape))
}

/// `eˣ` in plain f32 arithmetic with no branches and no libm call, so that loops calling it
/// compile to SIMD code (libm's `expf` is one call per number: 10–15 % of a training step was
/// spent in it). `x = n·ln2 + r` with |r| ≤ ln2/2 (ln2 split in two parts, Cody–Waite), `eʳ`
/// by its degree-7 Taylor polynomial (remainder below 1e-8 relative), `2ⁿ` built in the
/// exponent bits. Relative error within 3e-7 of libm over the clamped range; inputs below −87.3
/// give ~1e-38 instead of a denormal or 0, above 88.3 about 2e38 (finite).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2²³: adding it rounds to the nearest integer (and subtracting it gives that integer).
    const ROUND: f32 = 12_582_912.0;
    // NaN stays NaN: the clamp's comparisons are false for it and it poisons `p` below.
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // n as an integer, read from t's low mantissa bits (|n| ≤ 127 ≪ 2²²): integer SIMD lanes,
    // where `n as i32` (saturating, NaN → 0) would be done one number at a time.
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// `a·b`, in eight interleaved partial sums so the compiler can use SIMD lanes (a plain
/// `.sum()` must add in order, one lane at a time).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

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

/// Attention weights: softmax over the last axis of `scores · scale + mask`, for scores
/// `[b, H, s, s]` and an additive mask `[s, s]` (the same for every row and head).
pub fn masked_softmax<D: Device<f32>, T: Tape<f32, D>>(
    scores: Scores<D, T>,
    scale: f32,
    mask: &Tensor<(usize, usize), f32, D>,
) -> Result<Scores<D, T>, D::Err> {
    let shape = *scores.shape();
    if !on_host::<D>() {
        let mask = mask.clone().try_broadcast_like::<_, Axes2<0, 1>>(&shape)?;
        return scores
            .try_mul(scale)?
            .try_add(mask)?
            .try_softmax::<Axis<3>>();
    }
    let (b, h, s, s2) = shape;
    if *mask.shape() != (s, s2) {
        // The shapes cannot be broadcast: let the device say so in its own error type.
        mask.device()
            .try_tensor_from_vec(Vec::<f32>::new(), (s * s2 + 1,))?;
    }
    let (x, mut tape) = scores.split_tape();
    let x = x.try_contiguous()?;
    let dev = x.device().clone();
    let xs = host_copy(&x)?;
    let m = host_copy(mask)?;
    let mut y = vec![0.0f32; b * h * s * s2];
    with_avx2(
        #[inline(always)]
        || {
            for (row, (x, y)) in xs.chunks_exact(s2).zip(y.chunks_exact_mut(s2)).enumerate() {
                let m = &m[(row % s) * s2..(row % s + 1) * s2];
                let mut max = f32::NEG_INFINITY;
                for j in 0..s2 {
                    y[j] = x[j] * scale + m[j];
                    max = max.max(y[j]);
                }
                let mut total = 0.0f32;
                for v in y.iter_mut() {
                    *v = exp(*v - max);
                    total += *v;
                }
                for v in y.iter_mut() {
                    *v /= total;
                }
            }
        },
    );
    let saved = if T::OWNS_TAPE { y.clone() } else { Vec::new() };
    let y = dev.try_tensor_from_vec(y, shape)?;
    add_backward(&mut tape, &y, [flat(&x)], move |gy, [gx]| {
        // ∂/∂x_j = scale · y_j · (g_j − Σ_k g_k·y_k)
        for ((gy, y), gx) in gy
            .chunks_exact(s2)
            .zip(saved.chunks_exact(s2))
            .zip(gx.chunks_exact_mut(s2))
        {
            let dot: f32 = gy.iter().zip(y).map(|(g, y)| g * y).sum();
            for j in 0..s2 {
                gx[j] += scale * y[j] * (gy[j] - dot);
            }
        }
    });
    Ok(y.put_tape(tape))
}

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
#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    fn ramp(n: usize, k: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * k) % 17) as f32 * 0.13 - 1.0).collect()
    }

    #[test]
    fn linear_is_dfdx_linear_values_and_gradients() {
        use dfdx::nn::modules::Linear;
        let dev = Cpu::default();
        let lin: Linear<6, 4, f32, Cpu> = Linear {
            weight: dev.tensor_from_vec(ramp(24, 7), (Const, Const)),
            bias: dev.tensor_from_vec(ramp(4, 5), (Const,)),
        };
        let x: Hidden<6, Cpu> = dev.tensor_from_vec(ramp(5 * 6, 11), (5, Const));
        let w: Hidden<4, Cpu> = dev.tensor_from_vec(ramp(5 * 4, 3), (5, Const));
        let run = |fused: bool| {
            let grads = Gradients::leaky();
            let y = if fused {
                linear(&lin, x.trace(grads))
            } else {
                lin.try_forward(x.trace(grads))
            }
            .unwrap();
            let values = y.as_vec();
            let g = (y * w.clone()).sum().backward();
            (
                values,
                g.get(&x).as_vec(),
                g.get(&lin.weight).as_vec(),
                g.get(&lin.bias).as_vec(),
            )
        };
        let (ours, theirs) = (run(true), run(false));
        close(&ours.0, &theirs.0, 1e-6);
        close(&ours.1, &theirs.1, 1e-5);
        close(&ours.2, &theirs.2, 1e-5);
        close(&ours.3, &theirs.3, 1e-5);
        assert_eq!(linear(&lin, x.clone()).unwrap().as_vec(), ours.0);
        // The head: x · Wᵀ without a bias.
        let head = matmul_transposed(x.leaky_trace(), &lin.weight).unwrap();
        let reference = x.leaky_trace().matmul(
            lin.weight
                .retaped::<OwnedTape<f32, Cpu>>()
                .permute::<_, Axes2<1, 0>>(),
        );
        close(&head.as_vec(), &reference.as_vec(), 1e-6);
        let g_ours = (head * w.clone()).sum().backward().get(&x).as_vec();
        let g_ref = (reference * w).sum().backward().get(&x).as_vec();
        close(&g_ours, &g_ref, 1e-5);
    }

    #[test]
    fn causal_attention_is_the_dfdx_attention_values_and_gradients() {
        let dev = Cpu::default();
        let (b, s) = (2, 5);
        let q: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 7), (b * s, Const));
        let k: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 5), (b * s, Const));
        let v: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 3), (b * s, Const));
        let w: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 13), (b * s, Const));
        let mask = crate::model::attention::causal_mask(&dev, s);
        let run = |fused: bool| {
            let grads = Gradients::leaky();
            let (qt, kt, vt) = (q.trace(grads), k.leaky_trace(), v.leaky_trace());
            let y = if fused {
                causal_attention(qt, kt, vt, 2, s)
            } else {
                crate::model::attention::attention_core::<8, 2, Cpu, _>(qt, kt, vt, &mask)
            }
            .unwrap();
            let values = y.as_vec();
            let g = (y * w.clone()).sum().backward();
            (values, [&q, &k, &v].map(|t| g.get(t).as_vec()))
        };
        let (ours, theirs) = (run(true), run(false));
        close(&ours.0, &theirs.0, 1e-6);
        for (a, b) in ours.1.iter().zip(&theirs.1) {
            close(a, b, 1e-5);
        }
        let untaped = causal_attention(q.clone(), k.clone(), v.clone(), 2, s).unwrap();
        assert_eq!(untaped.as_vec(), ours.0);
        // Row 0 of each sequence sees only itself: its output is its own value.
        assert_eq!(&ours.0[..8], &v.as_vec()[..8]);
        assert!(causal_attention(q.clone(), k.clone(), v.clone(), 3, s).is_err());
        assert!(causal_attention(q, k, v, 2, 3).is_err());
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f32;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst <= 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_is_dfdx_fast_gelu_values_and_gradients() {
        let dev = Cpu::default();
        let xs: Vec<f32> = (0..161).map(|i| -8.0 + 0.1 * i as f32).collect();
        let x = dev.tensor_from_vec(xs.clone(), (xs.len(),));

        let ours = gelu(x.leaky_trace()).unwrap();
        let reference = x.leaky_trace().fast_gelu();
        for (a, b) in ours.as_vec().iter().zip(reference.as_vec()) {
            assert!((a - b).abs() <= 1e-6 + 1e-6 * b.abs(), "{a} vs {b}");
        }
        let untaped = gelu(x.clone()).unwrap().as_vec();
        for (a, b) in untaped.iter().zip(reference.as_vec()) {
            assert!((a - b).abs() <= 1e-6 + 1e-6 * b.abs(), "{a} vs {b}");
        }
        // Weighted sum, so each element's gradient is checked with its own weight.
        let w = dev.tensor_from_vec((0..161).map(|i| 1.0 + (i % 7) as f32).collect(), (161,));
        let g_ours = (ours * w.clone()).sum().backward().get(&x).as_vec();
        let g_ref = (reference * w).sum().backward().get(&x).as_vec();
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn select_logprobs_is_log_softmax_then_select_values_and_gradients() {
        let dev = Cpu::default();
        let vals: Vec<f32> = (0..4 * 6)
            .map(|i| ((i * 7) % 11) as f32 * 0.9 - 4.0)
            .collect();
        let logits: Tensor<(usize, Const<6>), f32, Cpu> = dev.tensor_from_vec(vals, (4, Const));
        let targets = vec![0, 5, 2, 2];
        let ours = select_logprobs(logits.leaky_trace(), &targets).unwrap();
        let idx = dev.tensor_from_vec(targets.clone(), (4,));
        let reference = logits.leaky_trace().log_softmax::<Axis<1>>().select(idx);
        for (a, b) in ours.as_vec().iter().zip(reference.as_vec()) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        let untaped = select_logprobs(logits.clone(), &targets).unwrap().as_vec();
        assert_eq!(untaped.len(), 4);
        for (a, b) in untaped.iter().zip(reference.as_vec()) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        let w = dev.tensor_from_vec(vec![1.0f32, -2.0, 0.5, 3.0], (4,));
        let g_ours = (ours * w.clone()).sum().backward().get(&logits).as_vec();
        let g_ref = (reference * w).sum().backward().get(&logits).as_vec();
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        assert!(select_logprobs(logits.clone(), &targets[..3]).is_err());
        assert!(select_logprobs(logits, &[0, 1, 2, 6]).is_err());
    }

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

    #[test]
    fn masked_softmax_is_scale_add_mask_softmax_values_and_gradients() {
        let dev = Cpu::default();
        let (b, s) = (2, 5);
        let xs: Vec<f32> = (0..b * 3 * s * s)
            .map(|i| ((i * 11) % 13) as f32 * 0.4 - 2.0)
            .collect();
        let x: Tensor<(usize, usize, usize, usize), f32, Cpu> =
            dev.tensor_from_vec(xs, (b, 3, s, s));
        let w: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(
            (0..b * 3 * s * s)
                .map(|i| ((i * 7) % 5) as f32 - 2.0)
                .collect(),
            (b, 3, s, s),
        );
        let mask = dev.upper_tri_like(&(s, s), -1e9f32, 1);
        let ours = masked_softmax(x.leaky_trace(), 0.7, &mask).unwrap();
        let theirs =
            (x.leaky_trace() * 0.7) + mask.clone().broadcast_like::<_, Axes2<0, 1>>(&(b, 3, s, s));
        let theirs = theirs.softmax::<Axis<3>>();
        for (a, b) in ours.as_vec().iter().zip(theirs.as_vec()) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
        let g_ours = (ours * w.clone()).sum().backward().get(&x).as_vec();
        let g_ref = (theirs * w).sum().backward().get(&x).as_vec();
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
        let wrong = dev.upper_tri_like(&(s + 1, s + 1), -1e9f32, 1);
        assert!(masked_softmax(x, 0.7, &wrong).is_err());
    }
}
