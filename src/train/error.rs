use std::path::{Path, PathBuf};
use thiserror::Error;

use crate::losses::LossError;
use crate::model::ModelError;

/// What can stop a training run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The model rejected a batch (token out of range, empty completion, ...).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The loss rejected its inputs (NaN log-probs, empty batch, bad β, ...).
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Nothing to train on.
    #[error("no training data: {what}")]
    Empty {
        /// Which data.
        what: &'static str,
    },
    /// A bad setting.
    #[error("`{name}` = {value} is invalid: {expected}")]
    BadConfig {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

impl TrainError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_owned(),
            error,
        }
    }
}
