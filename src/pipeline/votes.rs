//! KTO on a person's thumbs: the answers they rate, the run on their votes, and how far the
//! model moved toward *their* taste.
//!
//! 1. [`answer_pool`]: the SFT model answers the training prompts; the distinct answers, in a
//!    seeded shuffled order, are what the rating page shows.
//! 2. The rater votes ([`crate::feedback::VoteLog`]); [`final_records`](crate::feedback::final_records)
//!    turns the clicks into training rows.
//! 3. [`kto_on_votes`]: KTO from the SFT model on those rows, then both models answer the
//!    **held-out** prompts — questions the rater never saw — and each answer is scored by the
//!    judge and by the rater's estimated taste.
//!
//! ## Estimating a person's taste on answers they never saw
//!
//! The rater cannot be asked about the new answers, so their votes are summarized by the kind
//! of answer they were on: correct, wrong, evasive, flippant or malformed — the toy world's
//! judge sorts any answer into one of these ([`world::judge`]). [`Taste`] keeps, per kind, the
//! share of the rater's thumbs up with a +1/+2 (Laplace) prior, so a kind they never rated
//! counts as a coin flip. The *taste rate* of a set of answers is the mean of that share over
//! them. It is an estimate, and a coarse one: a rater whose taste does not follow the kinds
//! (who likes short answers, say) is summarized only as far as the kinds correlate with it.

use dfdx::prelude::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

use super::data::{kto_data, text};
use super::runs::train_from;
use super::{sample_and_judge, Codec, LoopConfig, LoopError, Sample};
use crate::feedback::{self, Agreement, AnswerPool, Record};
use crate::losses::KtoConfig;
use crate::model::LanguageModel;
use crate::train::{self, TrainError};
use crate::world::{self, Prompt, Split, Verdict};

/// `per_prompt` answers of `model` to each of `prompts`, the distinct ones (a rater's time is
/// not spent twice on one text), in an order shuffled with `seed` so that one question's
/// answers do not come in a row.
pub fn answer_pool<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    codec: &Codec,
    prompts: &[&'static Prompt],
    per_prompt: usize,
    cfg: &LoopConfig,
    description: &str,
    seed: u64,
) -> Result<AnswerPool, LoopError> {
    let samples = sample_and_judge(model, codec, prompts, per_prompt, &cfg.sampling, seed)?;
    let mut seen = HashSet::new();
    let mut answers: Vec<(String, String)> = samples
        .into_iter()
        .filter(|s| !s.answer.trim().is_empty())
        .map(|s| (s.question, s.answer))
        .filter(|a| seen.insert(a.clone()))
        .collect();
    answers.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5a7e));
    if answers.is_empty() {
        return Err(LoopError::Other(
            "the model gave no answer that is not blank: nothing to rate".into(),
        ));
    }
    Ok(AnswerPool::new(description, answers))
}

/// The category the judge puts an answer in: `correct`, or the kind of thumbs down.
pub fn category(verdict: &Verdict) -> &'static str {
    match (verdict.label, verdict.kind) {
        (true, _) => "correct",
        (false, Some(kind)) => kind.as_str(),
        (false, None) => "malformed",
    }
}

/// Every category, in the order reports list them.
pub const CATEGORIES: [&str; 5] = ["correct", "wrong", "evasive", "flippant", "malformed"];

/// A rater's taste, summarized by the kind of answer they voted on (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Taste {
    /// Per category: (thumbs up, votes).
    pub votes: BTreeMap<String, (usize, usize)>,
}

impl Taste {
    /// The taste of the rows whose prompt is a toy-world question (others cannot be sorted).
    pub fn of(rows: &[Record]) -> Taste {
        let mut votes: BTreeMap<String, (usize, usize)> =
            CATEGORIES.iter().map(|c| (c.to_string(), (0, 0))).collect();
        for (prompt, completion, label) in world_rows(rows) {
            let e = votes
                .get_mut(category(&world::judge(prompt, completion)))
                .expect("every category is listed");
            e.0 += usize::from(label);
            e.1 += 1;
        }
        Taste { votes }
    }

    /// The estimated chance that the rater gives this category a thumbs up: (up + 1) / (n + 2).
    pub fn p_up(&self, category: &str) -> f64 {
        let (up, n) = self.votes.get(category).copied().unwrap_or((0, 0));
        (up as f64 + 1.0) / (n as f64 + 2.0)
    }

    /// The mean of [`p_up`](Self::p_up) over the samples (`None` for none).
    pub fn rate(&self, samples: &[Sample]) -> Option<f64> {
        (!samples.is_empty()).then(|| {
            samples
                .iter()
                .map(|s| self.p_up(category(&s.verdict)))
                .sum::<f64>()
                / samples.len() as f64
        })
    }
}

