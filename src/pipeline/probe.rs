//! The desirable rate *during* training: every few optimizer steps, sample and judge answers
//! to a fixed set of prompts, and log the rates in the step's record (`metrics.jsonl`).
//!
//! Fixed means the same prompts, answers per prompt and sampling seed at every look, so two
//! looks differ only by the model (common random numbers): the curve shows training, not
//! sampling noise between looks. It is a quick look — the report's before/after table, with
//! more samples, is the measurement.

use dfdx::prelude::Device;
use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::evaluate::{sample_and_judge, Sampling};
use crate::model::LanguageModel;
use crate::train::{Metrics, TrainError};
use crate::world::{self, Prompt, Split};

/// Metric key: the desirable rate on the training prompts (those the feedback came from).
pub const PROBE_TRAIN_RATE: &str = "probe/desirable_rate";
/// Metric key: the desirable rate on the held-out prompts.
pub const PROBE_HELD_OUT_RATE: &str = "probe/held_out_desirable_rate";

/// How often and how widely the loop looks at a model during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Look after every `every` optimizer steps (and after the last one).
    pub every: usize,
    /// Answers sampled per prompt at each look.
    pub samples_per_prompt: usize,
}

/// A [`crate::train::Probe`] for a run of `steps` steps: after every `every`-th step and the
/// last, samples `samples_per_prompt` answers to every prompt with `sampling` and `seed`,
/// judges them, and returns [`PROBE_TRAIN_RATE`] and [`PROBE_HELD_OUT_RATE`]. With `every =
/// 0` it looks only after the last step.
pub fn probe<'p, D: Device<f32>, M: LanguageModel<D>>(
    codec: &'p Codec<'p>,
    prompts: &'p [&'static Prompt],
    cfg: ProbeConfig,
    sampling: &'p Sampling,
    seed: u64,
    steps: usize,
) -> impl FnMut(&M, usize) -> Result<Metrics, TrainError> + 'p {
    move |model: &M, done: usize| {
        let mut out = Metrics::new();
        let due = done == steps || (cfg.every > 0 && done.is_multiple_of(cfg.every));
        if !due {
            return Ok(out);
        }
        let samples = sample_and_judge(
            model,
            codec,
            prompts,
            cfg.samples_per_prompt,
            sampling,
            seed,
        )?;
        for (key, split) in [
            (PROBE_TRAIN_RATE, Split::Train),
            (PROBE_HELD_OUT_RATE, Split::Eval),
        ] {
            let verdicts = samples
                .iter()
                .filter(|s| s.prompt.split == split)
                .map(|s| &s.verdict);
            if let Some(rate) = world::Metrics::of(verdicts).desirable_rate {
                out.insert(key.into(), rate.into());
            }
        }
        Ok(out)
    }
}
