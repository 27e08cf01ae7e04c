//! Lab 3's closed feedback loop, end to end:
//!
//! ```text
//! SFT on a mix of good and bad answers → sample answers → judge (thumbs up/down)
//!   → feedback file → KTO (and, for comparison, DPO and imbalanced KTO) → evaluate
//! ```
//!
//! [`run_loop`] does it all on the toy [`world`] and returns the trained models, the metrics
//! log and a [`LoopReport`]: the desirable rate of sampled answers and the KL to the reference,
//! before and after each method.

mod charts;
mod codec;
mod config;
mod data;
mod evaluate;
mod lora;
mod probe;
mod report;
mod runs;
mod seeds;

pub use charts::{desirable_rate_curves, desirable_rates, kto_curves, loss_curves};
pub use codec::Codec;
pub use config::LoopConfig;
use data::{store_samples, RunData};
use evaluate::evaluate_split;
pub use evaluate::{evaluate, sample_and_judge, Evaluation, Sample, Sampling};
pub use lora::{lora_beside_full, LoraOutcome, LoraReport, LoraRow, LoraSettings};
pub use probe::{probe, ProbeConfig, PROBE_HELD_OUT_RATE, PROBE_TRAIN_RATE};
pub use report::{LoopReport, MethodRow};
use runs::{lost, preference_runs, Context, Looker};
pub use seeds::{SeedRow, SeedSummary, Spread};

use dfdx::prelude::Device;
use std::path::Path;
use thiserror::Error;

use crate::device::{both, Shareable};
use crate::feedback::{FeedbackError, FeedbackStore, Record};
use crate::model::{LanguageModel, ModelError};
use crate::tokenizer::Tokenizer;
use crate::train::{self, Example, MetricsLog, Session, TrainError};
use crate::world::{self, Prompt, Split};

