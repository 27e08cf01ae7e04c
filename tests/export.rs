//! `model::export_hf`: the Hugging Face GPT-2 checkpoint, and `model::export_peft`: LoRA
//! adapters for PEFT. The Rust tests read the files back and check names, shapes, layouts and
//! configs; the `#[ignore]`d tests hand the exports to Python `transformers`, TRL and PEFT and
//! compare log-probs (see `scripts/check_hf_export.py`, `scripts/check_peft.py`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use dfdx::prelude::*;
use kto_lab::model::config::tiny::{self, TinyModel};
use kto_lab::model::export::EXPORT_FILES;
use kto_lab::model::{
    export_hf, export_peft, Gpt, LanguageModel, LoraConfig, LoraModel, Model, ModelError,
    TokenBatch,
};
use kto_lab::tokenizer::{Tokenizer, TokenizerError};
use kto_lab::world;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

fn tiny_tokenizer() -> Tokenizer {
    Tokenizer::train(&world::tokenizer_corpus(), tiny::VOCAB).expect("tokenizer trains")
}

/// Adds N(0, std²) noise to *every* parameter (via the model's own safetensors file), so zero
/// biases and identity LayerNorms from the init cannot hide a wrong mapping.
fn perturb<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
>(
    model: &mut Gpt<V, M, H, F, L, S, f32, Cpu>,
    std: f32,
    seed: u64,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.safetensors");
    model.save(&path).expect("save");
    let bytes = std::fs::read(&path).expect("read weights");
    let st = SafeTensors::deserialize(&bytes).expect("parse weights");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, std).expect("std > 0");
    // Only the f32 weights: dfdx also stores each LayerNorm's epsilon (an f64 scalar).
    // Sorted by name: `tensors()` comes from a HashMap, and the noise must not depend on its order.
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let noisy: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<u8> = if view.dtype() == StDtype::F32 {
                view.data()
                    .chunks_exact(4)
                    .flat_map(|b| {
                        let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        (x + noise.sample(&mut rng)).to_le_bytes()
                    })
                    .collect()
            } else {
                view.data().to_vec()
            };
            (name, view.dtype(), view.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, TensorView)> = noisy
        .iter()
        .map(|(n, t, s, d)| (n.clone(), TensorView::new(*t, s.clone(), d).expect("view")))
        .collect();
    let out = ::safetensors::tensor::serialize(views, &None).expect("serialize");
    std::fs::write(&path, out).expect("write weights");
    model.load(&path).expect("load perturbed weights");
}

fn perturbed_tiny(seed: u64) -> TinyModel {
    let mut model = TinyModel::init(&Cpu::default(), seed);
    perturb(&mut model, 0.1, seed);
    model
}

/// The exported weights: name → (shape, values).
fn read_weights(dir: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    read_safetensors(&dir.join("model.safetensors"))
}

/// A safetensors file's tensors: name → (shape, values).
fn read_safetensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).expect("read the safetensors file");
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), StDtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read json");
    serde_json::from_str(&text).expect("valid json")
}

/// Row-major `[rows, cols]` → column `c` of the given column range, as a `[rows, width]` block.
fn columns(data: &[f32], cols: usize, from: usize, width: usize) -> Vec<f32> {
    data.chunks_exact(cols)
        .flat_map(|row| row[from..from + width].to_vec())
        .collect()
}

fn transposed(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| data[r * cols + c]))
        .collect()
}

