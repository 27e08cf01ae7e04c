use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong in the model, its tokenizer and its batches. Never a panic: every
/// problem with user input (text, token ids, lengths, files) comes back as one of these.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Reading or writing a file failed; names the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The tokenizer failed (training, encoding, decoding, its file).
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// Saving or loading safetensors weights failed; names the file.
    #[error("{path}: safetensors: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong (missing tensor, wrong shape, bad header...).
        message: String,
    },
    /// A token id the model has no embedding for.
    #[error("token id {id} is out of range: the model's vocabulary has {vocab} entries")]
    TokenOutOfRange {
        /// The offending id.
        id: usize,
        /// The model's VOCAB.
        vocab: usize,
    },
    /// A sequence longer than the model's context (MAX_SEQ) where it was not truncated.
    #[error("sequence of {len} tokens is longer than the model's context of {max}")]
    SequenceTooLong {
        /// Its length.
        len: usize,
        /// MAX_SEQ.
        max: usize,
    },
    /// A row whose completion has no tokens: its log-prob would be a meaningless 0.
    #[error("row {row}: the completion is empty (it needs at least one token)")]
    EmptyCompletion {
        /// Its index in the batch.
        row: usize,
    },
    /// A batch or a sequence with nothing in it.
    #[error("`{what}` is empty")]
    Empty {
        /// What was empty.
        what: &'static str,
    },
    /// A parameter outside its valid range (temperature, top-k, context size...).
    #[error("`{name}` = {value} is invalid: it must be {expected}")]
    BadParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A [`TokenBatch`](super::TokenBatch) whose arrays do not match its `rows × seq_len` shape
    /// (its fields are public; [`TokenBatch::new`](super::TokenBatch::new) always builds them right).
    #[error("token batch: `{field}` has {got} entries, expected rows × seq_len = {expected}")]
    BatchShape {
        /// The array with the wrong length.
        field: &'static str,
        /// rows × seq_len.
        expected: usize,
        /// Its length.
        got: usize,
    },
    /// An export would replace an existing file; names it. Exports never overwrite: a trained
    /// model is hard to get back, so pick a new directory (or delete the old files yourself).
    #[error("{path} already exists: refusing to overwrite it (export to a new directory)")]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },
    /// The tensor device failed (out of memory, a CUDA error...).
    #[error("device: {0}")]
    Device(String),
}

/// A safetensors error as a sentence (its `Debug` form reads `InvalidHeaderDeserialization`).
pub(crate) fn safetensors_message(e: &::safetensors::tensor::SafeTensorError) -> String {
    use ::safetensors::tensor::SafeTensorError as E;
    match e {
        E::InvalidHeader => "the header is not valid UTF-8: not a safetensors file?".into(),
        E::InvalidHeaderStart => {
            "the header does not start with `{`: not a safetensors file?".into()
        }
        E::InvalidHeaderDeserialization => {
            "the header is not valid JSON: not a safetensors file, or a damaged one".into()
        }
        E::HeaderTooLarge => "the header is larger than 100 MB: not a safetensors file?".into(),
        E::HeaderTooSmall => {
            "the file is shorter than a safetensors header (8 bytes): empty or cut off?".into()
        }
        E::InvalidHeaderLength => {
            "the header's length is past the end of the file: the file is cut off".into()
        }
        E::TensorNotFound(name) => {
            format!("the file has no tensor `{name}`: saved from a different model?")
        }
        E::TensorInvalidInfo => {
            "a tensor's shape, dtype and offsets disagree: a damaged file".into()
        }
        E::InvalidOffset(name) => {
            format!("the offsets of tensor `{name}` are invalid: a damaged file")
        }
        E::IoError(io) => io.to_string(),
        E::JsonError(json) => format!("the header is not valid JSON: {json}"),
        E::InvalidTensorView(dtype, shape, len) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot be made from {len} bytes")
        }
        E::MetadataIncompleteBuffer => {
            "the tensors do not cover the data part of the file: a damaged file".into()
        }
        E::ValidationOverflow => "a tensor's size overflows: a damaged file".into(),
    }
}

/// dfdx's load error as a sentence.
pub(crate) fn load_message(e: &dfdx::tensor::safetensors::Error) -> String {
    use dfdx::tensor::safetensors::Error as E;
    match e {
        E::SafeTensorError(st) => safetensors_message(st),
        E::MismatchedDimension((expected, found)) => format!(
            "a tensor has shape {found:?} where this model has {expected:?}: saved from a model of another size?"
        ),
        E::IoError(io) => io.to_string(),
    }
}

/// Wraps a device error (dfdx's `D::Err`).
pub(crate) fn device_err<E: std::fmt::Display>(e: E) -> ModelError {
    ModelError::Device(e.to_string())
}
