//! One transformer block, pre-LayerNorm as in GPT-2:
//!
//! ```text
//! x = x + attn(ln_1(x))
//! x = x + mlp(ln_2(x))
//! ```
//!
//! Why pre-norm? The residual stream `x` itself is never normalized, so the gradient has a clean
//! identity path from the loss to the embeddings through every block; each block only *adds* a
//! correction. That is what makes deep stacks train without warm-up tricks.

use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;

use super::attention::CausalSelfAttention;
use super::hidden::Hidden;
use super::init::Init;
use super::lora::BlockLora;
use super::mlp::Mlp;

/// A block of width `M`, `H` heads and MLP hidden width `F`.
#[derive(Debug, Clone)]
pub struct Block<const M: usize, const H: usize, const F: usize, E: Dtype, D: Storage<E>> {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm1D<M, E, D>,
    /// Causal self-attention.
    pub attn: CausalSelfAttention<M, H, E, D>,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm1D<M, E, D>,
    /// Position-wise feed-forward.
    pub mlp: Mlp<M, F, E, D>,
}

impl<const M: usize, const H: usize, const F: usize, D: Device<f32>> Block<M, H, F, f32, D> {
    /// GPT-2 init; `proj_std` is the depth-scaled std of the two residual projections.
    pub fn init(init: &mut Init<D>, proj_std: f32) -> Self {
        Self {
            ln_1: init.layer_norm(),
            attn: CausalSelfAttention::init(init, proj_std),
            ln_2: init.layer_norm(),
            mlp: Mlp::init(init, proj_std),
        }
    }

    /// `[batch·seq, M]` → `[batch·seq, M]`; `mask` is the causal mask for `seq`.
    ///
    /// `lora`: `None` is a plain block; `Some((adapters, Some(α/r)))` adds this block's LoRA
    /// corrections, `Some((adapters, None))` has them switched off (either way every projection
    /// of the block is frozen).
    pub fn try_forward<const R: usize, T: Tape<f32, D>>(
        &self,
        x: Hidden<M, D, T>,
        mask: &Tensor<(usize, usize), f32, D>,
        lora: Option<(&BlockLora<M, R, f32, D>, Option<f32>)>,
    ) -> Result<Hidden<M, D, T>, D::Err> {
        // The branch starts from a copy of x with an empty tape; `x + branch` merges the tapes.
        let a = self.attn.try_forward(
            super::fused::layer_norm(&self.ln_1, x.with_empty_tape())?,
            mask,
            lora,
        )?;
        let x = x.try_add(a)?;
        // The MLP's projections are not adapted (the seed's targets are q, k, v, o), but with
        // adapters they are frozen like everything else.
        let h = super::fused::layer_norm(&self.ln_2, x.with_empty_tape())?;
        let m = match lora {
            None => self.mlp.try_forward(h)?,
            Some(_) => self.mlp.try_forward_frozen(h)?,
        };
        x.try_add(m)
    }
}

impl<const M: usize, const H: usize, const F: usize, D: Device<f32>> TensorCollection<f32, D>
    for Block<M, H, F, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Block<M, H, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("ln_1", |s| &s.ln_1, |s| &mut s.ln_1),
                Self::module("attn", |s| &s.attn, |s| &mut s.attn),
                Self::module("ln_2", |s| &s.ln_2, |s| &mut s.ln_2),
                Self::module("mlp", |s| &s.mlp, |s| &mut s.mlp),
            ),
            |(ln_1, attn, ln_2, mlp)| Block {
                ln_1,
                attn,
                ln_2,
                mlp,
            },
        )
    }
}
