//! Training: SFT, KTO and DPO trainers over the tiny GPT (lab 3).

pub mod optim;

pub use optim::{grad_norm, AdamW, AdamWConfig, LrSchedule, StepInfo};