#[test]
fn export_writes_gpt2_tensor_names_and_shapes() {
    let (m, f, s, v) = (tiny::D_MODEL, tiny::D_FF, tiny::MAX_SEQ, tiny::VOCAB);
    let model = perturbed_tiny(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let written = export_hf(&model, &tiny_tokenizer(), dir.path()).expect("export");
    let expected_files: Vec<PathBuf> = EXPORT_FILES.iter().map(|f| dir.path().join(f)).collect();
    assert_eq!(written, expected_files);
    for path in &written {
        assert!(path.is_file(), "{}", path.display());
    }

    let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::from([
        ("transformer.wte.weight".into(), vec![v, m]),
        ("transformer.wpe.weight".into(), vec![s, m]),
        ("transformer.ln_f.weight".into(), vec![m]),
        ("transformer.ln_f.bias".into(), vec![m]),
    ]);
    for i in 0..tiny::N_LAYERS {
        for (name, shape) in [
            ("ln_1.weight", vec![m]),
            ("ln_1.bias", vec![m]),
            ("attn.c_attn.weight", vec![m, 3 * m]),
            ("attn.c_attn.bias", vec![3 * m]),
            ("attn.c_proj.weight", vec![m, m]),
            ("attn.c_proj.bias", vec![m]),
            ("ln_2.weight", vec![m]),
            ("ln_2.bias", vec![m]),
            ("mlp.c_fc.weight", vec![m, f]),
            ("mlp.c_fc.bias", vec![f]),
            ("mlp.c_proj.weight", vec![f, m]),
            ("mlp.c_proj.bias", vec![m]),
        ] {
            expected.insert(format!("transformer.h.{i}.{name}"), shape);
        }
    }
    let got: BTreeMap<String, Vec<usize>> = read_weights(dir.path())
        .into_iter()
        .map(|(name, (shape, _))| (name, shape))
        .collect();
    // Exactly these: no dfdx names, no `lm_head.weight` (tied, re-tied by transformers).
    assert_eq!(got, expected);
}

#[test]
fn export_transposes_linears_and_fuses_qkv_like_gpt2_conv1d() {
    let m = tiny::D_MODEL;
    let f = tiny::D_FF;
    let model = perturbed_tiny(2);
    let dir = tempfile::tempdir().expect("tempdir");
    export_hf(&model, &tiny_tokenizer(), dir.path()).expect("export");
    let w = read_weights(dir.path());
    let get = |name: &str| &w[name].1;

    assert_eq!(get("transformer.wte.weight"), &model.wte.weight.as_vec());
    assert_eq!(get("transformer.wpe.weight"), &model.wpe.weight.as_vec());
    assert_eq!(get("transformer.ln_f.weight"), &model.ln_f.gamma.as_vec());
    assert_eq!(get("transformer.ln_f.bias"), &model.ln_f.beta.as_vec());
    for (i, block) in model.h.modules.iter().enumerate() {
        let p = format!("transformer.h.{i}");
        let attn = &block.attn;
        // c_attn.weight [M, 3M]: columns 0..M are qᵀ, M..2M kᵀ, 2M..3M vᵀ (dfdx stores [out, in]).
        let c_attn = get(&format!("{p}.attn.c_attn.weight"));
        for (j, lin) in [&attn.q, &attn.k, &attn.v].into_iter().enumerate() {
            assert_eq!(
                columns(c_attn, 3 * m, j * m, m),
                transposed(&lin.weight.as_vec(), m, m),
                "{p} c_attn block {j}"
            );
        }
        let bias: Vec<f32> = [&attn.q, &attn.k, &attn.v]
            .iter()
            .flat_map(|l| l.bias.as_vec())
            .collect();
        assert_eq!(get(&format!("{p}.attn.c_attn.bias")), &bias);
        assert_eq!(
            get(&format!("{p}.attn.c_proj.weight")),
            &transposed(&attn.c_proj.weight.as_vec(), m, m)
        );
        assert_eq!(
            get(&format!("{p}.attn.c_proj.bias")),
            &attn.c_proj.bias.as_vec()
        );
        assert_eq!(
            get(&format!("{p}.mlp.c_fc.weight")),
            &transposed(&block.mlp.c_fc.weight.as_vec(), f, m)
        );
        assert_eq!(
            get(&format!("{p}.mlp.c_fc.bias")),
            &block.mlp.c_fc.bias.as_vec()
        );
        assert_eq!(
            get(&format!("{p}.mlp.c_proj.weight")),
            &transposed(&block.mlp.c_proj.weight.as_vec(), m, f)
        );
        assert_eq!(get(&format!("{p}.ln_1.weight")), &block.ln_1.gamma.as_vec());
        assert_eq!(get(&format!("{p}.ln_1.bias")), &block.ln_1.beta.as_vec());
        assert_eq!(get(&format!("{p}.ln_2.weight")), &block.ln_2.gamma.as_vec());
        assert_eq!(get(&format!("{p}.ln_2.bias")), &block.ln_2.beta.as_vec());
    }
    // transformers refuses safetensors files without `format: pt` metadata.
    let bytes = std::fs::read(dir.path().join("model.safetensors")).expect("read");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("header");
    let info: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    assert_eq!(info.get("format").map(String::as_str), Some("pt"));
}

#[test]
fn config_json_is_a_gpt2_config_of_the_model() {
    let tok = tiny_tokenizer();
    let dir = tempfile::tempdir().expect("tempdir");
    export_hf(&perturbed_tiny(3), &tok, dir.path()).expect("export");
    let config = read_json(&dir.path().join("config.json"));
    let eos = tok.eos_id();
    for (key, want) in [
        ("model_type", json!("gpt2")),
        ("architectures", json!(["GPT2LMHeadModel"])),
        ("vocab_size", json!(tiny::VOCAB)),
        ("n_positions", json!(tiny::MAX_SEQ)),
        ("n_embd", json!(tiny::D_MODEL)),
        ("n_layer", json!(tiny::N_LAYERS)),
        ("n_head", json!(tiny::N_HEADS)),
        ("n_inner", json!(tiny::D_FF)),
        ("activation_function", json!("gelu_new")),
        ("layer_norm_epsilon", json!(1e-5)),
        ("resid_pdrop", json!(0.0)),
        ("embd_pdrop", json!(0.0)),
        ("attn_pdrop", json!(0.0)),
        ("tie_word_embeddings", json!(true)),
        ("scale_attn_weights", json!(true)),
        ("scale_attn_by_inverse_layer_idx", json!(false)),
        ("bos_token_id", json!(eos)),
        ("eos_token_id", json!(eos)),
        ("pad_token_id", json!(eos)),
    ] {
        assert_eq!(config[key], want, "config.json `{key}`");
    }
    let tok_config = read_json(&dir.path().join("tokenizer_config.json"));
    for key in ["bos_token", "eos_token", "pad_token"] {
        assert_eq!(tok_config[key], json!("<|endoftext|>"), "{key}");
    }
    assert_eq!(tok_config["model_max_length"], json!(tiny::MAX_SEQ));
    // The prompt format travels with the model (rendered and checked by transformers in
    // `hf_chat_template_and_trl_take_the_model_as_trained`).
    assert_eq!(tok_config["chat_template"], json!(world::CHAT_TEMPLATE));
    let special = read_json(&dir.path().join("special_tokens_map.json"));
    assert_eq!(special["eos_token"], json!("<|endoftext|>"));
}

#[test]
fn exported_tokenizer_json_is_the_same_tokenizer() {
    let tok = tiny_tokenizer();
    let dir = tempfile::tempdir().expect("tempdir");
    export_hf(&perturbed_tiny(4), &tok, dir.path()).expect("export");
    let back = Tokenizer::load(dir.path().join("tokenizer.json")).expect("load");
    let text = world::lm_text("What is the capital of France?", Some("Paris."));
    assert_eq!(back.encode(&text).unwrap(), tok.encode(&text).unwrap());
    assert_eq!(back.eos_id(), tok.eos_id());
    assert_eq!(back.to_json().unwrap(), tok.to_json().unwrap());
}

#[test]
fn export_creates_missing_directories() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("runs").join("hf");
    export_hf(&perturbed_tiny(5), &tiny_tokenizer(), &dir).expect("export");
    assert!(dir.join("model.safetensors").is_file());
}

