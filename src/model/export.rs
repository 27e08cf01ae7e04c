//! Export to a Hugging Face GPT-2 checkpoint, so a student can take the model they trained here
//! and continue with `transformers` / TRL on real hardware.
//!
//! [`export_hf`] writes a directory that `GPT2LMHeadModel.from_pretrained(dir)` and
//! `AutoTokenizer.from_pretrained(dir)` load as-is:
//!
//! | file | what it holds |
//! |---|---|
//! | `config.json` | a `GPT2Config`: the sizes, `gelu_new`, the LayerNorm epsilon, no dropout |
//! | `model.safetensors` | the weights under transformers' GPT-2 names and layouts |
//! | `tokenizer.json` | our byte-level BPE tokenizer (already Hugging Face's format) |
//! | `tokenizer_config.json` | `<|endoftext|>` as bos / eos / unk / pad, no prefix space, and the prompt format as a `chat_template` |
//! | `special_tokens_map.json` | the same special tokens, for older `transformers` |
//!
//! [`export_peft`] writes a LoRA model's adapters in PEFT's format (`adapter_config.json`,
//! `adapter_model.safetensors`) for `peft.PeftModel.from_pretrained` on the exported base model.
//!
//! ## How our weights map onto GPT-2's
//!
//! Our architecture *is* GPT-2's (pre-LayerNorm blocks, learned positions, tied head, tanh
//! GELU, attention scaled by 1/√head_dim); only the storage differs:
//!
//! - dfdx's `Linear<I, O>` stores `weight` as `[O, I]` (like `torch.nn.Linear`), while GPT-2
//!   uses `Conv1D`, whose weight is `[I, O]`: every projection is written **transposed**.
//! - GPT-2 fuses q, k and v into one `c_attn` projection `[M, 3M]`: columns `0..M` are q,
//!   `M..2M` are k, `2M..3M` are v (the bias likewise). Both implementations split a
//!   projection into heads the same way — head h is columns `h·hd..(h+1)·hd` — so no
//!   per-head reordering is needed.
//! - LayerNorm γ/β are GPT-2's `weight`/`bias`.
//! - The LM head is tied to `wte`; `lm_head.weight` is not written (transformers re-ties it on
//!   load, exactly as for OpenAI's own GPT-2 checkpoint).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ::safetensors::tensor::{Dtype as StDtype, TensorView};
use dfdx::nn::modules::{LayerNorm1D, Linear};
use dfdx::prelude::*;
use serde_json::{json, Value};

use super::block::Block;
use super::config::Sizes;
use super::error::ModelError;
use super::gpt::Gpt;
use crate::tokenizer::{Tokenizer, TokenizerError, EOS_TOKEN, MIN_VOCAB};
use crate::world;

/// `config.json`: the model's architecture for `transformers`.
pub const CONFIG_FILE: &str = "config.json";
/// `model.safetensors`: the weights, GPT-2 names and layouts.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// `tokenizer.json`: the tokenizer, Hugging Face `tokenizers` format.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// `tokenizer_config.json`: how `AutoTokenizer` should wrap `tokenizer.json`.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// `special_tokens_map.json`: the special tokens, read by older `transformers` versions.
pub const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";

/// Every file [`export_hf`] writes, in the order it writes them.
pub const EXPORT_FILES: [&str; 5] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    TOKENIZER_FILE,
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_FILE,
];

/// The activation name transformers gives our GELU. dfdx's `fast_gelu` is the tanh
/// approximation `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, which is GPT-2's original GELU,
/// called `"gelu_new"` in transformers (plain `"gelu"` there is the exact erf form).
pub const HF_ACTIVATION: &str = "gelu_new";

/// One tensor on the host, ready for safetensors: f32 values, row-major, with its shape.
struct HostTensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl HostTensor {
    fn new(name: String, shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { name, shape, data }
    }
}

/// A row-major `[rows, cols]` matrix transposed to `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// A dfdx `Linear<I, O>` (weight `[O, I]`) as GPT-2 `Conv1D` tensors: weight `[I, O]`, bias `[O]`.
fn conv1d<const I: usize, const O: usize, D: Device<f32>>(
    prefix: &str,
    linear: &Linear<I, O, f32, D>,
) -> [HostTensor; 2] {
    [
        HostTensor::new(
            format!("{prefix}.weight"),
            vec![I, O],
            transpose(&linear.weight.as_vec(), O, I),
        ),
        HostTensor::new(format!("{prefix}.bias"), vec![O], linear.bias.as_vec()),
    ]
}

