//! Causal multi-head self-attention, as in GPT-2.
//!
//! Every position builds a query, a key and a value. A position's output is the average of the
//! values of the positions it may see, weighted by softmax(q·k/√head_dim). "Causal" means a
//! position may see itself and the past only: adding −∞-like numbers above the diagonal of the
//! score matrix zeroes the future's weights, so the logits at position t depend on tokens ≤ t.
//! That is what makes one forward pass give the next-token prediction at *every* position.
//!
//! dfdx's `MultiHeadAttention` has no causal mask, so this is written out. q, k and v are
//! three separate `Linear`s (GPT-2 fuses them into one 3·D_MODEL projection; same parameters,
//! but `3 * M` in a type needs unstable Rust).

use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

use super::fused;
use super::hidden::Hidden;
use super::init::{Init, INIT_STD};
use super::lora::{self, BlockLora};

/// Added to the scores of masked (future) positions. Not −∞: −1e9 already gives an exact 0 after
/// softmax, and keeps every intermediate number finite.
pub const MASK_VALUE: f32 = -1e9;

/// The additive causal mask for `s` positions: 0 on and below the diagonal, [`MASK_VALUE`] above.
/// Built once per forward pass and shared by every block.
pub fn causal_mask<D: Device<f32>>(dev: &D, s: usize) -> Tensor<(usize, usize), f32, D> {
    dev.upper_tri_like(&(s, s), MASK_VALUE, 1)
}

/// Causal self-attention with `H` heads over a width-`M` residual stream.
#[derive(Debug, Clone)]
pub struct CausalSelfAttention<const M: usize, const H: usize, E: Dtype, D: Storage<E>> {
    /// Query projection.
    pub q: Linear<M, M, E, D>,
    /// Key projection.
    pub k: Linear<M, M, E, D>,
    /// Value projection.
    pub v: Linear<M, M, E, D>,
    /// Output projection back into the residual stream (GPT-2's `c_proj`).
    pub c_proj: Linear<M, M, E, D>,
}

impl<const M: usize, const H: usize, D: Device<f32>> CausalSelfAttention<M, H, f32, D> {
    /// Compile-time check that the heads split the width evenly.
    const HEADS_DIVIDE_WIDTH: () = assert!(
        H > 0 && M.is_multiple_of(H),
        "D_MODEL must be a multiple of N_HEADS"
    );

    /// GPT-2 init; `proj_std` is the (depth-scaled) std of the output projection.
    pub fn init(init: &mut Init<D>, proj_std: f32) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::HEADS_DIVIDE_WIDTH;
        Self {
            q: init.linear(INIT_STD),
            k: init.linear(INIT_STD),
            v: init.linear(INIT_STD),
            c_proj: init.linear(proj_std),
        }
    }

    /// `x`: `[batch·seq, M]`; `mask`: [`causal_mask`] for `seq` (it also tells `seq`).
    /// Returns `[batch·seq, M]`. Works taped (training) and untaped (eval): the tape rides on `x`.
    ///
    /// `lora`: `None` is plain attention; `Some((adapters, Some(α/r)))` adds the LoRA
    /// corrections on q, k, v and the output projection, `Some((adapters, None))` has them
    /// switched off (either way the projections' own weights are frozen).
    pub fn try_forward<const R: usize, T: Tape<f32, D>>(
        &self,
        x: Hidden<M, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
        lora: Option<(&BlockLora<M, R, f32, D>, Option<f32>)>,
    ) -> Result<Hidden<M, D, T>, D::Err> {
        let s = mask.shape().0;
        type Pick<const M: usize, const R: usize, D> =
            fn(&BlockLora<M, R, f32, D>) -> &lora::Adapter<M, M, R, f32, D>;
        let adapter = |pick: Pick<M, R, D>| lora.map(|(block, scale)| (pick(block), scale));
        // q and k start from copies of x with empty tapes; the tapes merge again in the core.
        let q = lora::project(&self.q, adapter(|b| &b.q), x.with_empty_tape())?;
        let k = lora::project(&self.k, adapter(|b| &b.k), x.with_empty_tape())?;
        let v = lora::project(&self.v, adapter(|b| &b.v), x)?;
        let y = if crate::device::on_host::<D>() {
            // One pass per (row, head) over the causal triangle (`fused::causal_attention`).
            fused::causal_attention(q, k, v, H, s)?
        } else {
            attention_core::<M, H, D, T>(q, k, v, mask)?
        };
        lora::project(&self.c_proj, adapter(|b| &b.o), y)
    }
}

/// The attention core in dfdx ops (any device): split the width into H heads, scores
/// `q·kᵀ/√hd` plus the causal mask, softmax over the keys, weighted values, heads glued back.
/// On the CPU, [`fused::causal_attention`] computes the same in place.
pub fn attention_core<const M: usize, const H: usize, D: Device<f32>, T: Tape<f32, D>>(
    q: Hidden<M, D, T>,
    k: Hidden<M, D, T>,
    v: Hidden<M, D, T>,
    mask: &Tensor<(usize, usize), f32, D>,
) -> Result<Hidden<M, D, T>, D::Err> {
    let s = mask.shape().0;
    let b = q.shape().0 / s;
    let hd = M / H;
    // [b·s, M] -> [b, H, s, hd] (k transposed: [b, H, hd, s]).
    let q = q
        .try_reshape_like(&(b, s, H, hd))?
        .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
    let k = k
        .try_reshape_like(&(b, s, H, hd))?
        .try_permute::<_, Axes4<0, 2, 3, 1>>()?;
    let v = v
        .try_reshape_like(&(b, s, H, hd))?
        .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
    // Scores [b, H, s, s]; scaling by 1/√hd keeps softmax out of saturation at init.
    let scale = 1.0 / (hd as f32).sqrt();
    let weights = fused::masked_softmax(q.try_matmul(k)?, scale, mask)?;
    // Weighted values, heads glued back together: [b, H, s, hd] -> [b·s, M].
    let y = weights
        .try_matmul(v)?
        .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
    y.try_reshape_like(&(b * s, Const::<M>))
}

impl<const M: usize, const H: usize, D: Device<f32>> TensorCollection<f32, D>
    for CausalSelfAttention<M, H, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = CausalSelfAttention<M, H, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("q", |s| &s.q, |s| &mut s.q),
                Self::module("k", |s| &s.k, |s| &mut s.k),
                Self::module("v", |s| &s.v, |s| &mut s.v),
                Self::module("c_proj", |s| &s.c_proj, |s| &mut s.c_proj),
            ),
            |(q, k, v, c_proj)| CausalSelfAttention { q, k, v, c_proj },
        )
    }
}
