//! Sample the model, judge the answers, and measure how far it drifted from the reference.

use dfdx::prelude::Device;
use serde::Serialize;

use super::codec::Codec;
use super::{LoopConfig, LoopError};
use crate::device::{both, Shareable};
use crate::model::{LanguageModel, ModelError, SampleConfig};
use crate::train::logprobs;
use crate::world::{self, Metrics, Prompt, Split, Verdict};

/// One sampled answer with the judge's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The prompt's question.
    pub question: String,
    /// Index into [`world::prompts`].
    #[serde(skip)]
    pub prompt: &'static Prompt,
    /// The model's answer.
    pub answer: String,
    /// The judge's verdict.
    pub verdict: Verdict,
}

/// How answers are sampled, for feedback and for evaluation alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Sampling {
    /// Softmax temperature (0 = greedy).
    pub temperature: f32,
    /// Sample among the k most likely tokens only (`None`: all). Cuts off the long tail of
    /// near-impossible tokens that a small model still gives some mass to.
    pub top_k: Option<usize>,
    /// Longest answer, in tokens.
    pub max_new_tokens: usize,
}

/// `per_prompt` answers to each prompt, sampled at `temperature` with `seed`, judged.
pub fn sample_and_judge<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    codec: &Codec,
    prompts: &[&'static Prompt],
    per_prompt: usize,
    sampling: &Sampling,
    seed: u64,
) -> Result<Vec<Sample>, ModelError> {
    let mut requests = Vec::with_capacity(prompts.len() * per_prompt);
    for p in prompts {
        let ids = codec.prompt(p.question())?;
        for _ in 0..per_prompt {
            requests.push((*p, ids.clone()));
        }
    }
    let ids: Vec<Vec<u32>> = requests.iter().map(|(_, ids)| ids.clone()).collect();
    let cfg = SampleConfig {
        temperature: sampling.temperature,
        top_k: sampling.top_k,
        max_new_tokens: sampling.max_new_tokens,
        seed,
    };
    let generated = model.generate(&ids, codec.tokenizer.eos_id(), &cfg)?;
    requests
        .iter()
        .zip(generated)
        .map(|((prompt, _), out)| {
            let answer = codec.answer(&out)?;
            let verdict = world::judge(prompt, &answer);
            Ok(Sample {
                question: prompt.question().to_string(),
                prompt,
                answer,
                verdict,
            })
        })
        .collect()
}

/// The desirable rate and the KL estimate of a model on a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Judge's counts on the samples.
    pub judged: Metrics,
    /// Monte-Carlo estimate of KL(πθ ‖ πref) per completion: the mean over the model's own
    /// samples of log πθ(y|x) − log πref(y|x). 0 for the reference itself.
    pub kl_to_reference: f64,
    /// Samples the KL was averaged over (blank answers cannot be scored).
    pub scored: usize,
}

impl Evaluation {
    /// The desirable rate as a table cell: `87.5%`, or `—` when nothing was judged.
    pub fn desirable_percent(&self) -> String {
        self.judged
            .desirable_rate
            .map_or("—".to_string(), |x| format!("{:.1}%", 100.0 * x))
    }

    /// The evaluation of the union of two disjoint sample sets.
    pub fn combine(&self, other: &Evaluation) -> Evaluation {
        let a = &self.judged;
        let b = &other.judged;
        let mut judged = *a;
        judged.total += b.total;
        judged.desirable += b.desirable;
        judged.undesirable += b.undesirable;
        judged.desirable_rate =
            (judged.total > 0).then(|| judged.desirable as f64 / judged.total as f64);
        judged.by_kind.wrong += b.by_kind.wrong;
        judged.by_kind.evasive += b.by_kind.evasive;
        judged.by_kind.flippant += b.by_kind.flippant;
        judged.by_kind.malformed += b.by_kind.malformed;
        let scored = self.scored + other.scored;
        let kl_to_reference = if scored == 0 {
            0.0
        } else {
            (self.kl_to_reference * self.scored as f64
                + other.kl_to_reference * other.scored as f64)
                / scored as f64
        };
        Evaluation {
            judged,
            kl_to_reference,
            scored,
        }
    }
}

/// Judges the samples and estimates the KL of `model` from `reference` on them (the samples must
/// come from `model`). Blank answers cannot be scored and are left out of the KL.
pub fn evaluate<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    reference: &M,
    codec: &Codec,
    samples: &[Sample],
    batch_size: usize,
) -> Result<Evaluation, LoopError> {
    let judged = Metrics::of(samples.iter().map(|s| &s.verdict));
    let mut pairs = Vec::new();
    for s in samples.iter().filter(|s| !s.answer.is_empty()) {
        pairs.push((codec.prompt(&s.question)?, codec.completion(&s.answer)?));
    }
    let kl_to_reference = if pairs.is_empty() {
        0.0
    } else {
        let pad = codec.tokenizer.eos_id();
        let policy = logprobs(model, &pairs, pad, batch_size)?;
        let reference = logprobs(reference, &pairs, pad, batch_size)?;
        let total: f64 = policy
            .iter()
            .zip(&reference)
            .map(|(p, r)| (p - r) as f64)
            .sum();
        total / pairs.len() as f64
    };
    Ok(Evaluation {
        judged,
        kl_to_reference,
        scored: pairs.len(),
    })
}
/// The loop's evaluation of `model`: fresh samples on every prompt (`cfg.eval_samples` each,
/// the same seed for every model), judged and scored against `reference`, as (training
/// prompts, held-out prompts).
pub(super) fn evaluate_split<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    reference: &M,
    codec: &Codec,
    prompts: &[&'static Prompt],
    cfg: &LoopConfig,
) -> Result<(Evaluation, Evaluation), LoopError> {
    let seed = cfg.seed ^ 0xe7a1;
    let all = sample_and_judge(model, codec, prompts, cfg.eval_samples, &cfg.sampling, seed)?;
    let (held_out, seen): (Vec<Sample>, Vec<Sample>) =
        all.into_iter().partition(|s| s.prompt.split == Split::Eval);
    let batch = cfg.kto.batch_size.max(8);
    Ok((
        evaluate(model, reference, codec, &seen, batch)?,
        evaluate(model, reference, codec, &held_out, batch)?,
    ))
}

/// [`evaluate_split`] of each model, two at a time on two threads (sampling is independent per
/// model), in order.
pub(super) fn evaluate_all<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    models: &[&M],
    reference: &M,
    codec: &Codec,
    prompts: &[&'static Prompt],
    cfg: &LoopConfig,
) -> Result<Vec<(Evaluation, Evaluation)>, LoopError> {
    let eval = |m: &M| evaluate_split(m, reference, codec, prompts, cfg);
    let mut evaluations = Vec::with_capacity(models.len());
    for two in models.chunks(2) {
        match two {
            [a, b] => {
                let (a, b) = both(|| eval(a), || eval(b));
                evaluations.extend([a?, b?]);
            }
            [a] => evaluations.push(eval(a)?),
            _ => {}
        }
    }
    Ok(evaluations)
}
