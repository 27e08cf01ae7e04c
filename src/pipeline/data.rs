//! Between sampling and training: judged samples become feedback records (appended to the
//! store as they come), and the records become what each preference run trains on.

use super::{Codec, LoopConfig, LoopError, Sample};
use crate::feedback::{self, FeedbackStore, Record, Text};
use crate::losses::KtoConfig;
use crate::train::{Example, Pair};
use crate::world;

/// What the preference runs train on, from one set of judged records.
pub(super) struct RunData {
    /// The records' counts.
    pub stats: feedback::Stats,
    /// KTO's examples (one per record).
    pub kto: Vec<Example>,
    /// KTO's class weights (λD raised by the paper's rule if the thumbs up are too few).
    pub kto_weights: KtoConfig,
    /// DPO's pairs from the same samples.
    pub pairs: Vec<Pair>,
    /// The records left when most thumbs up are dropped: their counts …
    pub imbalanced_stats: feedback::Stats,
    /// … their examples …
    pub imbalanced: Vec<Example>,
    /// … and their class weights.
    pub imbalanced_weights: KtoConfig,
}

impl RunData {
    /// Every run's data from `records`.
    pub fn of(codec: &Codec, records: &[Record], cfg: &LoopConfig) -> Result<Self, LoopError> {
        let stats = feedback::Stats::of(records);
        let pairs = world::dpo_pairs(records)
            .iter()
            .map(|p| codec.pair(text(&p.prompt), text(&p.chosen), text(&p.rejected)))
            .collect::<Result<Vec<Pair>, _>>()?;
        let imbalanced = drop_desirable(records, cfg.imbalanced_keep);
        let (kto, kto_weights) = kto_data(codec, records, cfg)?;
        let (imbalanced_examples, imbalanced_weights) = kto_data(codec, &imbalanced, cfg)?;
        Ok(RunData {
            stats,
            kto,
            kto_weights,
            pairs,
            imbalanced_stats: feedback::Stats::of(&imbalanced),
            imbalanced: imbalanced_examples,
            imbalanced_weights,
        })
    }
}

/// KTO's examples from `records` and its class weights for their counts (what a later KTO
/// round trains on: no DPO pairs, no imbalanced set).
pub(super) fn kto_data(
    codec: &Codec,
    records: &[Record],
    cfg: &LoopConfig,
) -> Result<(Vec<Example>, KtoConfig), LoopError> {
    let stats = feedback::Stats::of(records);
    Ok((
        examples(codec, records)?,
        balanced_weights(stats.desirable, stats.undesirable, &cfg.kto_loss),
    ))
}

/// The judged samples as records (blank answers cannot be stored; they still count as
/// malformed in the metrics), appended to `store` when given; metadata: sample index, round.
pub(super) fn store_samples(
    samples: &[Sample],
    round: usize,
    store: Option<&FeedbackStore>,
) -> Result<Vec<Record>, LoopError> {
    let mut records = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let mut extra = serde_json::Map::new();
        extra.insert("sample".into(), i.into());
        if round > 1 {
            extra.insert("round".into(), round.into());
        }
        if let Ok(record) = world::to_record(s.prompt, &s.answer, &s.verdict, extra) {
            if let Some(store) = store {
                store.append(&record)?;
            }
            records.push(record);
        }
    }
    Ok(records)
}

/// The plain string inside a toy-world record (the world only writes plain text).
pub(super) fn text(t: &Text) -> &str {
    match t {
        Text::Plain(s) => s,
        Text::Messages(m) => m.last().map_or("", |m| m.content.as_str()),
    }
}

fn examples(codec: &Codec, records: &[Record]) -> Result<Vec<Example>, LoopError> {
    Ok(records
        .iter()
        .map(|r| codec.example(text(&r.prompt), text(&r.completion), r.label))
        .collect::<Result<_, _>>()?)
}

/// KTO's class weights brought into the paper's range λD·nD / (λU·nU) ∈ [1, 4/3] by raising
/// λD (the paper's imbalance rule) when the thumbs up are too few; kept as given otherwise or for one-class data.
fn balanced_weights(n_desirable: usize, n_undesirable: usize, base: &KtoConfig) -> KtoConfig {
    match feedback::advise(
        n_desirable,
        n_undesirable,
        base.desirable_weight as f64,
        base.undesirable_weight as f64,
    ) {
        Ok(a) if !a.in_range && a.ratio < 1.0 => KtoConfig {
            desirable_weight: a.suggested_desirable_weight as f32,
            ..*base
        },
        _ => *base,
    }
}

/// Keeps every thumbs-down record and about `keep` of the thumbs-up ones (evenly spaced, so the
/// result is deterministic and covers the prompts), at least one.
fn drop_desirable(records: &[Record], keep: f64) -> Vec<Record> {
    let every = (1.0 / keep.clamp(1e-6, 1.0)).round().max(1.0) as usize;
    let mut seen = 0;
    records
        .iter()
        .filter(|r| {
            if !r.label {
                return true;
            }
            seen += 1;
            (seen - 1) % every == 0
        })
        .cloned()
        .collect()
}
