//! Attention on the CPU: the causal core in place (no permuted copies), and the masked softmax
//! the dfdx path of `model::attention` uses.

use dfdx::prelude::*;

use crate::device::on_host;

use super::host::{add_backward, flat, host_copy, with_avx2};
use super::simd::{dot, exp};
use crate::model::hidden::Hidden;

/// Attention scores or weights, `[batch, heads, query, key]`.
pub type Scores<D, T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, D, T>;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fused::testing::{close, ramp};

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
