//! The preference runs, all from the SFT model and against it as reference: KTO (and its
//! later feedback rounds), DPO and imbalanced KTO. They are independent, so they run on their
//! own threads (a 2-core laptop does two at once); each keeps its own log.

use dfdx::prelude::Device;

use super::data::{kto_data, store_samples, RunData};
use super::{probe, Codec, LoopConfig, LoopError, ProbeConfig, Sampling};
use crate::device::{both, Shareable};
use crate::feedback::{self, FeedbackStore, Record};
use crate::losses::KtoConfig;
use crate::model::LanguageModel;
use crate::train::{self, MetricsLog, Session, TrainConfig, TrainError};
use crate::world::Prompt;

/// The looks during training ([`probe`]): every run's probe looks at the same prompts with the
/// same seed.
pub(super) struct Looker<'a> {
    pub codec: &'a Codec<'a>,
    pub prompts: &'a [&'static Prompt],
    pub sampling: &'a Sampling,
    pub seed: u64,
}

impl Looker<'_> {
    /// The probe of a run of `steps` steps (`None`: no looks).
    pub fn look<D: Device<f32>, M: LanguageModel<D>>(
        &self,
        cfg: Option<ProbeConfig>,
        steps: usize,
    ) -> impl FnMut(&M, usize) -> Result<train::Metrics, TrainError> + '_ {
        let mut look = cfg
            .map(|p| probe::<D, M>(self.codec, self.prompts, p, self.sampling, self.seed, steps));
        move |m: &M, done: usize| match &mut look {
            Some(look) => look(m, done),
            None => Ok(train::Metrics::new()),
        }
    }
}

/// What the runs share besides their data.
pub(super) struct Context<'a> {
    pub cfg: &'a LoopConfig,
    pub codec: &'a Codec<'a>,
    /// The prompts later KTO rounds sample answers to.
    pub train_prompts: &'a [&'static Prompt],
    /// Where later rounds' judged samples are appended.
    pub store: Option<&'a FeedbackStore>,
    pub looker: &'a Looker<'a>,
    pub pad: u32,
}

impl Context<'_> {
    /// One feedback round: `model` answers the training prompts, the judge rates each answer,
    /// and the ratings are appended to the store and returned as records. Round 1 samples the
    /// SFT model; each round has its own seed.
    pub fn collect<D: Device<f32>, M: LanguageModel<D>>(
        &self,
        model: &M,
        round: usize,
    ) -> Result<Vec<Record>, LoopError> {
        let cfg = self.cfg;
        let seed = cfg.seed ^ 0xfeed ^ if round > 1 { (round as u64) << 16 } else { 0 };
        let samples = super::sample_and_judge(
            model,
            self.codec,
            self.train_prompts,
            cfg.feedback_samples,
            &cfg.sampling,
            seed,
        )?;
        store_samples(&samples, round, self.store)
    }
}

/// The runs' models and logs.
pub(super) struct Runs<M> {
    pub kto: KtoRounds<M>,
    pub dpo: (M, MetricsLog),
    pub imbalanced: (M, MetricsLog),
}

/// Trains KTO (every round), DPO and imbalanced KTO from `reference`, on three threads.
pub(super) fn preference_runs<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    ctx: &Context,
    reference: &M,
    records: &[Record],
    data: &RunData,
) -> Result<Runs<M>, LoopError> {
    let cfg = ctx.cfg;
    let kto_rounds = || kto_rounds(ctx, reference, records, data);
    let dpo_job = |m: &mut M, s: &mut Session| {
        let mut look = ctx.looker.look(cfg.probe, s.cfg.steps);
        train::train_dpo(m, reference, &data.pairs, cfg.dpo_beta, s, &mut look)
    };
    let imbalanced_job = |m: &mut M, s: &mut Session| {
        let mut look = ctx.looker.look(cfg.probe, s.cfg.steps);
        let (examples, weights) = (&data.imbalanced, &data.imbalanced_weights);
        train::train_kto(m, reference, examples, weights, s, &mut look)
    };
    let imbalanced_cfg = cfg.kto_imbalanced.as_ref().unwrap_or(&cfg.kto);
    let ((kto, dpo), imbalanced) = both(
        || {
            both(kto_rounds, || {
                train_from(reference, "dpo", &cfg.dpo, ctx.pad, dpo_job)
            })
        },
        || {
            train_from(
                reference,
                "kto-imbalanced",
                imbalanced_cfg,
                ctx.pad,
                imbalanced_job,
            )
        },
    );
    Ok(Runs {
        kto: kto?,
        dpo: dpo?,
        imbalanced: imbalanced?,
    })
}

