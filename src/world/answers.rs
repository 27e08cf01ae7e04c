//! Good and bad answers: the one right sentence per prompt, and the ways to get it wrong.

use std::collections::BTreeSet;
use std::fmt;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use super::data::{prompts, render, Prompt};

/// Why an answer deserves a thumbs down.
///
/// The seed notebook's thumbs-down examples show three ways an answer goes bad — "I don't
/// know." (dodging), "Just don't get sick lol" (joking), and a plausible but wrong
/// statement. This enum names them, plus `Malformed`: the garbled text an undertrained model
/// produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UndesirableKind {
    /// A well-formed answer that states the wrong fact: "Rome is the capital of France."
    /// (or answers a different question of the world).
    Wrong,
    /// Dodges the question: "I don't know."
    Evasive,
    /// Does not take the question seriously: "Who cares lol."
    Flippant,
    /// Not a one-sentence answer at all: empty, garbled, truncated, repeated, or the right
    /// answer with junk around it.
    Malformed,
}

impl UndesirableKind {
    /// Every kind, in declaration order.
    pub const ALL: [UndesirableKind; 4] = [
        UndesirableKind::Wrong,
        UndesirableKind::Evasive,
        UndesirableKind::Flippant,
        UndesirableKind::Malformed,
    ];

    /// The kinds mixed into the SFT corpus ([`sft_corpus`](super::sft_corpus)). `Malformed`
    /// is left out: a small model produces enough of it by itself.
    pub const IN_SFT: [UndesirableKind; 3] = [
        UndesirableKind::Wrong,
        UndesirableKind::Evasive,
        UndesirableKind::Flippant,
    ];

    /// The kind as written in JSON: `"wrong"`, `"evasive"`, `"flippant"`, `"malformed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            UndesirableKind::Wrong => "wrong",
            UndesirableKind::Evasive => "evasive",
            UndesirableKind::Flippant => "flippant",
            UndesirableKind::Malformed => "malformed",
        }
    }
}

impl fmt::Display for UndesirableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The evasive answers [`bad_answer`] draws from (the judge recognizes each of them).
pub const EVASIVE_ANSWERS: [&str; 4] = [
    "I don't know.",
    "I am not sure.",
    "I cannot answer that.",
    "Nobody knows.",
];

/// The flippant answers [`bad_answer`] draws from. The judge also calls any answer containing
/// the word "lol" flippant.
pub const FLIPPANT_ANSWERS: [&str; 4] = [
    "Who cares lol.",
    "Just google it lol.",
    "Whatever lol.",
    "Ask someone else lol.",
];

/// The right answer, in its canonical form: `"Paris is the capital of France."`.
///
/// This is the sentence the SFT corpus teaches; the judge also accepts one paraphrase per
/// template (see [`accepted_answers`]).
pub fn good_answer(prompt: &Prompt) -> String {
    let [canonical, _] = prompt.template.answer_forms();
    render(canonical, &prompt.subject, &prompt.answer)
}

/// Every answer the judge gives a thumbs up (before normalization): the canonical
/// [`good_answer`] first, then the paraphrase — e.g. `"The capital of France is Paris."`.
pub fn accepted_answers(prompt: &Prompt) -> Vec<String> {
    prompt
        .template
        .answer_forms()
        .iter()
        .map(|form| render(form, &prompt.subject, &prompt.answer))
        .collect()
}

/// The wrong answer words for `prompt`: the other answers of its template, without the right
/// one, deduplicated and sorted. For "What is the capital of France?": Athens, Beijing, ...
pub fn wrong_answers(prompt: &Prompt) -> Vec<String> {
    let words: BTreeSet<&str> = prompts()
        .iter()
        .filter(|p| p.template == prompt.template && p.answer != prompt.answer)
        .map(|p| p.answer.as_str())
        .collect();
    words.into_iter().map(str::to_string).collect()
}

/// Every bad answer [`bad_answer`] can return for `prompt` with this `kind`, in a fixed
/// order. (Useful for tests and for the tokenizer corpus.)
pub fn all_bad_answers(prompt: &Prompt, kind: UndesirableKind) -> Vec<String> {
    match kind {
        UndesirableKind::Wrong => {
            let [canonical, _] = prompt.template.answer_forms();
            wrong_answers(prompt)
                .iter()
                .map(|w| render(canonical, &prompt.subject, w))
                .collect()
        }
        UndesirableKind::Evasive => EVASIVE_ANSWERS.iter().map(|s| s.to_string()).collect(),
        UndesirableKind::Flippant => FLIPPANT_ANSWERS.iter().map(|s| s.to_string()).collect(),
        UndesirableKind::Malformed => malformed_answers(prompt),
    }
}

/// A bad answer of the given kind, drawn with `rng` from [`all_bad_answers`]:
///
/// * `Wrong` — the canonical sentence with another answer of the same template:
///   "Rome is the capital of France.";
/// * `Evasive` — one of [`EVASIVE_ANSWERS`];
/// * `Flippant` — one of [`FLIPPANT_ANSWERS`];
/// * `Malformed` — the right answer truncated ("Paris is the capital of."), stuttered
///   ("Paris Paris is the capital of France.") or said twice.
///
/// Deterministic: the same `rng` state gives the same answer (seed it with
/// `rand_chacha::ChaCha8Rng::seed_from_u64`).
pub fn bad_answer<R: Rng + ?Sized>(prompt: &Prompt, kind: UndesirableKind, rng: &mut R) -> String {
    let options = all_bad_answers(prompt, kind);
    // Every list is non-empty (each template has several distinct answers), but never panic.
    options
        .choose(rng)
        .cloned()
        .unwrap_or_else(|| EVASIVE_ANSWERS[0].to_string())
}

/// The three garbled versions of the good answer.
fn malformed_answers(prompt: &Prompt) -> Vec<String> {
    let good = good_answer(prompt);
    let words: Vec<&str> = good.split_whitespace().collect();
    // Truncated: drop the last word, keep the full stop.
    let truncated = format!("{}.", words[..words.len().saturating_sub(1)].join(" "));
    // Stuttered: the first word twice.
    let first = words.first().copied().unwrap_or_default();
    let stuttered = format!("{first} {good}");
    // Repeated: the whole sentence twice.
    let repeated = format!("{good} {good}");
    vec![truncated, stuttered, repeated]
}