/// q, k, v `Linear<M, M>`s fused into GPT-2's `c_attn`: weight `[M, 3M]` (row i = input
/// feature i: its q, then k, then v output columns), bias `[3M]`.
fn c_attn<const M: usize, D: Device<f32>>(
    prefix: &str,
    qkv: [&Linear<M, M, f32, D>; 3],
) -> [HostTensor; 2] {
    let mut weight = vec![0.0; M * 3 * M];
    let mut bias = Vec::with_capacity(3 * M);
    for (j, linear) in qkv.iter().enumerate() {
        // dfdx stores [out, in]: w[o·M + i] is the weight from input i to output o.
        let w = linear.weight.as_vec();
        for i in 0..M {
            for o in 0..M {
                weight[i * 3 * M + j * M + o] = w[o * M + i];
            }
        }
        bias.extend(linear.bias.as_vec());
    }
    [
        HostTensor::new(format!("{prefix}.weight"), vec![M, 3 * M], weight),
        HostTensor::new(format!("{prefix}.bias"), vec![3 * M], bias),
    ]
}

/// A LayerNorm as GPT-2's `weight` (γ) and `bias` (β).
fn layer_norm<const M: usize, D: Device<f32>>(
    prefix: &str,
    ln: &LayerNorm1D<M, f32, D>,
) -> [HostTensor; 2] {
    [
        HostTensor::new(format!("{prefix}.weight"), vec![M], ln.gamma.as_vec()),
        HostTensor::new(format!("{prefix}.bias"), vec![M], ln.beta.as_vec()),
    ]
}

/// One block's weights under transformers' names (`{prefix}.ln_1.weight`, …).
fn block_tensors<const M: usize, const H: usize, const F: usize, D: Device<f32>>(
    prefix: &str,
    block: &Block<M, H, F, f32, D>,
) -> Vec<HostTensor> {
    let attn = &block.attn;
    let mut out = Vec::new();
    out.extend(layer_norm(&format!("{prefix}.ln_1"), &block.ln_1));
    out.extend(c_attn(
        &format!("{prefix}.attn.c_attn"),
        [&attn.q, &attn.k, &attn.v],
    ));
    out.extend(conv1d(&format!("{prefix}.attn.c_proj"), &attn.c_proj));
    out.extend(layer_norm(&format!("{prefix}.ln_2"), &block.ln_2));
    out.extend(conv1d(&format!("{prefix}.mlp.c_fc"), &block.mlp.c_fc));
    out.extend(conv1d(&format!("{prefix}.mlp.c_proj"), &block.mlp.c_proj));
    out
}

/// The one LayerNorm epsilon of the model (`ln_f`'s, which `others` must all equal). GPT-2's
/// config has a single `layer_norm_epsilon`, so a model whose LayerNorms disagree cannot be
/// exported faithfully: that is an error, not a silent pick.
fn layer_norm_epsilon(eps: f64, others: impl IntoIterator<Item = f64>) -> Result<f64, ModelError> {
    match others.into_iter().find(|&other| other != eps) {
        Some(other) => Err(ModelError::BadParameter {
            name: "layer_norm epsilon",
            value: format!("{other} (ln_f has {eps})"),
            expected: "the same in every LayerNorm (GPT-2's config has one layer_norm_epsilon)",
        }),
        None => Ok(eps),
    }
}

/// The `config.json` of a `GPT2LMHeadModel` with our sizes. Dropout is 0 everywhere: our
/// model has none, and a student continuing training can turn it on in the config.
fn hf_config(sizes: Sizes, eos_id: u32, layer_norm_epsilon: f64) -> Value {
    json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": sizes.vocab,
        "n_positions": sizes.context,
        "n_embd": sizes.width,
        "n_layer": sizes.layers,
        "n_head": sizes.heads,
        "n_inner": sizes.mlp,
        "activation_function": HF_ACTIVATION,
        "layer_norm_epsilon": layer_norm_epsilon,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "summary_first_dropout": 0.0,
        // GPT-2's init std (`init::INIT_STD`, written as f64: the f32 would print 0.01999…).
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "tie_word_embeddings": true,
        "use_cache": true,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
        "torch_dtype": "float32",
    })
}

/// `tokenizer_config.json`: a GPT-2 fast tokenizer around `tokenizer.json`, with
/// `<|endoftext|>` as every special token (GPT-2's convention, and our padding token), no
/// prefix space (our tokenizer adds none), our context as the maximum length, and the prompt
/// format the model was trained on as its chat template ([`world::CHAT_TEMPLATE`]), so that
/// `apply_chat_template` and TRL's trainers on conversational rows format prompts as we did.
fn tokenizer_config(max_len: usize) -> Value {
    json!({
        "tokenizer_class": "GPT2TokenizerFast",
        "bos_token": EOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "add_prefix_space": false,
        "add_bos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": max_len,
        "chat_template": world::CHAT_TEMPLATE,
    })
}