/// KTO's rounds, one after the other on one thread (each needs the last one's model): round 1
/// on the SFT model's feedback; each later round samples the last model, judges, appends, and
/// trains on from there on all the feedback so far.
fn kto_rounds<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    ctx: &Context,
    reference: &M,
    records: &[Record],
    data: &RunData,
) -> Result<KtoRounds<M>, LoopError> {
    let cfg = ctx.cfg;
    let (first, first_log) = train_from(reference, "kto", &cfg.kto, ctx.pad, |m, s| {
        let mut look = ctx.looker.look(cfg.probe, s.cfg.steps);
        train::train_kto(m, reference, &data.kto, &data.kto_weights, s, &mut look)
    })?;
    let mut rounds = KtoRounds {
        models: vec![first],
        logs: vec![first_log],
        feedback: Vec::new(),
        weights: Vec::new(),
    };
    let mut all = records.to_vec();
    for round in 2..=cfg.kto_rounds.max(1) {
        let last = rounds.models.last().ok_or_else(lost)?;
        let new = ctx.collect(last, round)?;
        rounds.feedback.push(feedback::Stats::of(&new));
        all.extend(new);
        let (examples, weights) = kto_data(ctx.codec, &all, cfg)?;
        let phase = format!("kto-round{round}");
        let later_cfg = cfg.kto_later.as_ref().unwrap_or(&cfg.kto);
        let (model, log) = train_from(last, &phase, later_cfg, ctx.pad, |m, s| {
            let mut look = ctx.looker.look(cfg.probe, s.cfg.steps);
            train::train_kto(m, reference, &examples, &weights, s, &mut look)
        })?;
        rounds.models.push(model);
        rounds.logs.push(log);
        rounds.weights.push(weights);
    }
    Ok(rounds)
}

/// The KTO runs of every feedback round, in order.
pub(super) struct KtoRounds<M> {
    pub models: Vec<M>,
    pub logs: Vec<MetricsLog>,
    /// Judged samples of rounds 2, 3, …
    pub feedback: Vec<feedback::Stats>,
    /// Class weights of rounds 2, 3, …
    pub weights: Vec<KtoConfig>,
}

/// The preference runs' models, their logs merged.
pub(super) struct Trained<M> {
    pub kto: M,
    pub kto_later: Vec<M>,
    pub dpo: M,
    pub kto_imbalanced: M,
    /// Judged samples of KTO's rounds 2, 3, …
    pub feedback: Vec<feedback::Stats>,
    /// Class weights of KTO's rounds 2, 3, …
    pub weights: Vec<KtoConfig>,
}

impl<M> Trained<M> {
    /// Every model to evaluate, `reference` first: KTO's rounds, DPO, imbalanced KTO.
    pub(super) fn models<'a>(&'a self, reference: &'a M) -> Vec<&'a M> {
        let mut models = vec![reference, &self.kto];
        models.extend(self.kto_later.iter());
        models.extend([&self.dpo, &self.kto_imbalanced]);
        models
    }
}

impl<M> Runs<M> {
    /// Moves each run's log into `log`, in a fixed order (KTO's rounds, DPO, imbalanced KTO),
    /// and hands over the models.
    pub(super) fn merge_logs(self, log: &mut MetricsLog) -> Result<Trained<M>, LoopError> {
        let Runs {
            kto,
            dpo,
            imbalanced,
        } = self;
        for own_log in kto.logs.into_iter().chain([dpo.1, imbalanced.1]) {
            log.extend(own_log)?;
        }
        let mut models = kto.models.into_iter();
        Ok(Trained {
            kto: models.next().ok_or_else(lost)?,
            kto_later: models.collect(),
            dpo: dpo.0,
            kto_imbalanced: imbalanced.0,
            feedback: kto.feedback,
            weights: kto.weights,
        })
    }
}

pub(super) fn lost() -> LoopError {
    LoopError::Other("lost a run".into())
}

/// One preference run: a copy of `start` trained by `job`, with its own log.
pub(super) fn train_from<D: Device<f32>, M: LanguageModel<D>>(
    start: &M,
    phase: &str,
    cfg: &TrainConfig,
    pad_id: u32,
    job: impl FnOnce(&mut M, &mut Session) -> Result<(), TrainError>,
) -> Result<(M, MetricsLog), TrainError> {
    let mut policy = start.clone();
    let mut log = MetricsLog::quiet();
    job(
        &mut policy,
        &mut Session {
            phase,
            cfg,
            pad_id,
            log: &mut log,
        },
    )?;
    Ok((policy, log))
}
