//! What the trainers need from a language model, as a trait: they are written once and run on
//! any instantiation of [`Gpt`](super::Gpt) (the default config, the tiny test one), on
//! [`LoraGpt`](super::LoraGpt) — or on another model, should dfdx ever be swapped out.
//!
//! A model provides two views of one forward pass: log-probs of chosen next tokens (training
//! and scoring) and the logits at chosen positions (sampling). Everything else — log π(y|x), the
//! SFT loss, generation, checkpoints — is written once, here and in [`super::logprobs`],
//! [`super::sample`] and [`super::checkpoint`].

use std::path::Path;

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::{ModelError, SampleConfig, TokenBatch};

/// Token ids `[batch, seq]` on the device.
pub type Ids<D, T = NoneTape> = Tensor<(usize, usize), usize, D, T>;

/// A causal language model that scores and samples completions.
pub trait LanguageModel<D: Device<f32>>: TensorCollection<f32, D> + Clone {
    /// Vocabulary size: ids must be below it.
    fn vocab(&self) -> usize;

    /// The context length: the most tokens one forward pass reads.
    fn max_seq(&self) -> usize;

    /// The device the weights live on.
    fn device(&self) -> D;

    /// `(n,)`: entry k is log π(`targets[k]` | the ids up to flat position `positions[k]`),
    /// where flat position i is row `i / seq`, column `i % seq` of `ids`. Carries `ids`' tape.
    /// `ids` are checked ([`LanguageModel::check_ids`]) and `positions` are in range.
    fn picked_logprobs<T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
        positions: &[usize],
        targets: &[usize],
    ) -> Result<Tensor<(usize,), f32, D, T>, D::Err>;

    /// The logits at flat `positions` of checked `ids`, `positions.len()` rows of
    /// [`LanguageModel::vocab`] numbers, on the host (sampling reads them there).
    fn logits_at(&self, ids: Ids<D>, positions: &[usize]) -> Result<Vec<f32>, D::Err>;

    /// Errors on an empty batch, `seq` longer than the context, or an id outside the vocabulary
    /// (checked on the host, before any tensor work).
    fn check_ids(&self, rows: usize, seq: usize, ids: &[usize]) -> Result<(), ModelError> {
        if rows == 0 || seq == 0 {
            return Err(ModelError::Empty { what: "token ids" });
        }
        if seq > self.max_seq() {
            return Err(ModelError::SequenceTooLong {
                len: seq,
                max: self.max_seq(),
            });
        }
        let vocab = self.vocab();
        match ids.iter().find(|&&id| id >= vocab) {
            Some(&id) => Err(ModelError::TokenOutOfRange { id, vocab }),
            None => Ok(()),
        }
    }

    /// Per-token log-probs of the completion tokens, `[B, S]`: entry (r, t) is
    /// log π(targets[r, t] | inputs[r, ..=t]) where the mask is 1, and exactly 0 elsewhere.
    ///
    /// `tape`: `NoneTape` to evaluate, [`super::tape_from`]`(dev, grads)` (or
    /// `OwnedTape::default()`) to train.
    fn token_logprobs<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(usize, usize), f32, D, T>, ModelError> {
        super::logprobs::token_logprobs(self, batch, tape)
    }

    /// log π(completion | prompt) per row, `(B,)`: the sum of
    /// [`LanguageModel::token_logprobs`] over the sequence. This is what the KTO/DPO losses take
    /// as `policy_logps`.
    fn sequence_logprobs<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(usize,), f32, D, T>, ModelError> {
        super::logprobs::sequence_logprobs(self, batch, tape)
    }

    /// The supervised fine-tuning loss: the mean negative log-likelihood over all completion
    /// tokens of the batch (a scalar; prompts and padding excluded).
    fn token_nll<T: Tape<f32, D>>(
        &self,
        batch: &TokenBatch,
        tape: T,
    ) -> Result<Tensor<(), f32, D, T>, ModelError> {
        super::logprobs::token_nll(self, batch, tape)
    }

    /// One completion per prompt: the new tokens only, without the final `eos_id`. An empty
    /// prompt starts from `eos_id` (GPT-2's start of text). When a sequence outgrows the
    /// context, the model sees its last [`LanguageModel::max_seq`] tokens.
    fn generate<P: AsRef<[u32]>>(
        &self,
        prompts: &[P],
        eos_id: u32,
        cfg: &SampleConfig,
    ) -> Result<Vec<Vec<u32>>, ModelError> {
        super::sample::generate(self, prompts, eos_id, cfg)
    }

    /// [`LanguageModel::generate`] for a single prompt.
    fn generate_one(
        &self,
        prompt: &[u32],
        eos_id: u32,
        cfg: &SampleConfig,
    ) -> Result<Vec<u32>, ModelError> {
        Ok(self
            .generate(&[prompt], eos_id, cfg)?
            .pop()
            .unwrap_or_default())
    }

    /// Saves the collection's tensors as safetensors (a [`LoraGpt`](super::LoraGpt): the
    /// adapters alone).
    fn save(&self, path: &Path) -> Result<(), ModelError> {
        super::checkpoint::save(self, path)
    }

    /// Loads tensors saved by [`LanguageModel::save`]; on error the model is unchanged.
    fn load(&mut self, path: &Path) -> Result<(), ModelError> {
        super::checkpoint::load(self, path)
    }
}
