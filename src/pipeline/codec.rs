//! Text ↔ training examples: the one place the toy world's text meets token ids.

use crate::model::ModelError;
use crate::tokenizer::Tokenizer;
use crate::train::{Example, Pair};
use crate::world;

/// Encodes prompts and completions the way the model is trained and sampled:
/// prompt = `"Q: {question}\nA:"`, completion = `" {answer}"` followed by `<|endoftext|>`.
pub struct Codec<'a> {
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
}

impl Codec<'_> {
    /// Token ids of the prompt part.
    pub fn prompt(&self, question: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self.tokenizer.encode(&world::lm_text(question, None))?)
    }

    /// Token ids of a completion, ending with EOS so the model learns to stop.
    pub fn completion(&self, answer: &str) -> Result<Vec<u32>, ModelError> {
        let mut ids = self.tokenizer.encode(&format!(" {answer}"))?;
        ids.push(self.tokenizer.eos_id());
        Ok(ids)
    }

    /// A labelled example.
    pub fn example(
        &self,
        question: &str,
        answer: &str,
        label: bool,
    ) -> Result<Example, ModelError> {
        Ok(Example {
            prompt: self.prompt(question)?,
            completion: self.completion(answer)?,
            label,
        })
    }

    /// A preference pair.
    pub fn pair(&self, question: &str, chosen: &str, rejected: &str) -> Result<Pair, ModelError> {
        Ok(Pair {
            prompt: self.prompt(question)?,
            chosen: self.completion(chosen)?,
            rejected: self.completion(rejected)?,
        })
    }

    /// Generated ids back to a completion string (up to the first newline, trimmed).
    pub fn answer(&self, generated: &[u32]) -> Result<String, ModelError> {
        let text = self.tokenizer.decode(generated)?;
        Ok(world::cut_at_eos(&text).to_string())
    }
}