/// The rows whose prompt is one of the toy world's questions: (prompt, completion, label).
fn world_rows(rows: &[Record]) -> impl Iterator<Item = (&'static Prompt, &str, bool)> + '_ {
    rows.iter().filter_map(|r| {
        let prompt = world::find_prompt(text(&r.prompt))?;
        Some((prompt, text(&r.completion), r.label))
    })
}

/// The rater (first) against the judge (second) on the rows with a toy-world question.
pub fn judge_agreement(rows: &[Record]) -> Agreement {
    Agreement::of(
        world_rows(rows)
            .map(|(prompt, completion, label)| (label, world::judge(prompt, completion).label)),
    )
}

/// One model's answers to the held-out questions, scored two ways.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// The judge's desirable rate.
    pub judge_rate: Option<f64>,
    /// The rater's estimated taste rate ([`Taste::rate`]).
    pub taste_rate: Option<f64>,
    /// How many answers in each category.
    pub categories: BTreeMap<String, usize>,
    /// Answers scored.
    pub answers: usize,
}

impl Scored {
    fn of(samples: &[Sample], taste: &Taste) -> Scored {
        let mut categories: BTreeMap<String, usize> =
            CATEGORIES.iter().map(|c| (c.to_string(), 0)).collect();
        for s in samples {
            *categories.entry(category(&s.verdict).into()).or_default() += 1;
        }
        Scored {
            judge_rate: world::Metrics::of(samples.iter().map(|s| &s.verdict)).desirable_rate,
            taste_rate: taste.rate(samples),
            categories,
            answers: samples.len(),
        }
    }
}

/// What [`kto_on_votes`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VotesReport {
    /// The rows trained on.
    pub votes: feedback::Stats,
    /// Rows per rater.
    pub raters: BTreeMap<String, usize>,
    /// KTO's class weights (λD raised by the paper's rule if thumbs up are scarce).
    pub weights: KtoConfig,
    /// The rater against the judge on the rated answers.
    pub agreement: Agreement,
    /// The rater's taste by category.
    pub taste: Taste,
    /// The SFT model on the held-out questions.
    pub before: Scored,
    /// The KTO model on the same questions (same sampling seed).
    pub after: Scored,
    /// A few held-out answers of each model: (question, before, after).
    pub examples: Vec<(String, String, String)>,
}

impl VotesReport {
    /// The report as Markdown: the votes, the agreement, before/after rates and examples.
    pub fn markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("—".into(), |x| format!("{:.1}%", 100.0 * x));
        let mut md = format!(
            "Votes: {}\n\nRater against the judge: {}\n\n\
             | model | judge's desirable rate | rater's taste rate (estimated) | answers |\n\
             |---|---|---|---|\n\
             | SFT (before) | {} | {} | {} |\n| KTO on the votes (after) | {} | {} | {} |\n\n\
             Held-out questions only (the rater saw none of them). The taste rate is the rater's \
             share of thumbs up per kind of answer (correct, wrong, evasive, flippant, \
             malformed; +1/+2 prior), averaged over the answers.\n\n\
             | kind | rater's votes (👍 / all) | before | after |\n|---|---|---|---|\n",
            self.votes,
            self.agreement,
            pct(self.before.judge_rate),
            pct(self.before.taste_rate),
            self.before.answers,
            pct(self.after.judge_rate),
            pct(self.after.taste_rate),
            self.after.answers,
        );
        for c in CATEGORIES {
            let (up, n) = self.taste.votes.get(c).copied().unwrap_or((0, 0));
            md.push_str(&format!(
                "| {c} | {up} / {n} | {} | {} |\n",
                self.before.categories.get(c).copied().unwrap_or(0),
                self.after.categories.get(c).copied().unwrap_or(0)
            ));
        }
        md.push_str("\n| question | before | after |\n|---|---|---|\n");
        for (q, before, after) in &self.examples {
            md.push_str(&format!("| {q} | {before} | {after} |\n"));
        }
        md
    }
}

/// KTO from `reference` on the rater's `rows` (with `cfg.kto`, `cfg.kto_loss`, λD raised by the
/// imbalance rule if needed), then both models sampled `samples_per_prompt` times on each of
/// `held_out` with the same seed and scored ([`VotesReport`]). Returns the trained model too.
pub fn kto_on_votes<
    D: Device<f32> + crate::device::Shareable,
    M: LanguageModel<D> + crate::device::Shareable,
