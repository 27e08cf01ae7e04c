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
