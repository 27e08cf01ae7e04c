//! The prompts of the toy world: five templates, fifteen facts each, one right answer each.
//! The details are on the public items ([`Template`], [`Split`]), where `cargo doc` shows them.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

/// A kind of question. Each template has a fixed question and answer shape.
///
/// Every prompt is a question from a tiny, regular language, so a model of about a million
/// parameters can learn it in seconds:
///
/// | template | question | right answer |
/// |---|---|---|
/// | [`Template::Capital`] | What is the capital of France? | Paris is the capital of France. |
/// | [`Template::Arithmetic`] | What is 2 plus 3? | 2 plus 3 is 5. |
/// | [`Template::Color`] | What color is the sky? | The sky is blue. |
/// | [`Template::Sound`] | What does the cow say? | The cow says moo. |
/// | [`Template::Opposite`] | What is the opposite of hot? | The opposite of hot is cold. |
///
/// Each template has [`FACTS_PER_TEMPLATE`] = 15 facts: 75 prompts in all.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// "What is the capital of France?" → "Paris is the capital of France."
    Capital,
    /// "What is 2 plus 3?" → "2 plus 3 is 5."
    Arithmetic,
    /// "What color is the sky?" → "The sky is blue."
    Color,
    /// "What does the cow say?" → "The cow says moo."
    Sound,
    /// "What is the opposite of hot?" → "The opposite of hot is cold."
    Opposite,
}

impl Template {
    /// Every template, in the order the prompts are listed.
    pub const ALL: [Template; 5] = [
        Template::Capital,
        Template::Arithmetic,
        Template::Color,
        Template::Sound,
        Template::Opposite,
    ];

