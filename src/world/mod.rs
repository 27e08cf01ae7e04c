//! The toy world of lab 3: questions with one right answer, ways to answer badly, a
//! rule-based judge, and the glue to the feedback store.
//!
//! The lab's loop, end to end:
//!
//! 1. **SFT** a tiny GPT on [`sft_corpus`] — good and bad answers mixed half and half, so it
//!    answers well only about half the time. Train its tokenizer on [`tokenizer_corpus`];
//!    join prompt and answer with [`lm_text`].
//! 2. **Sample** answers to the [`Split::Train`] prompts ([`prompts_in`]), cut at [`EOS`]
//!    with [`cut_at_eos`].
//! 3. **Judge** each one with [`judge`] — thumbs up or down, and why.
//! 4. **Store** the feedback: [`to_record`] → [`FeedbackStore::append`](crate::feedback::FeedbackStore::append),
//!    TRL's unpaired KTO format. ([`dpo_pairs`] makes DPO pairs from the same records, for
//!    comparison.)
//! 5. **KTO** on the stored records, then sample and judge again: [`Metrics`] before and after,
//!    on train and on held-out eval prompts.
//!
//! ```
//! use kto_lab::world::{find_prompt, good_answer, judge, Metrics};
//!
//! let france = find_prompt("What is the capital of France?").unwrap();
//! assert_eq!(good_answer(france), "Paris is the capital of France.");
//! let verdicts = [
//!     judge(france, "Paris is the capital of France."),
//!     judge(france, "I don't know."),
//! ];
//! assert_eq!(Metrics::of(&verdicts).desirable_rate, Some(0.5));
//! ```
//!
//! | item | what it does | file |
//! |---|---|---|
//! | [`Prompt`], [`Template`], [`Split`], [`prompts`], [`prompts_in`], [`find_prompt`] | 75 questions in 5 templates; 60 train, 15 eval | `data.rs` |
//! | [`UndesirableKind`], [`good_answer`], [`accepted_answers`], [`bad_answer`], [`all_bad_answers`] | right and wrong answers | `answers.rs` |
//! | [`lm_text`], [`EOS`], [`cut_at_eos`], [`CHAT_TEMPLATE`] | how prompt and completion are joined for the model | `format.rs` |
//! | [`sft_corpus`], [`SftExample`], [`tokenizer_corpus`] | training text | `corpus.rs` |
//! | [`judge`], [`Verdict`], [`normalize`] | the rule-based thumbs up/down | `judge.rs` |
//! | [`to_record`], [`dpo_pairs`] | judged samples → KTO records, DPO pairs | `records.rs` |
//! | [`Metrics`], [`KindCounts`], [`desirable_rate`] | the desirable rate and what went wrong | `metrics.rs` |
//!
//! Everything is deterministic: the data is constant and every random choice takes a seed
//! or an `rng` you seed.

mod answers;
mod corpus;
mod data;
mod format;
mod judge;
mod metrics;
mod records;

pub use answers::{
    accepted_answers, all_bad_answers, bad_answer, good_answer, wrong_answers, UndesirableKind,
    EVASIVE_ANSWERS, FLIPPANT_ANSWERS,
};
pub use corpus::{sft_corpus, tokenizer_corpus, SftExample, DEFAULT_GOOD_FRACTION, SFT_COPIES};
pub use data::{
    find_prompt, prompts, prompts_in, Prompt, Split, Template, EVAL_EVERY, FACTS_PER_TEMPLATE,
};
pub use format::{cut_at_eos, lm_text, CHAT_TEMPLATE, EOS};
pub use judge::{judge, normalize, Verdict};
pub use metrics::{desirable_rate, KindCounts, Metrics};
pub use records::{dpo_pairs, to_record};
