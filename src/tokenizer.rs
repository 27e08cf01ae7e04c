//! A byte-level BPE tokenizer, trained on the lab's own corpus (the `tokenizers` crate,
//! Hugging Face's tokenizer library, saved as a standard `tokenizer.json`).
//!
//! *Byte-level*: text is first turned into bytes, so every string can be encoded, with no
//! "unknown" token — the 256 byte values are the base vocabulary. *BPE*: training then merges
//! the most frequent adjacent pair into a new token, again and again, until the vocabulary has
//! the requested size. Frequent words become one token, rare ones stay a few pieces.
//!
//! One special token, `<|endoftext|>` (as in GPT-2), marks the end of a completion and pads
//! batches. Like GPT-2, no space is added in front of the text, so `decode(encode(s)) == s`.

use std::path::{Path, PathBuf};

use thiserror::Error;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// What can go wrong training, using, saving or loading the tokenizer.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// Reading or writing a file failed; names the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The tokenizers crate reported a problem (training, encoding, decoding or writing JSON).
    #[error("tokenizer: {0}")]
    Library(String),
    /// A `tokenizer.json` could not be parsed, or has no `<|endoftext|>`; names the file.
    #[error("{path}: not a valid tokenizer.json: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A requested vocabulary size the model or the byte-level BPE cannot use.
    #[error("vocab size {got} is invalid: it must be in {min}..={max}")]
    BadVocabSize {
        /// The size asked for.
        got: usize,
        /// The smallest usable size (256 bytes + the end-of-text token).
        min: usize,
        /// The largest: the model's compile-time VOCAB.
        max: usize,
    },
}

/// The end-of-text token: end of a completion, and padding.
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// The smallest usable vocabulary: 256 bytes + [`EOS_TOKEN`].
pub const MIN_VOCAB: usize = 257;

/// A trained byte-level BPE tokenizer with an end-of-text token.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    eos_id: u32,
}

fn tk_err(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Library(e.to_string())
}

impl Tokenizer {
    /// Trains a tokenizer on `corpus` with at most `vocab_size` tokens (fewer if the corpus has
    /// fewer pairs worth merging). `vocab_size` must be in `257..=`[`crate::model::VOCAB`].
    /// The same corpus always gives the same tokenizer (byte for byte in `tokenizer.json`).
    pub fn train(corpus: &[String], vocab_size: usize) -> Result<Self, TokenizerError> {
        Self::train_with_limit(corpus, vocab_size, crate::model::VOCAB)
    }

    /// [`Tokenizer::train`] for a model whose vocabulary has `max_vocab` entries.
    pub fn train_with_limit(
        corpus: &[String],
        vocab_size: usize,
        max_vocab: usize,
    ) -> Result<Self, TokenizerError> {
        if !(MIN_VOCAB..=max_vocab).contains(&vocab_size) {
            return Err(TokenizerError::BadVocabSize {
                got: vocab_size,
                min: MIN_VOCAB,
                max: max_vocab,
            });
        }
        let byte_level = ByteLevel::default().add_prefix_space(false);
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(0)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(EOS_TOKEN, true)])
            // All 256 bytes are in the vocabulary even if the corpus never uses them.
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level))
            .with_post_processor(Some(byte_level));
        inner.train(&mut trainer, corpus.iter()).map_err(tk_err)?;
        Self::from_inner(inner)
    }

    fn from_inner(inner: tokenizers::Tokenizer) -> Result<Self, TokenizerError> {
        let eos_id = inner
            .token_to_id(EOS_TOKEN)
            .ok_or_else(|| TokenizerError::Library(format!("no {EOS_TOKEN} token")))?;
        Ok(Self { inner, eos_id })
    }

    /// The id of `<|endoftext|>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Number of tokens in the vocabulary, special token included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_err)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; `<|endoftext|>` (end and padding) is left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, true).map_err(tk_err)
    }

    /// The token strings of `ids` (byte-level: a leading `Ġ` is a space), for showing students.
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.inner
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("<{id}?>"))
            })
            .collect()
    }

    /// The `tokenizer.json` text (Hugging Face format, compact).
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner.to_string(false).map_err(tk_err)
    }

    /// Saves `tokenizer.json` (Hugging Face format: `transformers` can load it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads a `tokenizer.json` that has a `<|endoftext|>` token.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let inner: tokenizers::Tokenizer = text.parse().map_err(|e| TokenizerError::File {
            path: path.to_path_buf(),
            message: format!("{e}"),
        })?;
        Self::from_inner(inner).map_err(|e| TokenizerError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}
