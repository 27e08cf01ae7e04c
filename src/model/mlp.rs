//! The feed-forward half of a block: Linear → GELU → Linear, applied to each position alone.
//!
//! Attention moves information *between* positions; the MLP then transforms each position's
//! vector on its own, through a 4× wider hidden layer. GELU is GPT-2's smooth ReLU (the tanh
//! approximation, the one GPT-2 used, as dfdx's `fast_gelu` computes it; see [`tanh_gelu`]).

use dfdx::nn::modules::Linear;
use dfdx::prelude::*;

use super::hidden::Hidden;
use super::init::{Init, INIT_STD};

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
        let h = tanh_gelu(super::fused::linear(&self.c_fc, x)?)?;
        super::fused::linear(&self.c_proj, h)
    }

    /// [`Self::try_forward`] with both projections frozen: the gradient reaches `x` only.
    pub fn try_forward_frozen<T: Tape<f32, D>>(
        &self,
        x: Hidden<M, D, T>,
    ) -> Result<Hidden<M, D, T>, D::Err> {
        use super::fused::{linear_with, Weights::Frozen};
        let h = tanh_gelu(linear_with(&self.c_fc, x, Frozen)?)?;
        linear_with(&self.c_proj, h, Frozen)
    }
}

/// GPT-2's tanh GELU, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` — the function of dfdx's
/// `fast_gelu` — computed as `x·σ(2·√(2/π)·(x + 0.044715·x³))`, since `(1 + tanh(u))/2 = σ(2u)`.
///
/// Same function, cheaper on a CPU: dfdx's kernel calls libm's `tanhf` once in the forward and
/// again in the backward, and `tanhf` is slow; `σ` needs one `expf`, and its derivative reuses
/// its output. On the CPU it is one fused host loop ([`super::fused::gelu()`]).
pub fn tanh_gelu<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
) -> Result<Tensor<S, f32, D, T>, D::Err> {
    super::fused::gelu(x)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_gelu_is_dfdx_fast_gelu_values_and_gradients() {
        let dev = Cpu::default();
        let xs: Vec<f32> = (0..161).map(|i| -8.0 + 0.1 * i as f32).collect();
        let x = dev.tensor_from_vec(xs.clone(), (xs.len(),));

        let ours = tanh_gelu(x.leaky_trace()).unwrap();
        let reference = x.leaky_trace().fast_gelu();
        for (a, b) in ours.as_vec().iter().zip(reference.as_vec()) {
            assert!((a - b).abs() <= 1e-6 + 1e-6 * b.abs(), "{a} vs {b}");
        }
        let g_ours = ours.sum().backward().get(&x).as_vec();
        let g_ref = reference.sum().backward().get(&x).as_vec();
        for (a, b) in g_ours.iter().zip(&g_ref) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }
}
