//! The feed-forward half of a block: Linear → GELU → Linear, applied to each position alone.
//!
//! Attention moves information *between* positions; the MLP then transforms each position's
//! vector on its own, through a 4× wider hidden layer. GELU is GPT-2's smooth ReLU (the tanh
//! approximation, dfdx's `fast_gelu`, which is the one GPT-2 used).

use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

use super::init::{Init, INIT_STD};
use super::Hidden;

/// Width `M` in and out, `F` hidden units.
#[derive(Debug, Clone)]
pub struct Mlp<const M: usize, const F: usize, E: Dtype, D: Storage<E>> {
    /// Up-projection (GPT-2's `c_fc`).
    pub c_fc: Linear<M, F, E, D>,
    /// Down-projection back into the residual stream (GPT-2's `c_proj`).
    pub c_proj: Linear<F, M, E, D>,
}

impl<const M: usize, const F: usize, D: Device<f32>> Mlp<M, F, f32, D> {
    /// GPT-2 init; `proj_std` is the (depth-scaled) std of the down-projection.
    pub fn init(init: &mut Init<D>, proj_std: f32) -> Self {
        Self {
            c_fc: init.linear(INIT_STD),
            c_proj: init.linear(proj_std),
        }
    }

    /// `[batch·seq, M]` → `[batch·seq, M]`.
    pub fn try_forward<T: Tape<f32, D>>(
        &self,
        x: Hidden<M, D, T>,
    ) -> Result<Hidden<M, D, T>, D::Err> {
        let h = self.c_fc.try_forward(x)?.try_fast_gelu()?;
        self.c_proj.try_forward(h)
    }
}

impl<const M: usize, const F: usize, D: Device<f32>> TensorCollection<f32, D>
    for Mlp<M, F, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Mlp<M, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("c_fc", |s| &s.c_fc, |s| &mut s.c_fc),
                Self::module("c_proj", |s| &s.c_proj, |s| &mut s.c_proj),
            ),
            |(c_fc, c_proj)| Mlp { c_fc, c_proj },
        )
    }
}