>(
    reference: &M,
    codec: &Codec,
    rows: &[Record],
    held_out: &[&'static Prompt],
    samples_per_prompt: usize,
    cfg: &LoopConfig,
) -> Result<(M, VotesReport), LoopError> {
    if rows.is_empty() {
        return Err(LoopError::Other(
            "no votes to train on (every answer skipped or undone?)".into(),
        ));
    }
    if held_out.is_empty() {
        return Err(LoopError::Other("no held-out questions to score on".into()));
    }
    let (examples, weights) = kto_data(codec, rows, cfg)?;
    let pad = codec.tokenizer.eos_id();
    let (model, _log) = train_from(reference, "kto-votes", &cfg.kto, pad, |m, s| {
        let mut no_looks = |_: &M, _: usize| Ok::<_, TrainError>(train::Metrics::new());
        train::train_kto(m, reference, &examples, &weights, s, &mut no_looks)
    })?;
    let seed = cfg.seed ^ 0x7a57e;
    let taste = Taste::of(rows);
    let sample =
        |m: &M| sample_and_judge(m, codec, held_out, samples_per_prompt, &cfg.sampling, seed);
    let (before, after) = (sample(reference)?, sample(&model)?);
    let examples = held_out
        .iter()
        .map(|p| {
            let first = |s: &[Sample]| {
                s.iter()
                    .find(|s| std::ptr::eq(s.prompt, *p))
                    .map_or(String::new(), |s| s.answer.clone())
            };
            (p.question().to_string(), first(&before), first(&after))
        })
        .take(6)
        .collect();
    let report = VotesReport {
        votes: feedback::Stats::of(rows),
        raters: feedback::rows_per_rater(rows),
        weights,
        agreement: judge_agreement(rows),
        before: Scored::of(&before, &taste),
        after: Scored::of(&after, &taste),
        taste,
        examples,
    };
    Ok((model, report))
}

/// The toy world's held-out questions among `prompts`.
pub fn held_out(prompts: &[&'static Prompt]) -> Vec<&'static Prompt> {
    prompts
        .iter()
        .copied()
        .filter(|p| p.split == Split::Eval)
        .collect()
}

/// A model to rate and train: the SFT model, its tokenizer and the loop settings it was
/// trained with (its prompts, sampling and KTO settings).
pub struct RatingModel<M> {
    /// The SFT model (the rater's answers come from it, and KTO starts from it).
    pub model: M,
    /// Its tokenizer.
    pub tokenizer: crate::tokenizer::Tokenizer,
    /// The settings: `templates` chooses the prompts, `sampling` how answers are drawn, `kto`
    /// and `kto_loss` the run on the votes.
    pub config: LoopConfig,
    /// The model in words (shown on the page and in the report).
    pub description: String,
}

/// Held-out answers per question when scoring a run on votes.
pub const HELD_OUT_SAMPLES: usize = 32;

impl<M> RatingModel<M> {
    /// The training questions of the model's templates (what the rater sees) …
    pub fn rated_prompts(&self) -> Vec<&'static Prompt> {
        self.config
            .prompts()
            .into_iter()
            .filter(|p| p.split == Split::Train)
            .collect()
    }

    /// … and the held-out ones (what the runs on their votes are scored on).
    pub fn held_out_prompts(&self) -> Vec<&'static Prompt> {
        held_out(&self.config.prompts())
    }

    /// The answers to rate: `per_prompt` samples to each training question, distinct,
    /// shuffled with `seed` ([`answer_pool`]).
    pub fn pool<D: Device<f32>>(
        &self,
        per_prompt: usize,
        seed: u64,
    ) -> Result<AnswerPool, LoopError>
    where
        M: LanguageModel<D>,
    {
        let codec = Codec {
            tokenizer: &self.tokenizer,
        };
        answer_pool(
            &self.model,
            &codec,
            &self.rated_prompts(),
            per_prompt,
            &self.config,
            &self.description,
            seed,
        )
    }

    /// KTO on `rows` from the model, scored on the held-out questions ([`kto_on_votes`],
    /// [`HELD_OUT_SAMPLES`] answers each).
    pub fn train_on<D: Device<f32> + crate::device::Shareable>(
        &self,
        rows: &[Record],
    ) -> Result<(M, VotesReport), LoopError>
    where
        M: LanguageModel<D> + crate::device::Shareable,
    {
        let codec = Codec {
            tokenizer: &self.tokenizer,
        };
        kto_on_votes(
            &self.model,
            &codec,
            rows,
            &self.held_out_prompts(),
            HELD_OUT_SAMPLES,
            &self.config,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taste_counts_votes_by_kind_with_a_prior() {
        let france = world::find_prompt("What is the capital of France?").unwrap();
        let q = france.question();
        let rows = [
            Record::desirable(q, "I don't know."),
            Record::desirable(q, "I am not sure."),
            Record::undesirable(q, "Paris is the capital of France."),
            Record::desirable("not a world question", "x"),
        ];
        let taste = Taste::of(&rows);
        assert_eq!(taste.votes["evasive"], (2, 2));
        assert_eq!(taste.votes["correct"], (0, 1));
        assert!((taste.p_up("evasive") - 0.75).abs() < 1e-12);
        assert!((taste.p_up("flippant") - 0.5).abs() < 1e-12);
        // The rater disagrees with the judge on all three world rows.
        let a = judge_agreement(&rows);
        assert_eq!((a.n, a.both_up + a.both_down), (3, 0));
    }
}
