//! Training text: the SFT mix of good and bad answers, and the tokenizer's corpus.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::answers::{accepted_answers, all_bad_answers, bad_answer, good_answer, UndesirableKind};
use super::data::prompts;
use super::format::lm_text;

/// How many SFT examples each prompt gets in [`sft_corpus`].
pub const SFT_COPIES: usize = 8;

/// The good fraction the lab uses: the SFT model answers well about half the time, leaving
/// KTO plenty to fix.
pub const DEFAULT_GOOD_FRACTION: f64 = 0.5;

/// One SFT training example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SftExample {
    /// The prompt's [`Prompt::id`](super::Prompt::id).
    pub prompt_id: usize,
    /// The question.
    pub prompt: String,
    /// The answer to learn.
    pub completion: String,
    /// `None` for the good answer, else which kind of bad answer this is.
    pub kind: Option<UndesirableKind>,
}

impl SftExample {
    /// The text the model trains on: [`lm_text`]`(prompt, Some(completion))`.
    pub fn text(&self) -> String {
        lm_text(&self.prompt, Some(&self.completion))
    }
}

/// The SFT corpus: every prompt (train *and* eval — see [the split](super::Split)) appears
/// [`SFT_COPIES`] times, with the good answer in about `good_fraction` of the copies and a
/// bad answer in the rest, the bad kinds taking turns (Wrong, Evasive, Flippant, Wrong, ...).
/// A model trained on it answers correctly about `good_fraction` of the time.
///
/// * The number of good copies is spread over the prompts so the whole corpus holds
///   `round(good_fraction × total)` good examples (each prompt gets ⌊f·8⌋ or ⌈f·8⌉).
/// * `good_fraction` outside `[0, 1]` is clamped; NaN counts as 0.
/// * The list is shuffled; the same `seed` always gives the same list.
///
/// 75 prompts × 8 copies = 600 examples.
pub fn sft_corpus(seed: u64, good_fraction: f64) -> Vec<SftExample> {
    let f = if good_fraction.is_nan() {
        0.0
    } else {
        good_fraction.clamp(0.0, 1.0)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut bad_turn = 0usize;
    let per_prompt = SFT_COPIES as f64 * f;
    for (i, prompt) in prompts().iter().enumerate() {
        // Cumulative rounding: the running total of good copies tracks f × examples so far.
        let good_before = (per_prompt * i as f64).round() as usize;
        let good_after = (per_prompt * (i + 1) as f64).round() as usize;
        let n_good = good_after.saturating_sub(good_before).min(SFT_COPIES);
        for copy in 0..SFT_COPIES {
            let (completion, kind) = if copy < n_good {
                (good_answer(prompt), None)
            } else {
                let kind = UndesirableKind::IN_SFT[bad_turn % UndesirableKind::IN_SFT.len()];
                bad_turn += 1;
                (bad_answer(prompt, kind, &mut rng), Some(kind))
            };
            out.push(SftExample {
                prompt_id: prompt.id,
                prompt: prompt.question.clone(),
                completion,
                kind,
            });
        }
    }
    out.shuffle(&mut rng);
    out
}

/// Every string the tokenizer should be trained on, so that every word the world can produce
/// is in its vocabulary: each question, bare and as a prompt ([`lm_text`]), each accepted
/// answer, every bad answer of every kind, and each full training text (so `"Q:"`, `"A:"` and
/// the newline [`EOS`](super::EOS) are there too). Deduplicated and sorted.
pub fn tokenizer_corpus() -> Vec<String> {
    let mut all = BTreeSet::new();
    for prompt in prompts() {
        all.insert(prompt.question.clone());
        all.insert(lm_text(&prompt.question, None));
        all.insert(lm_text(&prompt.question, Some(&good_answer(prompt))));
        all.extend(accepted_answers(prompt));
        for kind in UndesirableKind::ALL {
            all.extend(all_bad_answers(prompt, kind));
        }
    }
    all.into_iter().collect()
}