#[test]
fn export_refuses_to_overwrite_and_names_the_file() {
    let (model, tok) = (perturbed_tiny(6), tiny_tokenizer());
    let dir = tempfile::tempdir().expect("tempdir");
    export_hf(&model, &tok, dir.path()).expect("first export");
    let before = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    match export_hf(&model, &tok, dir.path()) {
        Err(ModelError::WouldOverwrite { path }) => {
            assert_eq!(path, dir.path().join("config.json"))
        }
        other => panic!("expected WouldOverwrite, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dir.path().join("model.safetensors")).unwrap(),
        before
    );

    // One stray file is enough, and nothing else gets written.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tokenizer.json"), "mine").unwrap();
    let err = export_hf(&model, &tok, dir.path()).expect_err("must refuse");
    assert!(
        err.to_string().contains("tokenizer.json"),
        "error names the file: {err}"
    );
    assert!(!dir.path().join("config.json").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tokenizer.json")).unwrap(),
        "mine"
    );
}

#[test]
fn export_refuses_a_tokenizer_bigger_than_the_embedding() {
    // 400 tokens do not fit the tiny model's 300 embeddings.
    let big = Tokenizer::train(&world::tokenizer_corpus(), 400).expect("tokenizer");
    assert!(big.vocab_size() > tiny::VOCAB);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = export_hf(&perturbed_tiny(7), &big, dir.path()).expect_err("must refuse");
    assert!(
        matches!(
            err,
            ModelError::Tokenizer(TokenizerError::BadVocabSize {
                max: tiny::VOCAB,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!dir.path().join("config.json").exists());
}

#[test]
fn export_refuses_layer_norms_with_different_epsilons() {
    let mut model = perturbed_tiny(8);
    model.h.modules[1].ln_2.epsilon = 1e-6;
    let dir = tempfile::tempdir().expect("tempdir");
    let err = export_hf(&model, &tiny_tokenizer(), dir.path()).expect_err("must refuse");
    assert!(matches!(err, ModelError::BadParameter { .. }), "{err:?}");
}

/// Prompt/completion pairs from the toy world, tokenized: the lab's real inputs.
fn world_pairs(tok: &Tokenizer) -> Vec<(Vec<u32>, Vec<u32>)> {
    world::prompts()
        .iter()
        .take(12)
        .enumerate()
        .map(|(i, prompt)| {
            let question = prompt.question.clone();
            let answer = if i % 2 == 0 {
                world::good_answer(prompt)
            } else {
                world::wrong_answers(prompt)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "I do not know.".into())
            };
            let p = tok
                .encode(&world::lm_text(&question, None))
                .expect("encode");
            let mut c = tok.encode(&format!(" {answer}\n")).expect("encode");
            c.push(tok.eos_id());
            (p, c)
        })
        .collect()
}

/// The real check: transformers' `GPT2LMHeadModel` loads the export and gives the same
/// per-sequence completion log-probs as our model, to 1e-4 (`scripts/check_hf_export.py`).
///
/// Needs Python with `torch` and `transformers` (`pip install torch transformers`); set
/// `KTO_LAB_PYTHON` to pick the interpreter (default `python3`), and `KTO_LAB_HF_CHECK_DIR` to
/// keep the export and `pairs.json` there instead of in a temporary directory. Run with
/// `cargo test --test export -- --ignored`.
#[test]
#[ignore = "needs Python with torch + transformers; run with --ignored"]
fn hf_transformers_scores_the_export_identically() {
    let dev = Cpu::default();
    let mut model = Model::init(&dev, 11);
    // Noise on every tensor (biases, LayerNorms included), enough that the log-probs are far
    // from uniform; much more makes them huge (−100s) and f32 rounding alone nears 1e-4.
    perturb(&mut model, 0.1, 11);
    let tok =
        Tokenizer::train(&world::tokenizer_corpus(), kto_lab::model::VOCAB).expect("tokenizer");
    // KTO_LAB_HF_CHECK_DIR (a new directory) keeps the export and pairs.json for a look.
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var_os("KTO_LAB_HF_CHECK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = root.join("hf");
    export_hf(&model, &tok, &dir).expect("export");

    let mut pairs = world_pairs(&tok);
    // One row longer than the context (prompt cut from the left), one with a 1-token prompt.
    let long_prompt: Vec<u32> = (0..80).map(|i| (i * 7 % 500) as u32).collect();
    pairs.push((long_prompt, vec![5, 6, 7]));
    pairs.push((vec![tok.eos_id()], vec![100, 200, 300, 400]));
    let batch = TokenBatch::new(&pairs, tok.eos_id(), kto_lab::model::MAX_SEQ).expect("batch");
    let logps = model
        .sequence_logprobs(&batch, NoneTape)
        .expect("logprobs")
        .as_vec();
    // Write the pairs *as scored* (after truncation), so Python scores the same tokens.
    let rows: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(r, (p, c))| {
            let trunc = batch.truncations.iter().find(|t| t.row == r);
            let (pd, cd) = trunc.map_or((0, 0), |t| (t.prompt_dropped, t.completion_dropped));
            json!({
                "prompt_ids": &p[pd..],
                "completion_ids": &c[..c.len() - cd],
                "logprob": logps[r],
            })
        })
        .collect();
    let texts: Vec<Value> = world::prompts()
        .iter()
        .take(5)
        .map(|p| {
            let text = world::lm_text(&p.question, Some(&world::good_answer(p)));
            json!({ "text": text, "ids": tok.encode(&text).expect("encode") })
        })
        .collect();
    let pairs_path = root.join("pairs.json");
    let doc = json!({ "eos_id": tok.eos_id(), "pairs": rows, "texts": texts });
    std::fs::write(&pairs_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();

    run_check("check_hf_export.py", &[dir.as_path(), &pairs_path]);
}

fn kto_lab(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kto-lab"))
        .args(args)
        .output()
        .expect("run kto-lab");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kto-lab {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The model out in the ecosystem *as it was trained*: lab 3's outputs as a user gets them
/// (`kto-lab train`, `kto-lab export`, `kto-lab feedback export`), then in Python
/// (`scripts/check_hf_chat.py`):
///
/// 1. the exported chat template renders every toy-world prompt to our prompt tokens;
/// 2. `generate` (greedy) gives our greedy answer to every prompt;
/// 3. TRL's `KTOTrainer` tokenizes every exported feedback row as our trainer does, and trains
///    two steps on it.
///
/// Needs Python with `torch`, `transformers` and `trl`; `KTO_LAB_PYTHON` and
/// `KTO_LAB_HF_CHECK_DIR` as for the test above.
#[test]
#[ignore = "needs Python with torch + transformers + trl; run with --ignored"]
fn hf_chat_template_and_trl_take_the_model_as_trained() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var_os("KTO_LAB_HF_CHECK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let lab3 = root.join("lab3");
    let hf = root.join("hf-kto");
    let train_file = root.join("kto_train.jsonl");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    // A short run: the checks need a trained model, not a good one.
    kto_lab(&[
        "train",
        "--out",
        &path(&lab3),
        "--sft-steps",
        "300",
        "--steps",
        "10",
        "--quiet",
    ]);
    kto_lab(&[
        "export",
        &path(&hf),
        "--model",
        &path(&lab3.join("kto.safetensors")),
        "--tokenizer",
        &path(&lab3.join("tokenizer.json")),
    ]);
    kto_lab(&[
        "feedback",
        "export",
        &path(&lab3.join("feedback.jsonl")),
        &path(&train_file),
    ]);

    // Our side: the prompt tokens and greedy answers on every prompt, and the tokens our
    // trainer makes of every exported row.
    let dev = Cpu::default();
    let model = Model::from_file(&dev, lab3.join("kto.safetensors")).expect("kto model");
    let tok = Tokenizer::load(lab3.join("tokenizer.json")).expect("tokenizer");
    let codec = kto_lab::pipeline::Codec { tokenizer: &tok };
    let questions: Vec<&str> = world::prompts().iter().map(|p| p.question()).collect();
    let prompt_ids: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| codec.prompt(q).expect("encode"))
        .collect();
    let max_new = 24;
    let greedy = model
        .generate(
            &prompt_ids,
            tok.eos_id(),
            &kto_lab::model::SampleConfig::greedy(max_new),
        )
        .expect("generate");
    let prompts: Vec<Value> = questions
        .iter()
        .zip(&prompt_ids)
        .zip(&greedy)
        .map(|((q, p), g)| {
            json!({"question": q, "prompt_ids": p, "answer_ids": g,
                   "answer": codec.answer(g).expect("decode")})
        })
        .collect();
    let text = |v: &Value| -> String {
        let content = v[0]["content"].as_str();
        content.expect("a conversational row").to_string()
    };
    let rows: Vec<Value> = std::fs::read_to_string(&train_file)
        .expect("read kto_train.jsonl")
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("a JSON row");
            let ex = codec
                .example(&text(&row["prompt"]), &text(&row["completion"]), true)
                .expect("encode");
            json!({"prompt_ids": ex.prompt, "completion_ids": ex.completion})
        })
        .collect();
    let doc = json!({"eos_id": tok.eos_id(), "max_new_tokens": max_new,
                     "prompts": prompts, "rows": rows});
    let expected = root.join("expected.json");
    std::fs::write(&expected, serde_json::to_string_pretty(&doc).unwrap()).unwrap();

    run_check("check_hf_chat.py", &[&hf, &expected, &train_file]);
}

/// Runs `scripts/SCRIPT` with `args` under `KTO_LAB_PYTHON` (default `python3`); fails the test
/// unless it exits 0 and prints an `OK` line. Returns its output.
fn run_check(script: &str, args: &[&Path]) -> String {
    let python = std::env::var("KTO_LAB_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        out.status
    );
    assert!(stdout.contains("OK"), "no OK summary line:\n{stdout}");
    stdout
}

#[test]
fn peft_export_writes_fused_qkv_adapters_and_refuses_to_overwrite() {
    let dev = Cpu::default();
    let base = Model::init(&dev, 3);
    let mut lora = LoraModel::<4, Cpu>::new(&base, LoraConfig::default()).expect("lora");
    let b: Vec<f32> = (0..lora.adapters.modules[0].k.b.shape().num_elements())
        .map(|i| i as f32)
        .collect();
    lora.adapters.modules[0].k.b = dev.tensor_from_vec(b.clone(), (Const, Const));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("adapter");
    export_peft(&lora, &dir).expect("export");
    let weights = read_safetensors(&dir.join("adapter_model.safetensors"));
    let m = kto_lab::model::D_MODEL;
    let (shape, a) = &weights["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"];
    assert_eq!(shape, &vec![12, m]);
    let q_a = lora.adapters.modules[0].q.a.as_vec();
    assert_eq!(&a[..4 * m], &q_a[..], "q's A comes first");
    let (shape, fused) = &weights["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"];
    assert_eq!(shape, &vec![3 * m, 12]);
    // k's B sits in rows M..2M, columns 4..8; zero elsewhere in those rows.
    for o in 0..m {
        let row = &fused[(m + o) * 12..(m + o + 1) * 12];
        assert_eq!(&row[4..8], &b[o * 4..o * 4 + 4]);
        assert!(row[..4].iter().chain(&row[8..]).all(|&x| x == 0.0));
    }
    assert_eq!(weights.len(), 4 * kto_lab::model::N_LAYERS);
    let config = read_json(&dir.join("adapter_config.json"));
    assert_eq!(config["r"], 4);
    assert_eq!(config["rank_pattern"]["attn.c_attn"], 12);
    assert_eq!(config["alpha_pattern"]["attn.c_attn"], 96.0);
    assert_eq!(
        config["target_modules"],
        json!(["attn.c_attn", "attn.c_proj"])
    );
    let again = export_peft(&lora, &dir).expect_err("second export");
    assert!(
        matches!(again, ModelError::WouldOverwrite { .. }),
        "{again}"
    );
    let off = export_peft(&lora.without_adapters(), &tmp.path().join("off"));
    assert!(off.is_err());
}

/// PEFT loads our adapters on our exported base model and scores like we do, adapters on and
/// off, and merged (`scripts/check_peft.py`). Needs Python with torch, transformers and peft.
#[test]
#[ignore = "needs Python with torch + transformers + peft; run with --ignored"]
fn peft_loads_the_adapters_as_trained() {
    let dev = Cpu::default();
    let mut base = Model::init(&dev, 12);
    perturb(&mut base, 0.1, 12);
    let mut lora = LoraModel::<4, Cpu>::new(
        &base,
        LoraConfig {
            alpha: 8.0,
            seed: 3,
        },
    )
    .expect("lora");
    // B starts at zero, which would make the check prove nothing: fill every B.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0f32, 0.05).unwrap();
    for block in &mut lora.adapters.modules {
        for ad in [&mut block.q, &mut block.k, &mut block.v, &mut block.o] {
            let n = ad.b.shape().num_elements();
            let b = (0..n).map(|_| normal.sample(&mut rng)).collect();
            ad.b = dev.tensor_from_vec(b, (Const, Const));
        }
    }
    let tok =
        Tokenizer::train(&world::tokenizer_corpus(), kto_lab::model::VOCAB).expect("tokenizer");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (hf, adapter) = (tmp.path().join("hf"), tmp.path().join("adapter"));
    export_hf(&base, &tok, &hf).expect("export base");
    export_peft(&lora, &adapter).expect("export adapters");
    let pairs = world_pairs(&tok);
    let batch = TokenBatch::new(&pairs, tok.eos_id(), kto_lab::model::MAX_SEQ).expect("batch");
    assert!(
        batch.truncations.is_empty(),
        "toy-world rows fit the context"
    );
    let on = lora
        .sequence_logprobs(&batch, NoneTape)
        .expect("on")
        .as_vec();
    let off = base
        .sequence_logprobs(&batch, NoneTape)
        .expect("off")
        .as_vec();
    let rows: Vec<Value> = pairs
        .iter()
        .enumerate()
        .map(|(r, (p, c))| {
            json!({ "prompt_ids": p, "completion_ids": c, "logprob": on[r], "base_logprob": off[r] })
        })
        .collect();
    let pairs_path = tmp.path().join("pairs.json");
    std::fs::write(&pairs_path, json!({ "pairs": rows }).to_string()).unwrap();
    run_check("check_peft.py", &[&hf, &adapter, &pairs_path]);
}
