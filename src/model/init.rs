//! Seeded GPT-2 initialization, drawn on the host so the same seed gives the same weights on
//! any device.
//!
//! GPT-2 (and nanoGPT) draw every weight matrix from N(0, 0.02²), zero the biases and set the
//! LayerNorms to the identity. The projections that write *into* the residual stream (attention
//! output, MLP down-projection) use 0.02/√(2·N_LAYERS): each block adds two such terms to the
//! stream, so without the scaling its variance would grow with depth.

use dfdx::nn::modules::{Embedding, LayerNorm1D, Linear};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Standard deviation of GPT-2's weight init.
pub const INIT_STD: f32 = 0.02;

/// Hands out freshly initialized parameters, all from one seeded random stream.
pub struct Init<'a, D> {
    dev: &'a D,
    rng: ChaCha8Rng,
}

impl<'a, D: Device<f32>> Init<'a, D> {
    /// An initializer on `dev` whose draws are fixed by `seed`.
    pub fn new(dev: &'a D, seed: u64) -> Self {
        Self {
            dev,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A tensor of shape `S` drawn from N(0, std²).
    pub fn normal<S: ConstShape + Default>(&mut self, std: f32) -> Tensor<S, f32, D> {
        // `std` is a positive constant of ours, never user input.
        let dist = Normal::new(0.0f32, std).expect("init std is positive and finite");
        let data = (0..S::NUMEL).map(|_| dist.sample(&mut self.rng)).collect();
        self.dev.tensor_from_vec(data, S::default())
    }

    /// A `Linear` with N(0, std²) weights and zero bias.
    pub fn linear<const I: usize, const O: usize>(&mut self, std: f32) -> Linear<I, O, f32, D> {
        Linear {
            weight: self.normal(std),
            bias: self.dev.zeros(),
        }
    }

    /// A `LayerNorm` that starts as the identity (γ = 1, β = 0).
    pub fn layer_norm<const M: usize>(&mut self) -> LayerNorm1D<M, f32, D> {
        LayerNorm1D {
            gamma: self.dev.ones(),
            beta: self.dev.zeros(),
            epsilon: 1e-5,
        }
    }

    /// An embedding table with N(0, 0.02²) rows.
    pub fn embedding<const V: usize, const M: usize>(&mut self) -> Embedding<V, M, f32, D> {
        Embedding {
            weight: self.normal(INIT_STD),
        }
    }
}
