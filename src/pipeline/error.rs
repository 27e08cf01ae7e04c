//! Everything that can stop the loop, as one error type.

use thiserror::Error;

use crate::feedback::FeedbackError;
use crate::model::ModelError;
use crate::train::TrainError;

/// Everything that can stop the loop.
#[derive(Debug, Error)]
pub enum LoopError {
    /// Tokenizer or model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A trainer.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The feedback store.
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}