    /// The template's name as written in JSON: `"capital"`, `"arithmetic"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Template::Capital => "capital",
            Template::Arithmetic => "arithmetic",
            Template::Color => "color",
            Template::Sound => "sound",
            Template::Opposite => "opposite",
        }
    }

    /// The question, with `{s}` standing for the subject.
    pub(crate) fn question_form(self) -> &'static str {
        match self {
            Template::Capital => "What is the capital of {s}?",
            Template::Arithmetic => "What is {s}?",
            Template::Color => "What color is the {s}?",
            Template::Sound => "What does the {s} say?",
            Template::Opposite => "What is the opposite of {s}?",
        }
    }

    /// The accepted answer sentences, `{s}` for the subject and `{a}` for the answer word.
    /// The first is the canonical answer (the one SFT teaches); the second an accepted
    /// paraphrase.
    pub(crate) fn answer_forms(self) -> [&'static str; 2] {
        match self {
            Template::Capital => ["{a} is the capital of {s}.", "The capital of {s} is {a}."],
            Template::Arithmetic => ["{s} is {a}.", "{s} equals {a}."],
            Template::Color => ["The {s} is {a}.", "The color of the {s} is {a}."],
            Template::Sound => ["The {s} says {a}.", "The {s} goes {a}."],
            Template::Opposite => ["The opposite of {s} is {a}.", "{a} is the opposite of {s}."],
        }
    }

    /// The (subject, answer) facts of this template, in order.
    fn facts(self) -> Vec<(String, String)> {
        let own = |t: &[(&str, &str)]| {
            t.iter()
                .map(|(s, a)| (s.to_string(), a.to_string()))
                .collect()
        };
        match self {
            Template::Capital => own(&CAPITALS),
            Template::Arithmetic => SUMS
                .iter()
                .map(|&(x, y)| (format!("{x} plus {y}"), (x + y).to_string()))
                .collect(),
            Template::Color => own(&COLORS),
            Template::Sound => own(&SOUNDS),
            Template::Opposite => own(&OPPOSITES),
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of the train/eval split a prompt is on.
///
/// Inside each template, every 5th fact (positions 4, 9, 14 counting from 0; see
/// [`EVAL_EVERY`]) is held out for **evaluation**; the other twelve are for **training**.
/// That gives 60 train and 15 eval prompts, three eval prompts per template.
///
/// The split is about *feedback*: the SFT corpus ([`sft_corpus`](super::sft_corpus)) covers
/// every prompt — a model cannot answer "What is the capital of Peru?" if it never saw Lima —
/// while the feedback loop samples, judges and trains KTO on `Train` prompts only. The
/// desirable rate on `Eval` prompts then shows whether what KTO learned (stop dodging, stop
/// joking, prefer the right fact) carries over to questions it never got feedback on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Sampled, judged and trained on in the feedback loop.
    Train,
    /// Held out: only measured.
    Eval,
}

impl Split {
    /// `"train"` or `"eval"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Eval => "eval",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One question of the toy world, with its one right answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prompt {
    /// Position in [`prompts()`]: 0, 1, 2, ...
    pub id: usize,
    /// The kind of question.
    pub template: Template,
    /// Train or eval.
    pub split: Split,
    /// What the question is about: `"France"`, `"2 plus 3"`, `"sky"`, `"cow"`, `"hot"`.
    pub subject: String,
    /// The answer word: `"Paris"`, `"5"`, `"blue"`, `"moo"`, `"cold"`.
    pub answer: String,
    /// The question as the model sees it: `"What is the capital of France?"`.
    pub question: String,
}

impl Prompt {
    /// The question text (what goes into a record's `prompt`).
    pub fn question(&self) -> &str {
        &self.question
    }
}

/// How many facts each template has.
pub const FACTS_PER_TEMPLATE: usize = 15;

/// Inside each template, the fact at position `i` is held out for eval when
/// `i % EVAL_EVERY == EVAL_EVERY - 1`: every 5th fact.
pub const EVAL_EVERY: usize = 5;

/// Capitals: (country, capital).
const CAPITALS: [(&str, &str); FACTS_PER_TEMPLATE] = [
    ("France", "Paris"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Germany", "Berlin"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
    ("Greece", "Athens"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"),
    ("Norway", "Oslo"),
    ("Poland", "Warsaw"),
    ("Cuba", "Havana"),
];

/// Sums: (x, y) for "x plus y".
const SUMS: [(u32, u32); FACTS_PER_TEMPLATE] = [
    (2, 3),
    (1, 1),
    (4, 4),
    (3, 6),
    (5, 2),
    (6, 4),
    (7, 1),
    (2, 2),
    (3, 3),
    (5, 5),
    (8, 1),
    (1, 2),
    (6, 6),
    (4, 7),
    (9, 4),
];

/// Colors: (thing, color).
const COLORS: [(&str, &str); FACTS_PER_TEMPLATE] = [
    ("sky", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("sun", "yellow"),
    ("coal", "black"),
    ("banana", "yellow"),
    ("tomato", "red"),
    ("carrot", "orange"),
    ("milk", "white"),
    ("leaf", "green"),
    ("cherry", "red"),
    ("crow", "black"),
    ("chocolate", "brown"),
    ("lemon", "yellow"),
    ("pumpkin", "orange"),
];

/// Animal sounds: (animal, sound).
const SOUNDS: [(&str, &str); FACTS_PER_TEMPLATE] = [
    ("cow", "moo"),
    ("dog", "woof"),
    ("cat", "meow"),
    ("duck", "quack"),
    ("sheep", "baa"),
    ("pig", "oink"),
    ("owl", "hoot"),
    ("lion", "roar"),
    ("snake", "hiss"),
    ("bee", "buzz"),
    ("horse", "neigh"),
    ("mouse", "squeak"),
    ("frog", "ribbit"),
    ("wolf", "howl"),
    ("crow", "caw"),
];

/// Opposites: (word, opposite).
const OPPOSITES: [(&str, &str); FACTS_PER_TEMPLATE] = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("day", "night"),
    ("happy", "sad"),
    ("wet", "dry"),
    ("full", "empty"),
    ("left", "right"),
    ("early", "late"),
    ("loud", "quiet"),
    ("open", "closed"),
    ("light", "dark"),
    ("rich", "poor"),
    ("strong", "weak"),
];

/// Fill `{s}` and `{a}` in a form and capitalize the first letter.
pub(crate) fn render(form: &str, subject: &str, answer: &str) -> String {
    capitalize(&form.replace("{s}", subject).replace("{a}", answer))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Every prompt of the toy world: 75 of them, template by template (15 capitals, then 15
/// sums, 15 colors, 15 animal sounds, 15 opposites), numbered by [`Prompt::id`].
pub fn prompts() -> &'static [Prompt] {
    static PROMPTS: OnceLock<Vec<Prompt>> = OnceLock::new();
    PROMPTS.get_or_init(|| {
        let mut out = Vec::new();
        for template in Template::ALL {
            for (i, (subject, answer)) in template.facts().into_iter().enumerate() {
                let split = if i % EVAL_EVERY == EVAL_EVERY - 1 {
                    Split::Eval
                } else {
                    Split::Train
                };
                out.push(Prompt {
                    id: out.len(),
                    template,
                    split,
                    question: render(template.question_form(), &subject, &answer),
                    subject,
                    answer,
                });
            }
        }
        out
    })
}

/// The prompts on one side of the split, in [`prompts()`] order: 60 train, 15 eval.
pub fn prompts_in(split: Split) -> Vec<&'static Prompt> {
    prompts().iter().filter(|p| p.split == split).collect()
}

/// The prompt whose question is exactly `question`, if any (e.g. to judge a record read back
/// from a feedback file).
pub fn find_prompt(question: &str) -> Option<&'static Prompt> {
    prompts().iter().find(|p| p.question == question)
}
