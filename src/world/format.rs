//! How a prompt and a completion are joined into the text the language model reads.
//!
//! ```text
//! Q: What is the capital of France?
//! A: Paris is the capital of France.
//! ```
//!
//! The prompt part is `"Q: {question}\nA:"`; the completion follows after one space and ends
//! with [`EOS`], a newline. A newline is a token in every tokenizer (characters, words or
//! BPE) and never appears inside a completion, so sampling simply stops at the first one:
//! [`cut_at_eos`] turns generated text back into a completion.

/// The end-of-sequence marker: the newline after the completion.
pub const EOS: char = '\n';

/// The text the model reads — the one place prompt and completion are joined:
///
/// ```text
/// Q: What is the capital of France?
/// A: Paris is the capital of France.
/// ```
///
/// With `completion = None`, the prompt to sample from,
/// `"Q: {question}\nA:"`; with `Some(c)`, the full training text
/// `"Q: {question}\nA: {c}\n"` (the completion after one space, then [`EOS`]).
///
/// The completion ends with [`EOS`], a newline: a newline is a token in every tokenizer
/// (characters, words or BPE) and never appears inside a completion, so sampling simply stops
/// at the first one, and [`cut_at_eos`] turns generated text back into a completion.
///
/// Put the SFT loss on the completion tokens only (those after the prompt part), so the
/// model learns to answer, not to ask.
///
/// ```
/// use kto_lab::world::lm_text;
/// assert_eq!(lm_text("What is 2 plus 3?", None), "Q: What is 2 plus 3?\nA:");
/// assert_eq!(
///     lm_text("What is 2 plus 3?", Some("2 plus 3 is 5.")),
///     "Q: What is 2 plus 3?\nA: 2 plus 3 is 5.\n"
/// );
/// ```
pub fn lm_text(question: &str, completion: Option<&str>) -> String {
    match completion {
        None => format!("Q: {question}\nA:"),
        Some(c) => format!("Q: {question}\nA: {c}{EOS}"),
    }
}

/// The prompt format as a Hugging Face chat template (Jinja), written into the exported
/// `tokenizer_config.json` so the format travels with the model: `apply_chat_template` — and
/// TRL's trainers, which call it on conversational rows — turn `[{"role": "user", "content":
/// q}, {"role": "assistant", "content": a}]` into exactly the tokens the model trained on,
/// the prompt [`lm_text`]`(q, None)` and the completion `" {a}"` then `<|endoftext|>` (what
/// `pipeline::Codec` encodes).
///
/// A user turn ends with `A:` already, so `add_generation_prompt` adds nothing; a system turn
/// (or any other role) is an error, since the model never saw one. The HF export check
/// (`scripts/check_hf_chat.py`) renders it with transformers and compares the tokens, the
/// greedy answers and TRL's tokenized rows with ours.
pub const CHAT_TEMPLATE: &str = concat!(
    "{%- for message in messages -%}",
    "{%- if message['role'] == 'user' -%}",
    "{{- 'Q: ' + message['content'] + '\\nA:' -}}",
    "{%- elif message['role'] == 'assistant' -%}",
    "{{- ' ' + message['content'] + eos_token -}}",
    "{%- else -%}",
    "{{- raise_exception('this model knows only user and assistant turns, not ' + message['role']) -}}",
    "{%- endif -%}",
    "{%- endfor -%}",
);

/// The completion inside text generated after `lm_text(question, None)`: everything up to
/// the first [`EOS`] (or the end), without surrounding spaces.
///
/// ```
/// use kto_lab::world::cut_at_eos;
/// assert_eq!(cut_at_eos(" Paris is the capital of France.\nQ: What"), "Paris is the capital of France.");
/// ```
pub fn cut_at_eos(generated: &str) -> &str {
    generated.split(EOS).next().unwrap_or_default().trim()
}
