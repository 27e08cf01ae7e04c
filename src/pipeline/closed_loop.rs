//! The loop itself, stage by stage: SFT, sample and judge into the feedback store, the
//! preference runs from the SFT model, and the evaluation of every model.

use dfdx::prelude::Device;
use std::path::Path;

use super::data::RunData;
use super::evaluate::evaluate_all;
use super::runs::{preference_runs, Context, Looker};
use super::{report, Codec, LoopConfig, LoopError, LoopReport, ProbeConfig};
use crate::device::Shareable;
use crate::feedback::{FeedbackStore, Record};
use crate::model::{LanguageModel, ModelError};
use crate::tokenizer::Tokenizer;
use crate::train::{self, Example, MetricsLog, Session};
use crate::world::{self, Split};

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
    let prompts = cfg.prompts();
    if prompts.is_empty() {
        return Err(LoopError::Other("no prompts: `templates` is empty".into()));
    }
    let train_prompts: Vec<_> = prompts
        .iter()
        .copied()
        .filter(|p| p.split == Split::Train)
        .collect();
    let store = out.map(fresh_store).transpose()?;

    // 1. Tokenizer and SFT on a mix of good and bad answers.
    let tokenizer =
        Tokenizer::train(&world::tokenizer_corpus(), cfg.vocab_size).map_err(ModelError::from)?;
    let codec = Codec {
        tokenizer: &tokenizer,
    };
    let looker = Looker {
        codec: &codec,
        prompts: &prompts,
        sampling: &cfg.sampling,
        seed: cfg.seed ^ 0x9b0e,
    };
    let ctx = Context {
        cfg,
        codec: &codec,
        train_prompts: &train_prompts,
        store: store.as_ref(),
        looker: &looker,
        pad: tokenizer.eos_id(),
    };
    let reference = sft(&init, &ctx, log)?;

    // 2. Sample answers to the training prompts, judge them, store the feedback.
    let records = ctx.collect(&reference, 1)?;
    let data = RunData::of(&codec, &records, cfg)?;

    // 3. The preference runs, each from the SFT model, each against it as reference, on their
    //    own threads; their logs merged into `log` afterwards in a fixed order.
    log.note("training KTO, DPO and imbalanced KTO from the SFT model (in parallel)");
    let runs = preference_runs(&ctx, &reference, &records, &data)?.merge_logs(log)?;

    // 4. Evaluate every model on fresh samples of every prompt (train and held-out).
    let evaluations = evaluate_all(&runs.models(&reference), &reference, &codec, &prompts, cfg)?;
    let report = report::loop_report(&data, &runs.feedback, &runs.weights, evaluations)?;
    Ok(LoopOutcome {
        tokenizer,
        reference,
        kto: runs.kto,
        kto_later: runs.kto_later,
        dpo: runs.dpo,
        kto_imbalanced: runs.kto_imbalanced,
        feedback: records,
        report,
    })
}

/// Only the loop's first stage: the tokenizer and the SFT model (trained on the world's
/// half-good mix, or loaded from `cfg.sft_checkpoint`), with no looks during training. What a
/// rating session starts from (`kto-lab rate` with no trained model yet).
pub fn train_sft_model<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    init: impl Fn(u64) -> M,
    cfg: &LoopConfig,
    log: &mut MetricsLog,
) -> Result<(Tokenizer, M), LoopError> {
    let prompts = cfg.prompts();
    let tokenizer =
        Tokenizer::train(&world::tokenizer_corpus(), cfg.vocab_size).map_err(ModelError::from)?;
    let codec = Codec {
        tokenizer: &tokenizer,
    };
    let looker = Looker {
        codec: &codec,
        prompts: &prompts,
        sampling: &cfg.sampling,
        seed: cfg.seed ^ 0x9b0e,
    };
    let cfg = LoopConfig {
        probe: None,
        ..cfg.clone()
    };
    let ctx = Context {
        cfg: &cfg,
        codec: &codec,
        train_prompts: &[],
        store: None,
        looker: &looker,
        pad: tokenizer.eos_id(),
    };
    let model = sft(&init, &ctx, log)?;
    Ok((tokenizer, model))
}

/// The feedback store `dir/feedback.jsonl`, which must not exist yet: the loop writes a fresh
/// one, and nothing saved is overwritten.
fn fresh_store(dir: &Path) -> Result<FeedbackStore, LoopError> {
    let store = FeedbackStore::new(dir.join("feedback.jsonl"));
    if store.path().exists() {
        return Err(LoopError::Other(format!(
            "{}: already exists; the loop writes a fresh feedback file (remove it or choose another folder)",
            store.path().display()
        )));
    }
    Ok(store)
}

/// The SFT model: trained on the world's half-good mix (its rates looked at once, after its
/// last step: where every curve starts), or loaded from `cfg.sft_checkpoint`.
fn sft<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    init: &impl Fn(u64) -> M,
    ctx: &Context,
    log: &mut MetricsLog,
) -> Result<M, LoopError> {
    let (cfg, codec, looker) = (ctx.cfg, ctx.codec, ctx.looker);
    let mut model = init(cfg.seed);
    if let Some(path) = &cfg.sft_checkpoint {
        model.load(path)?;
        return Ok(model);
    }
    let data = world::sft_corpus(cfg.seed, cfg.good_fraction)
        .into_iter()
        .filter(|e| looker.prompts.iter().any(|p| p.id == e.prompt_id))
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
