//! What the trainers need from a language model, as a trait: they are written once and run on
//! any instantiation of [`Gpt`] (the default config, the tiny test one) — or on another model,
//! should dfdx ever be swapped out.

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::{Gpt, ModelError, SampleConfig, TokenBatch};

/// A causal language model that scores and samples completions.
pub trait LanguageModel<D: Device<f32>>: TensorCollection<f32, D> + Clone {
    /// log π(completion | prompt) per row, `(B,)`, carrying `tape`.
    fn sequence_logprobs<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(usize,), f32, D, T>, ModelError>;

    /// Mean negative log-likelihood of the completion tokens (the SFT loss).
    fn token_nll<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(), f32, D, T>, ModelError>;

    /// One completion per prompt (new tokens only, without the final `eos_id`).
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        eos_id: u32,
        cfg: &SampleConfig,
    ) -> Result<Vec<Vec<u32>>, ModelError>;

    /// The context length.
    fn max_seq(&self) -> usize;

    /// Saves the weights as safetensors.
    fn save(&self, path: &std::path::Path) -> Result<(), ModelError>;

    /// Loads weights saved by [`LanguageModel::save`]; on error the model is unchanged.
    fn load(&mut self, path: &std::path::Path) -> Result<(), ModelError>;

    /// The device the weights live on.
    fn device(&self) -> D;
}

impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        D: Device<f32>,
    > LanguageModel<D> for Gpt<V, M, H, F, L, S, f32, D>
{
    fn sequence_logprobs<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(usize,), f32, D, T>, ModelError> {
        Gpt::sequence_logprobs(self, batch, tape)
    }

    fn token_nll<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(), f32, D, T>, ModelError> {
        Gpt::token_nll(self, batch, tape)
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        eos_id: u32,
        cfg: &SampleConfig,
    ) -> Result<Vec<Vec<u32>>, ModelError> {
        Gpt::generate(self, prompts, eos_id, cfg)
    }

    fn max_seq(&self) -> usize {
        S
    }

    fn save(&self, path: &std::path::Path) -> Result<(), ModelError> {
        Gpt::save(self, path)
    }

    fn load(&mut self, path: &std::path::Path) -> Result<(), ModelError> {
        Gpt::load(self, path)
    }

    fn device(&self) -> D {
        self.wte.weight.device().clone()
    }
}
