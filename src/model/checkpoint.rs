//! A model's tensors in and out of a `.safetensors` file, through dfdx's `TensorCollection`
//! (names as the collection visits them: `wte.weight`, `h.0.attn.q.weight`, …).

use std::path::Path;

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::nn::{LoadFromSafetensors, SaveToSafetensors};
use dfdx::prelude::*;

use super::error::{load_message, safetensors_message, ModelError};

/// Writes every tensor `model` visits to `path`.
pub fn save<D: Device<f32>, M: TensorCollection<f32, D>>(
    model: &M,
    path: &Path,
) -> Result<(), ModelError> {
    model
        .save_safetensors(path)
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: safetensors_message(&e),
        })
}

/// Reads every tensor `model` visits from `path` (shapes must match). On error the model is
/// left unchanged.
pub fn load<D: Device<f32>, M: TensorCollection<f32, D> + Clone>(
    model: &mut M,
    path: &Path,
) -> Result<(), ModelError> {
    // Load into a copy: dfdx fills tensors one by one, and a mismatch half-way would leave a
    // model that is half old, half new.
    let mut loaded = model.clone();
    loaded
        .load_safetensors(path)
        .map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            message: load_message(&e),
        })?;
    *model = loaded;
    Ok(())
}