fn special_tokens_map() -> Value {
    json!({
        "bos_token": EOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
    })
}

/// The weights as `.safetensors` bytes (f32, metadata `format: pt`, which transformers checks).
fn safetensors_bytes(tensors: &[HostTensor], path: &Path) -> Result<Vec<u8>, ModelError> {
    let st_err = |e: ::safetensors::tensor::SafeTensorError| ModelError::Safetensors {
        path: path.to_path_buf(),
        message: super::error::safetensors_message(&e),
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            Ok((
                t.name.as_str(),
                TensorView::new(StDtype::F32, t.shape.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, ::safetensors::tensor::SafeTensorError>>()
        .map_err(st_err)?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    ::safetensors::tensor::serialize(views, &metadata).map_err(st_err)
}

fn json_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (all keys are strings); fall back to compact just in case.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text.into_bytes()
}

/// `dir/name` for each name, or [`ModelError::WouldOverwrite`] naming the first that exists:
/// an export refuses before writing anything, so a refused export leaves `dir` as it was.
fn new_paths(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, ModelError> {
    let paths: Vec<PathBuf> = names.iter().map(|f| dir.join(f)).collect();
    match paths.iter().find(|p| p.exists()) {
        Some(existing) => Err(ModelError::WouldOverwrite {
            path: existing.clone(),
        }),
        None => Ok(paths),
    }
}

/// Creates `dir` and writes each of `contents` to its path (built in memory first, so that a
/// failure while building them also left `dir` untouched); returns the paths.
fn write_all_new(
    dir: &Path,
    paths: Vec<PathBuf>,
    contents: &[Vec<u8>],
) -> Result<Vec<PathBuf>, ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (path, bytes) in paths.iter().zip(contents) {
        write_new(path, bytes)?;
    }
    Ok(paths)
}

/// Writes `bytes` to a *new* file: an existing one is never replaced, even if it appeared
/// after the up-front check (`create_new` makes the check and the creation one step).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let io_err = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                ModelError::WouldOverwrite {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(source)
            }
        })?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Writes `model` and `tokenizer` to `dir` as a Hugging Face GPT-2 checkpoint
/// ([`EXPORT_FILES`]) and returns the paths written.
///
/// Why: lab 3 trains a toy model on a laptop; this lets a student load the *same* model with
/// `transformers.GPT2LMHeadModel.from_pretrained(dir)` and carry on with TRL (KTO, DPO…) on
/// larger hardware. transformers scores it like we do (`scripts/check_hf_export.py` checks
/// per-sequence log-probs to 1e-4).
///
/// `dir` is created if missing. Nothing is ever overwritten: if any of the files already
/// exists in `dir`, this fails with [`ModelError::WouldOverwrite`] naming it, before writing
/// anything. Other errors: a tokenizer with more tokens than the model has embeddings
/// ([`ModelError::Tokenizer`] with [`TokenizerError::BadVocabSize`]), LayerNorms with different epsilons
/// ([`ModelError::BadParameter`]), and I/O failures ([`ModelError::Io`], naming the path).
pub fn export_hf<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
    D: Device<f32>,
>(
    model: &Gpt<V, M, H, F, L, S, f32, D>,
    tokenizer: &Tokenizer,
    dir: &Path,
) -> Result<Vec<PathBuf>, ModelError> {
    if tokenizer.vocab_size() > V {
        return Err(TokenizerError::BadVocabSize {
            got: tokenizer.vocab_size(),
            min: MIN_VOCAB,
            max: V,
        }
        .into());
    }
    let eps = layer_norm_epsilon(
        model.ln_f.epsilon,
        (model.h.modules.iter()).flat_map(|b| [b.ln_1.epsilon, b.ln_2.epsilon]),
    )?;
    let paths = new_paths(dir, &EXPORT_FILES)?;

    // Build every file in memory first: a failure here also leaves `dir` untouched.
    // All weights under transformers' `GPT2LMHeadModel` names (`transformer.` prefix).
    let mut tensors = vec![
        HostTensor::new(
            "transformer.wte.weight".into(),
            vec![V, M],
            model.wte.weight.as_vec(),
        ),
        HostTensor::new(
            "transformer.wpe.weight".into(),
            vec![S, M],
            model.wpe.weight.as_vec(),
        ),
    ];
    for (i, block) in model.h.modules.iter().enumerate() {
        tensors.extend(block_tensors(&format!("transformer.h.{i}"), block));
    }
    tensors.extend(layer_norm("transformer.ln_f", &model.ln_f));
    let contents: [Vec<u8>; 5] = [
        json_bytes(&hf_config(
            Gpt::<V, M, H, F, L, S, f32, D>::SIZES,
            tokenizer.eos_id(),
            eps,
        )),
        safetensors_bytes(&tensors, &paths[1])?,
        tokenizer.to_json()?.into_bytes(),
        json_bytes(&tokenizer_config(S)),
        json_bytes(&special_tokens_map()),
    ];

    write_all_new(dir, paths, &contents)
}