/// Everything that can stop the loop.
#[derive(Debug, Error)]
pub enum LoopError {
    /// Tokenizer or model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A trainer.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The feedback store.
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// What the loop produced.
pub struct LoopOutcome<M> {
    /// The tokenizer trained on the world's corpus.
    pub tokenizer: Tokenizer,
    /// The SFT model: the reference of every preference run.
    pub reference: M,
    /// The KTO-trained model (one round, on the SFT model's samples: like for like with DPO).
    pub kto: M,
    /// The KTO models of the later feedback rounds (round 2 first); empty with one round.
    pub kto_later: Vec<M>,
    /// The DPO-trained model.
    pub dpo: M,
    /// The KTO model trained on imbalanced feedback.
    pub kto_imbalanced: M,
    /// The judged feedback the preference runs trained on (TRL's unpaired format).
    pub feedback: Vec<Record>,
    /// Before/after table.
    pub report: LoopReport,
}

/// Runs the whole loop. `init(seed)` builds a fresh model; `out`, when given, receives
/// `feedback.jsonl` (the store the loop writes as it judges; an existing file is an error so
/// nothing saved is overwritten — the caller chooses a fresh folder or removes it).
pub fn run_loop<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    init: impl Fn(u64) -> M,
    cfg: &LoopConfig,
    out: Option<&Path>,
    log: &mut MetricsLog,
) -> Result<LoopOutcome<M>, LoopError> {
    let prompts: Vec<&'static Prompt> = world::prompts()
        .iter()
        .filter(|p| cfg.templates.contains(&p.template))
        .collect();
    if prompts.is_empty() {
        return Err(LoopError::Other("no prompts: `templates` is empty".into()));
    }
    let train_prompts: Vec<_> = prompts
        .iter()
        .copied()
        .filter(|p| p.split == Split::Train)
        .collect();
    let store = out.map(|dir| FeedbackStore::new(dir.join("feedback.jsonl")));
    if let Some(store) = &store {
        if store.path().exists() {
            return Err(LoopError::Other(format!(
                "{}: already exists; the loop writes a fresh feedback file (remove it or choose another folder)",
                store.path().display()
            )));
        }
    }

    // 1. Tokenizer and SFT on a mix of good and bad answers.
    let tokenizer =
        Tokenizer::train(&world::tokenizer_corpus(), cfg.vocab_size).map_err(ModelError::from)?;
    let codec = Codec {
        tokenizer: &tokenizer,
    };
    let pad = tokenizer.eos_id();
    let looker = Looker {
        codec: &codec,
        prompts: &prompts,
        sampling: &cfg.sampling,
        seed: cfg.seed ^ 0x9b0e,
    };
    let reference = sft(&init, cfg, &codec, &prompts, &looker, log)?;

    // 2. Sample answers to the training prompts, judge them, store the feedback.
    let samples = sample_and_judge(
        &reference,
        &codec,
        &train_prompts,
        cfg.feedback_samples,
        &cfg.sampling,
        cfg.seed ^ 0xfeed,
    )?;
    let records = store_samples(&samples, 1, store.as_ref())?;
    let data = RunData::of(&codec, &records, cfg)?;

    // 3. The preference runs, each from the SFT model, each against it as reference, on their
    //    own threads; their logs merged into `log` afterwards in a fixed order.
    log.note("training KTO, DPO and imbalanced KTO from the SFT model (in parallel)");
    let ctx = Context {
        cfg,
        codec: &codec,
        train_prompts: &train_prompts,
        store: store.as_ref(),
        looker: &looker,
        pad,
    };
    let runs = preference_runs(&ctx, &reference, &records, &data)?;
    let mut kto_models = runs.kto.models.into_iter();
    let kto = kto_models.next().ok_or_else(lost)?;
    let kto_later: Vec<M> = kto_models.collect();
    let (dpo, kto_imbalanced) = (runs.dpo.0, runs.imbalanced.0);
    for own_log in runs
        .kto
        .logs
        .into_iter()
        .chain([runs.dpo.1, runs.imbalanced.1])
    {
        log.extend(own_log)?;
    }

    // 4. Evaluate: fresh samples on every prompt (train and held-out), same seed for all
    //    models, two models at a time (sampling is independent per model).
    let mut models: Vec<&M> = vec![&reference, &kto];
    models.extend(kto_later.iter());
    models.extend([&dpo, &kto_imbalanced]);
    let mut evaluations = Vec::with_capacity(models.len());
    for two in models.chunks(2) {
        let eval = |m: &M| evaluate_split(m, &reference, &codec, &prompts, cfg);
        match two {
            [a, b] => {
                let (a, b) = both(|| eval(a), || eval(b));
                evaluations.extend([a?, b?]);
            }
            [a] => evaluations.push(eval(a)?),
            _ => {}
        }
    }
    let report = report::loop_report(&data, &runs.kto.feedback, &runs.kto.weights, evaluations)?;
    Ok(LoopOutcome {
        tokenizer,
        reference,
        kto,
        kto_later,
        dpo,
        kto_imbalanced,
        feedback: records,
        report,
    })
}

/// The SFT model: trained on the world's half-good mix (its rates looked at once, after its
/// last step: where every curve starts), or loaded from `cfg.sft_checkpoint`.
fn sft<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    init: &impl Fn(u64) -> M,
    cfg: &LoopConfig,
    codec: &Codec,
    prompts: &[&'static Prompt],
    looker: &Looker,
    log: &mut MetricsLog,
) -> Result<M, LoopError> {
    let mut model = init(cfg.seed);
    if let Some(path) = &cfg.sft_checkpoint {
        model.load(path)?;
        return Ok(model);
    }
    let data = world::sft_corpus(cfg.seed, cfg.good_fraction)
        .into_iter()
        .filter(|e| prompts.iter().any(|p| p.id == e.prompt_id))
        .map(|e| codec.example(&e.prompt, &e.completion, e.kind.is_none()))
        .collect::<Result<Vec<Example>, _>>()?;
    let last_only = cfg.probe.map(|p| ProbeConfig { every: 0, ..p });
    train::train_sft(
        &mut model,
        &data,
        &mut Session {
            phase: "sft",
            cfg: &cfg.sft,
            pad_id: codec.tokenizer.eos_id(),
            log,
        },
        &mut looker.look(last_only, cfg.sft.steps),
    )?;
    Ok(model)
}
