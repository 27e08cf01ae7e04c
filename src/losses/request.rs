//! A loss computation described as JSON — what `kto-lab loss FILE` reads.
//!
//! ```json
//! { "loss": "kto", "beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0,
//!   "policy_logps": [-12.5, -30.1], "reference_logps": [-13.0, -29.0], "labels": [true, false],
//!   "kl_policy_logps": [-40.2, -38.0], "kl_reference_logps": [-40.0, -38.5] }
//! ```
//!
//! `loss` is one of `kto` (default), `kto_batch_mean`, `apo_zero_unpaired`, `dpo`. DPO reads
//! `policy_chosen_logps`, `policy_rejected_logps`, `reference_chosen_logps`,
//! `reference_rejected_logps` instead. Unknown fields are rejected (a typo must not silently fall
//! back to a default).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

use super::plain::{self, UnpairedBatch};
use super::{KtoConfig, LossError};

/// Which loss a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// [`super::kto()`]: the paper's / TRL's KTO.
    #[default]
    Kto,
    /// [`super::kto_batch_mean()`]: the seed's simplified KTO.
    KtoBatchMean,
    /// [`super::apo_zero_unpaired()`].
    ApoZeroUnpaired,
    /// [`super::dpo()`].
    Dpo,
}

/// The JSON request, as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossRequest {
    #[serde(default)]
    loss: LossKind,
    beta: Option<f32>,
    desirable_weight: Option<f32>,
    undesirable_weight: Option<f32>,
    policy_logps: Option<Vec<f32>>,
    reference_logps: Option<Vec<f32>>,
    labels: Option<Vec<bool>>,
    kl_policy_logps: Option<Vec<f32>>,
    kl_reference_logps: Option<Vec<f32>>,
    policy_chosen_logps: Option<Vec<f32>>,
    policy_rejected_logps: Option<Vec<f32>>,
    reference_chosen_logps: Option<Vec<f32>>,
    reference_rejected_logps: Option<Vec<f32>>,
}

/// What went wrong reading or computing a request; every message starts with the file's path.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Not valid JSON, or a field of the wrong type / unknown field.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The JSON path of the offending field (`labels[2]`), or `.` for the document.
        field: String,
        /// serde's description.
        message: String,
    },
    /// A field the chosen loss needs is absent.
    #[error("{path}: missing field `{field}` (the \"{loss}\" loss needs it)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The absent field.
        field: &'static str,
        /// The loss asked for.
        loss: &'static str,
    },
    /// The numbers are unusable (lengths, NaN, β...).
    #[error("{path}: {error}")]
    Loss {
        /// The file.
        path: PathBuf,
        /// Which field and why.
        error: LossError,
    },
}

/// A computed request: the loss's metrics and its gradients, as JSON-ready data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossReport {
    /// Which loss.
    pub loss: LossKind,
    /// Metrics, named as TRL logs them.
    pub metrics: serde_json::Value,
    /// ∂loss/∂(policy log-prob), per input field.
    pub gradients: serde_json::Value,
}

impl LossKind {
    /// A name for people.
    pub fn title(self) -> &'static str {
        match self {
            LossKind::Kto => "KTO (the paper's, as TRL computes it)",
            LossKind::KtoBatchMean => "KTO, simplified batch-mean form (lab 1, exercise 1)",
            LossKind::ApoZeroUnpaired => "APO-zero, unpaired",
            LossKind::Dpo => "DPO (sigmoid)",
        }
    }
}

impl LossRequest {
    /// Reads and parses a request file.
    pub fn from_file(path: &Path) -> Result<Self, RequestError> {
        let text = std::fs::read_to_string(path).map_err(|error| RequestError::Io {
            path: path.to_owned(),
            error,
        })?;
        Self::from_json(path, &text)
    }

    /// Parses request text; `path` only labels errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, RequestError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            RequestError::Json {
                path: path.to_owned(),
                line: inner.line(),
                field,
                message: strip_position(&inner.to_string()),
            }
        })
    }

    /// Computes the loss, its metrics and gradients. `path` only labels errors.
    pub fn compute(&self, path: &Path) -> Result<LossReport, RequestError> {
        let name = match self.loss {
            LossKind::Kto => "kto",
            LossKind::KtoBatchMean => "kto_batch_mean",
            LossKind::ApoZeroUnpaired => "apo_zero_unpaired",
            LossKind::Dpo => "dpo",
        };
        let need = |field: &'static str, v: &Option<Vec<f32>>| -> Result<Vec<f32>, RequestError> {
            v.clone().ok_or(RequestError::Missing {
                path: path.to_owned(),
                field,
                loss: name,
            })
        };
        let defaults = KtoConfig::default();
        let cfg = KtoConfig {
            beta: self.beta.unwrap_or(defaults.beta),
            desirable_weight: self.desirable_weight.unwrap_or(defaults.desirable_weight),
            undesirable_weight: self
                .undesirable_weight
                .unwrap_or(defaults.undesirable_weight),
        };
        let wrap = |error: LossError| RequestError::Loss {
            path: path.to_owned(),
            error,
        };
        let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.expect("loss outputs are plain numbers and always serialize")
        };
        let result = if self.loss == LossKind::Dpo {
            let out = plain::dpo(
                &need("policy_chosen_logps", &self.policy_chosen_logps)?,
                &need("policy_rejected_logps", &self.policy_rejected_logps)?,
                &need("reference_chosen_logps", &self.reference_chosen_logps)?,
                &need("reference_rejected_logps", &self.reference_rejected_logps)?,
                cfg.beta,
            )
            .map_err(wrap)?;
            to_json(serde_json::to_value(out))
        } else {
            let policy = need("policy_logps", &self.policy_logps)?;
            let reference = need("reference_logps", &self.reference_logps)?;
            let labels = self.labels.clone().ok_or(RequestError::Missing {
                path: path.to_owned(),
                field: "labels",
                loss: name,
            })?;
            let (kl_policy, kl_reference) = if self.loss == LossKind::Kto {
                (
                    need("kl_policy_logps", &self.kl_policy_logps)?,
                    need("kl_reference_logps", &self.kl_reference_logps)?,
                )
            } else {
                (Vec::new(), Vec::new())
            };
            let batch = UnpairedBatch {
                policy_logps: &policy,
                reference_logps: &reference,
                labels: &labels,
                kl_policy_logps: &kl_policy,
                kl_reference_logps: &kl_reference,
            };
            match self.loss {
                LossKind::Kto => to_json(serde_json::to_value(
                    plain::kto(&batch, &cfg).map_err(wrap)?,
                )),
                LossKind::KtoBatchMean => to_json(serde_json::to_value(
                    plain::kto_batch_mean(&batch, &cfg).map_err(wrap)?,
                )),
                _ => to_json(serde_json::to_value(
                    plain::apo_zero_unpaired(&batch, &cfg).map_err(wrap)?,
                )),
            }
        };
        // Every output serializes as {"metrics": {...}, "grad_...": [...], ...}: split the two.
        let mut gradients = match result {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let metrics = gradients.remove("metrics").unwrap_or_default();
        Ok(LossReport {
            loss: self.loss,
            metrics,
            gradients: serde_json::Value::Object(gradients),
        })
    }
}

/// serde_json appends " at line L column C"; we report the line ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