/// `adapter_config.json`: the LoRA settings for PEFT.
pub const PEFT_CONFIG_FILE: &str = "adapter_config.json";
/// `adapter_model.safetensors`: the adapters under PEFT's names.
pub const PEFT_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// One block's adapters as PEFT's LoRA on GPT-2's modules: q, k and v fused into one adapter
/// on `attn.c_attn` of rank 3R — A stacks the three A's (`[3R, M]`), B is block-diagonal
/// (`[3M, 3R]`: q's output rows read q's R columns, and so on), which computes exactly the three
/// separate corrections — and o as an adapter on `attn.c_proj` (`[R, M]`, `[M, R]`).
fn peft_block<const M: usize, const R: usize, D: Device<f32>>(
    prefix: &str,
    lora: &super::lora::BlockLora<M, R, f32, D>,
) -> [HostTensor; 4] {
    let qkv = [&lora.q, &lora.k, &lora.v];
    let a: Vec<f32> = qkv.iter().flat_map(|ad| ad.a.as_vec()).collect();
    let mut b = vec![0.0f32; 3 * M * 3 * R];
    for (j, ad) in qkv.iter().enumerate() {
        let bj = ad.b.as_vec(); // [M, R]
        for o in 0..M {
            for r in 0..R {
                b[(j * M + o) * 3 * R + j * R + r] = bj[o * R + r];
            }
        }
    }
    let name = |module: &str, part: &str| format!("{prefix}.attn.{module}.{part}.weight");
    [
        HostTensor::new(name("c_attn", "lora_A"), vec![3 * R, M], a),
        HostTensor::new(name("c_attn", "lora_B"), vec![3 * M, 3 * R], b),
        HostTensor::new(name("c_proj", "lora_A"), vec![R, M], lora.o.a.as_vec()),
        HostTensor::new(name("c_proj", "lora_B"), vec![M, R], lora.o.b.as_vec()),
    ]
}

/// PEFT's `adapter_config.json` for rank `R` and `alpha`: LoRA on `attn.c_attn` (rank 3R, α
/// 3·alpha, so its α/r is the same) and `attn.c_proj`, no dropout, GPT-2's Conv1D layout.
fn peft_config(rank: usize, alpha: f32) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": null,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": ["attn.c_attn", "attn.c_proj"],
        "rank_pattern": { "attn.c_attn": 3 * rank },
        "alpha_pattern": { "attn.c_attn": 3.0 * alpha },
        "fan_in_fan_out": true,
        "bias": "none",
        "use_rslora": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
    })
}

/// Writes `model`'s adapters to `dir` in PEFT's format ([`PEFT_CONFIG_FILE`],
/// [`PEFT_WEIGHTS_FILE`]) and returns the paths written. With the base model exported by
/// [`export_hf`], `peft.PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base), dir)`
/// is the adapted model as trained (`scripts/check_peft.py` checks its log-probs to 1e-4).
///
/// Switched-off adapters ([`super::LoraGpt::without_adapters`]) have nothing to export: an
/// error. Like [`export_hf`], nothing is overwritten and nothing is written on an error.
pub fn export_peft<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
    const R: usize,
    D: Device<f32>,
>(
    model: &super::LoraGpt<V, M, H, F, L, S, R, D>,
    dir: &Path,
) -> Result<Vec<PathBuf>, ModelError> {
    if !model.enabled {
        return Err(ModelError::BadParameter {
            name: "adapters",
            value: "switched off".into(),
            expected: "switched on to be exported",
        });
    }
    let paths = new_paths(dir, &[PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE])?;
    let tensors: Vec<HostTensor> = model
        .adapters
        .modules
        .iter()
        .enumerate()
        .flat_map(|(i, block)| peft_block(&format!("base_model.model.transformer.h.{i}"), block))
        .collect();
    let contents = [
        json_bytes(&peft_config(R, model.config.alpha)),
        safetensors_bytes(&tensors, &paths[1])?,
    ];
    write_all_new(dir, paths, &contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] → [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
