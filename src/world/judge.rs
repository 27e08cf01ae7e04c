//! The rule-based judge: thumbs up only for the right answer, stated as one clean sentence.
//! The rules are documented on [`judge`].

use std::fmt;

use serde::Serialize;

use super::answers::{UndesirableKind, EVASIVE_ANSWERS, FLIPPANT_ANSWERS};
use super::data::{prompts, Prompt};

/// The judge's decision on one completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `true` = thumbs up (desirable).
    pub label: bool,
    /// For a thumbs down, what is wrong with the answer; `None` for a thumbs up.
    pub kind: Option<UndesirableKind>,
    /// One line for people: why this verdict.
    pub reason: String,
}

impl Verdict {
    fn up(reason: impl Into<String>) -> Self {
        Verdict {
            label: true,
            kind: None,
            reason: reason.into(),
        }
    }

    fn down(kind: UndesirableKind, reason: impl Into<String>) -> Self {
        Verdict {
            label: false,
            kind: Some(kind),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let thumb = if self.label { "up" } else { "down" };
        match self.kind {
            Some(kind) => write!(f, "thumbs {thumb} ({kind}): {}", self.reason),
            None => write!(f, "thumbs {thumb}: {}", self.reason),
        }
    }
}

/// The form the judge compares: lowercase, curly apostrophes made straight, runs of
/// whitespace made one space, and leading/trailing spaces and trailing `.`, `!`, `?` removed.
///
/// ```
/// use kto_lab::world::normalize;
/// assert_eq!(normalize("  Paris  is the\tcapital of FRANCE!! "), "paris is the capital of france");
/// assert_eq!(normalize("I don’t know."), "i don't know");
/// ```
pub fn normalize(text: &str) -> String {
    let lower = text.replace('\u{2019}', "'").to_lowercase();
    let spaced = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    spaced
        .trim_end_matches(|c: char| matches!(c, '.' | '!' | '?') || c.is_whitespace())
        .to_string()
}

/// Judge one completion to `prompt`: thumbs up only for the right answer, stated as one
/// clean sentence.
///
/// In a real deployment thumbs come from people. Here a few rules stand in for them, so the
/// feedback loop runs in seconds and its result can be measured exactly.
///
/// It first [`normalize`]s the completion (case, spaces, trailing `.`/`!`/`?`, curly
/// apostrophes), then decides in this order:
///
/// 1. **empty** → down, [`Malformed`](UndesirableKind::Malformed);
/// 2. one of the prompt's [`accepted_answers`](super::accepted_answers) → **up**;
/// 3. one of the [`EVASIVE_ANSWERS`] → down, `Evasive`;
/// 4. one of the [`FLIPPANT_ANSWERS`], or any text with the word "lol" → down, `Flippant`;
/// 5. an accepted sentence shape with one other word in the answer's place ("Rome is the
///    capital of France."), or a well-formed answer to *another* question of the world
///    ("The sky is blue.") → down, `Wrong`;
/// 6. anything else — garbled, truncated, repeated, the right answer plus junk → down,
///    `Malformed`.
///
/// The judge is deterministic and total: any string, however strange, gets a verdict.
///
/// ```
/// use kto_lab::world::{find_prompt, judge, UndesirableKind};
/// let france = find_prompt("What is the capital of France?").unwrap();
/// assert!(judge(france, "Paris is the capital of France.").label);
/// assert!(judge(france, "paris is the capital of france").label);
/// assert_eq!(judge(france, "Rome is the capital of France.").kind, Some(UndesirableKind::Wrong));
/// assert_eq!(judge(france, "I don't know.").kind, Some(UndesirableKind::Evasive));
/// assert_eq!(judge(france, "Paris is the capital of France. lol").kind, Some(UndesirableKind::Flippant));
/// assert_eq!(judge(france, "Paris is the capital of France and").kind, Some(UndesirableKind::Malformed));
/// ```
pub fn judge(prompt: &Prompt, completion: &str) -> Verdict {
    let text = normalize(completion);
    if text.is_empty() {
        return Verdict::down(UndesirableKind::Malformed, "empty completion");
    }
    let right = prompt.answer.to_lowercase();
    let own_slots: Vec<&str> = prompt
        .template
        .answer_forms()
        .iter()
        .filter_map(|form| slot(&text, form, &prompt.subject))
        .collect();
    if own_slots.iter().any(|w| *w == right) {
        return Verdict::up(format!("states the right answer, {}", prompt.answer));
    }
    if EVASIVE_ANSWERS.iter().any(|e| normalize(e) == text) {
        return Verdict::down(UndesirableKind::Evasive, "dodges the question");
    }
    if FLIPPANT_ANSWERS.iter().any(|e| normalize(e) == text) {
        return Verdict::down(
            UndesirableKind::Flippant,
            "does not take the question seriously",
        );
    }
    if text
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == "lol")
    {
        return Verdict::down(UndesirableKind::Flippant, "says \"lol\"");
    }
    if let Some(word) = own_slots.first() {
        return Verdict::down(
            UndesirableKind::Wrong,
            format!("says {word} instead of {right}"),
        );
    }
    if let Some(other) = prompts().iter().find(|p| {
        p.template
            .answer_forms()
            .iter()
            .any(|form| slot(&text, form, &p.subject).is_some())
    }) {
        return Verdict::down(
            UndesirableKind::Wrong,
            format!("answers another question: {}", other.question),
        );
    }
    Verdict::down(
        UndesirableKind::Malformed,
        "not a one-sentence answer to the question",
    )
}

/// If the normalized `text` has the shape of `form` for `subject` with exactly one word in
/// the answer's place, that word.
fn slot<'t>(text: &'t str, form: &str, subject: &str) -> Option<&'t str> {
    let filled = normalize(&form.replace("{s}", subject));
    let (before, after) = filled.split_once("{a}")?;
    let word = text.strip_prefix(before)?.strip_suffix(after)?;
    is_word(word).then_some(word)
}

/// One word: letters, digits, `-` or `'`, nothing else.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '\'')
}
