//! The hot spots of a training step as single host loops instead of chains of dfdx ops:
//! LayerNorm, the causal softmax of attention, GELU, and the log-softmax + pick of the target
//! token.
//!
//! dfdx runs each element-wise op as its own kernel with its own output buffer, forward and
//! backward: a LayerNorm is about ten such ops, GELU six, a softmax five, each over tens or
//! hundreds of thousands of numbers per step. Here each is one forward loop and one backward
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
        let gy: Vec<f32> = grads
            .get_or_alloc_mut(&cpu_tensor(&output))
            .map_err(|_| ())
            .expect("allocated above")
            .to_vec();
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
            backward(&gy, slices);
        }
        for (input, buffer) in inputs.iter().zip(buffers) {
            let g = grads
                .get_or_alloc_mut(&cpu_tensor(input))
                .map_err(|_| ())
                .expect("allocated above");
            **g = buffer;
        }
        Ok(())
    });
}

/// A flat `(n,)` view of a tensor that shares its id (and so its gradient) and data. The
/// gradient buffer of a tensor is laid out as its contiguous data, whatever its shape.
fn flat<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Tensor<(usize,), f32, D> {
    // `t` is contiguous (outputs of ops and parameters are): the reshape keeps id and data.
    t.clone().reshape_like(&(t.shape().num_elements(),))
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
    for (row, (x, y)) in xs.chunks_exact(s2).zip(y.chunks_exact_mut(s2)).enumerate() {
        let m = &m[(row % s) * s2..(row % s + 1) * s2];
        let mut max = f32::NEG_INFINITY;
        for j in 0..s2 {
            y[j] = x[j] * scale + m[j];
            max = max.max(y[j]);
        }
        let mut total = 0.0f32;
        for v in y.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        for v in y.iter_mut() {
            *v /= total;
        }
    }
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
    let mut derivative = Vec::with_capacity(if T::OWNS_TAPE { ys.len() } else { 0 });
    for v in ys.iter_mut() {
        let x = *v;
        let u = x * (two_c + two_c * GELU_CUBIC * x * x);
        let s = 1.0 / (1.0 + (-u).exp());
        *v = x * s;
        if T::OWNS_TAPE {
            // d/dx x·σ(u(x)) = σ + x·σ(1 − σ)·u'(x),  u' = 2c + 6ck·x²
            let du = two_c + 3.0 * two_c * GELU_CUBIC * x * x;
            derivative.push(s + x * s * (1.0 - s) * du);
        }
    }
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
    for (row, &t) in probs.chunks_exact_mut(V).zip(targets) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let picked = row[t];
        let mut total = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        out.push(picked - max - total.ln());
        for v in row.iter_mut() {
            *v /= total;
        }
    }
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
