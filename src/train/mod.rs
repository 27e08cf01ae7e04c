//! Training (lab 3): the optimizer dfdx lacks, the data sampler, the metrics log, and the SFT,
//! KTO and DPO trainers over any [`crate::model::LanguageModel`].

pub mod data;
mod error;
pub mod log;
pub mod optim;
pub mod parallel;
pub mod step;
pub mod trainer;

pub use data::{Batcher, Example, Pair};
pub use error::TrainError;
pub use log::{MetricsLog, StepRecord};
pub use optim::{grad_norm, AdamW, AdamWConfig, LrSchedule, StepInfo};
pub use step::{DpoStep, KtoStep, Metrics, SftStep, Size, Step};
pub use trainer::{
    logprobs, no_probe, train_dpo, train_kto, train_sft, Probe, Session, TrainConfig,
};
