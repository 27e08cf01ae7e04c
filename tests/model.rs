//! Lab 3's model: causality, exact masking, gradients vs finite differences, sampling,
//! tokenizer and weight files. Most tests use the tiny config so the suite stays fast.

use dfdx::prelude::*;
use kto_lab::model::config::tiny::{self, TinyModel};
use kto_lab::model::{tape_from, LanguageModel, Model, ModelError, SampleConfig, TokenBatch};
use kto_lab::tokenizer::{Tokenizer, TokenizerError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PAD: u32 = 0;

fn tiny_model(seed: u64) -> (Cpu, TinyModel) {
    let dev = Cpu::default();
    let model = TinyModel::init(&dev, seed);
    (dev, model)
}

fn random_ids(rng: &mut ChaCha8Rng, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| rng.gen_range(1..tiny::VOCAB as u32))
        .collect()
}

/// Three prompt/completion pairs of different lengths.
fn pairs() -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    vec![
        (random_ids(&mut rng, 4), random_ids(&mut rng, 3)),
        (random_ids(&mut rng, 2), random_ids(&mut rng, 6)),
        (random_ids(&mut rng, 7), random_ids(&mut rng, 1)),
    ]
}

fn logits_of(model: &TinyModel, dev: &Cpu, rows: &[Vec<u32>]) -> Vec<f32> {
    let s = rows[0].len();
    let ids: Vec<usize> = rows.iter().flatten().map(|&t| t as usize).collect();
    let ids = dev.tensor_from_vec(ids, (rows.len(), s));
    model.try_forward(ids).expect("valid ids").as_vec()
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.iter().map(|&x| x as f64 - lse).collect()
}

#[test]
fn default_config_has_the_documented_parameter_count() {
    let dev = Cpu::default();
    let model = Model::init(&dev, 0);
    assert_eq!(
        model.num_trainable_params(),
        kto_lab::model::config::DEFAULT_PARAMS
    );
    assert_eq!(model.num_trainable_params(), 470_528);
}

#[test]
fn init_is_seeded() {
    let dev = Cpu::default();
    let (a, b, c) = (
        TinyModel::init(&dev, 1),
        TinyModel::init(&dev, 1),
        TinyModel::init(&dev, 2),
    );
    assert_eq!(a.wte.weight.as_vec(), b.wte.weight.as_vec());
    assert_eq!(
        a.h.modules[1].mlp.c_proj.weight.as_vec(),
        b.h.modules[1].mlp.c_proj.weight.as_vec()
    );
    assert_ne!(a.wte.weight.as_vec(), c.wte.weight.as_vec());
}

#[test]
fn changing_a_later_token_never_changes_earlier_logits() {
    let (dev, model) = tiny_model(3);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let rows = vec![random_ids(&mut rng, 12), random_ids(&mut rng, 12)];
    let before = logits_of(&model, &dev, &rows);
    let v = tiny::VOCAB;
    for t in [0, 5, 11] {
        let mut changed = rows.clone();
        for row in &mut changed {
            row[t] = (row[t] % (v as u32 - 1)) + 1;
        }
        let after = logits_of(&model, &dev, &changed);
        for r in 0..2 {
            for pos in 0..12 {
                let range = (r * 12 + pos) * v..(r * 12 + pos + 1) * v;
                let same = before[range.clone()] == after[range];
                assert_eq!(same, pos < t, "row {r}, token {t} changed, position {pos}");
            }
        }
    }
}

#[test]
fn taped_and_untaped_forward_agree() {
    let (dev, model) = tiny_model(4);
    let ids = dev.tensor_from_vec(vec![1usize, 2, 3, 4, 5, 6], (2, 3));
    let plain = model.try_forward(ids.clone()).unwrap().as_vec();
    let taped = model.try_forward(ids.leaky_trace()).unwrap().as_vec();
    assert_eq!(plain, taped);
}

#[test]
fn forward_rejects_bad_ids_and_long_sequences() {
    let (dev, model) = tiny_model(0);
    let ids = dev.tensor_from_vec(vec![1usize, tiny::VOCAB], (1, 2));
    assert!(matches!(
        model.try_forward(ids),
        Err(ModelError::TokenOutOfRange {
            id: 300,
            vocab: 300
        })
    ));
    let n = tiny::MAX_SEQ + 1;
    let ids = dev.tensor_from_vec(vec![1usize; n], (1, n));
    assert!(matches!(
        model.try_forward(ids),
        Err(ModelError::SequenceTooLong { len: 17, max: 16 })
    ));
}

#[test]
fn sequence_logprob_is_the_sum_of_log_softmax_at_completion_positions() {
    let (dev, model) = tiny_model(5);
    let pairs = pairs();
    let batch = TokenBatch::new(&pairs, PAD, tiny::MAX_SEQ).unwrap();
    let got = model.sequence_logprobs(&batch, NoneTape).unwrap().as_vec();
    for (r, (prompt, completion)) in pairs.iter().enumerate() {
        // Score the row alone, by hand, from the raw logits.
        let seq: Vec<u32> = prompt.iter().chain(completion).copied().collect();
        let logits = logits_of(&model, &dev, &[seq[..seq.len() - 1].to_vec()]);
        let v = tiny::VOCAB;
        let want: f64 = (prompt.len() - 1..seq.len() - 1)
            .map(|t| log_softmax(&logits[t * v..(t + 1) * v])[seq[t + 1] as usize])
            .sum();
        assert!(
            (got[r] as f64 - want).abs() < 1e-4,
            "row {r}: {} vs {want}",
            got[r]
        );
    }
}

#[test]
fn padding_and_other_rows_do_not_change_a_rows_logprob() {
    let (_, model) = tiny_model(6);
    let pairs = pairs();
    let batch = TokenBatch::new(&pairs, PAD, tiny::MAX_SEQ).unwrap();
    let together = model.sequence_logprobs(&batch, NoneTape).unwrap().as_vec();

    // Garbage in the padding: same result.
    let mut garbage = batch.clone();
    for (i, m) in batch.mask.iter().enumerate() {
        let r = i / batch.seq_len;
        let t = i % batch.seq_len;
        if *m == 0.0 && t >= batch.prompt_lens[r] + batch.completion_lens[r] - 1 {
            garbage.inputs[i] = 1 + (i % 200);
            garbage.targets[i] = 2 + (i % 200);
        }
    }
    assert_ne!(garbage.inputs, batch.inputs);
    let padded = model
        .sequence_logprobs(&garbage, NoneTape)
        .unwrap()
        .as_vec();
    for (a, b) in together.iter().zip(&padded) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    // Each row alone (no padding at all) gives the same value as in the batch.
    for (r, pair) in pairs.iter().enumerate() {
        let alone = TokenBatch::new(std::slice::from_ref(pair), PAD, tiny::MAX_SEQ).unwrap();
        let alone = model.sequence_logprobs(&alone, NoneTape).unwrap().as_vec()[0];
        assert!(
            (alone - together[r]).abs() < 1e-5,
            "row {r}: {alone} vs {}",
            together[r]
        );
    }
}

#[test]
fn token_nll_is_minus_the_mean_completion_logprob() {
    let (_, model) = tiny_model(8);
    let batch = TokenBatch::new(&pairs(), PAD, tiny::MAX_SEQ).unwrap();
    let sum: f32 = model
        .sequence_logprobs(&batch, NoneTape)
        .unwrap()
        .as_vec()
        .iter()
        .sum();
    let nll = model.token_nll(&batch, NoneTape).unwrap().array();
    let want = -sum / batch.completion_tokens() as f32;
    assert!((nll - want).abs() < 1e-5, "{nll} vs {want}");
    // At init the model is close to uniform: NLL ≈ ln(VOCAB).
    assert!((nll - (tiny::VOCAB as f32).ln()).abs() < 0.5, "{nll}");
}

/// Sum of the batch's completion log-probs, without gradient.
fn objective(model: &TinyModel, batch: &TokenBatch) -> f64 {
    let lp = model.sequence_logprobs(batch, NoneTape).unwrap().as_vec();
    lp.iter().map(|&x| x as f64).sum()
}

/// Compares the backprop gradient of `objective` with a central difference along a random
/// unit direction in the space of one parameter tensor.
fn directional_check<S: Shape>(
    name: &str,
    model: &TinyModel,
    batch: &TokenBatch,
    grads: &Gradients<f32, Cpu>,
    param: impl Fn(&mut TinyModel) -> &mut Tensor<S, f32, Cpu>,
) {
    let mut m = model.clone();
    let w = param(&mut m).as_vec();
    let g = grads.get(param(&mut m)).as_vec();
    // Direction: half along the gradient (so the derivative is large enough for f32 finite
    // differences to resolve), half random (so a gradient pointing the wrong way is caught).
    let unit = |v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(name.len() as u64);
    let r = unit((0..w.len()).map(|_| rng.gen_range(-1.0f32..1.0)).collect());
    let d = unit(unit(g.clone()).iter().zip(&r).map(|(a, b)| a + b).collect());
    let analytic: f64 = g
        .iter()
        .zip(&d)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();

    let mut at = |step: f32| {
        let shifted: Vec<f32> = w.iter().zip(&d).map(|(w, d)| w + step * d).collect();
        param(&mut m).copy_from(&shifted);
        objective(&m, batch)
    };
    // Central differences at h and h/2, combined (Richardson) to cancel the O(h²) error: a
    // large-ish h keeps f32 rounding noise small relative to the difference.
    let h = 4e-2f32;
    let mut central = |h: f32| (at(h) - at(-h)) / (2.0 * h as f64);
    let (coarse, fine) = (central(h), central(h / 2.0));
    let numeric = (4.0 * fine - coarse) / 3.0;
    let err = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(1e-2);
    eprintln!("{name}: backprop {analytic}, finite difference {numeric}");
    assert!(
        err < 1e-2,
        "{name}: backprop {analytic}, finite difference {numeric}"
    );
}

#[test]
fn gradients_match_finite_differences() {
    let (dev, mut model) = tiny_model(9);
    // At init attention is almost uniform and q/k gradients are ~1e-4, below what an f32 finite
    // difference resolves. Sharpen the attention (as training would) so every check is
    // well-conditioned.
    for block in &mut model.h.modules {
        for w in [&mut block.attn.q.weight, &mut block.attn.k.weight] {
            let sharp: Vec<f32> = w.as_vec().iter().map(|x| x * 20.0).collect();
            w.copy_from(&sharp);
        }
    }
    let batch = TokenBatch::new(&pairs(), PAD, tiny::MAX_SEQ).unwrap();
    let lp = model
        .sequence_logprobs(&batch, tape_from(&dev, model.alloc_grads()))
        .unwrap();
    let grads = lp.sum().backward();
    directional_check(
        "wte (embedding and tied head)",
        &model,
        &batch,
        &grads,
        |m| &mut m.wte.weight,
    );
    directional_check("wpe", &model, &batch, &grads, |m| &mut m.wpe.weight);
    directional_check("h.0.attn.q", &model, &batch, &grads, |m| {
        &mut m.h.modules[0].attn.q.weight
    });
    directional_check("h.0.attn.k", &model, &batch, &grads, |m| {
        &mut m.h.modules[0].attn.k.weight
    });
    directional_check("h.1.attn.v", &model, &batch, &grads, |m| {
        &mut m.h.modules[1].attn.v.weight
    });
    directional_check("h.1.mlp.c_fc", &model, &batch, &grads, |m| {
        &mut m.h.modules[1].mlp.c_fc.weight
    });
    directional_check("h.0.ln_1.gamma", &model, &batch, &grads, |m| {
        &mut m.h.modules[0].ln_1.gamma
    });
    directional_check("ln_f.beta", &model, &batch, &grads, |m| &mut m.ln_f.beta);
}

#[test]
fn greedy_generation_follows_the_argmax_and_is_reproducible() {
    let (dev, model) = tiny_model(10);
    let prompt = vec![5u32, 17, 42];
    let eos = PAD;
    let cfg = SampleConfig::greedy(6);
    let out = model.generate_one(&prompt, eos, &cfg).unwrap();
    // Replay by hand: each token is the argmax at the last position.
    let mut seq = prompt.clone();
    for &tok in &out {
        let logits = logits_of(&model, &dev, &[seq.clone()]);
        let v = tiny::VOCAB;
        let last = &logits[(seq.len() - 1) * v..seq.len() * v];
        assert_eq!(tok as usize, kto_lab::model::sample::argmax(last));
        seq.push(tok);
    }
    assert!(out.len() <= 6);
    // top-k = 1 at any temperature is greedy.
    let top1 = SampleConfig {
        temperature: 1.3,
        top_k: Some(1),
        ..cfg
    };
    assert_eq!(model.generate_one(&prompt, eos, &top1).unwrap(), out);
}

#[test]
fn sampling_is_seeded_and_batching_does_not_change_a_prompts_sample() {
    let (_, model) = tiny_model(12);
    let prompts = vec![
        vec![3u32, 4],
        vec![9u32, 8, 7, 6, 5, 4, 3, 2, 1, 10, 11, 12, 13, 14],
    ];
    let cfg = SampleConfig {
        temperature: 1.0,
        top_k: Some(50),
        max_new_tokens: 8,
        seed: 42,
    };
    let a = model.generate(&prompts, PAD, &cfg).unwrap();
    let b = model.generate(&prompts, PAD, &cfg).unwrap();
    assert_eq!(a, b);
    // Row 0 alone gets stream 0, as in the batch; it outgrows nothing and is unaffected by row 1.
    assert_eq!(model.generate_one(&prompts[0], PAD, &cfg).unwrap(), a[0]);
    // The second prompt outgrows the 16-token context: generation slides the window, no error.
    assert!(a[1].len() <= 8);
    let bad = SampleConfig {
        temperature: -1.0,
        ..cfg
    };
    assert!(matches!(
        model.generate(&prompts, PAD, &bad),
        Err(ModelError::BadParameter {
            name: "temperature",
            ..
        })
    ));
}

#[test]
fn safetensors_round_trip_gives_the_same_logits() {
    let (dev, model) = tiny_model(13);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    model.save(&path).unwrap();
    let loaded = TinyModel::from_file(&dev, &path).unwrap();
    let rows = vec![vec![1u32, 2, 3, 4, 5]];
    assert_eq!(
        logits_of(&model, &dev, &rows),
        logits_of(&loaded, &dev, &rows)
    );

    // The tiny weights do not fit the default model: an error naming the file, model untouched.
    let mut big = Model::init(&dev, 0);
    let before = big.wte.weight.as_vec();
    let err = big.load(&path).unwrap_err();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // A sentence, not Rust's Debug output.
    assert!(
        err.to_string()
            .contains("saved from a model of another size?"),
        "{err}"
    );
    assert_eq!(big.wte.weight.as_vec(), before);

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a model at all").unwrap();
    let err = TinyModel::from_file(&dev, &garbage).unwrap_err();
    assert!(!err.to_string().contains("Error("), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: safetensors: ", garbage.display())),
        "{err}"
    );

    let missing = dir.path().join("nope.safetensors");
    let err = TinyModel::from_file(&dev, &missing).unwrap_err();
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}

fn corpus() -> Vec<String> {
    [
        "The cat sat on the mat.",
        "The dog sat on the log.",
        "A helpful answer is short and kind.",
        "Thumbs up for the helpful answer, thumbs down for the rude one.",
        "the the the cat cat dog",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn tokenizer_round_trips_text_and_has_an_eos() {
    let tok = Tokenizer::train(&corpus(), 300).unwrap();
    assert!(tok.vocab_size() <= 300);
    for text in [
        "The cat sat on the mat.",
        "unseen wörds ✓ and\nnewlines",
        "",
    ] {
        let ids = tok.encode(text).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    // Merges happened: a frequent word is fewer tokens than bytes.
    assert!(tok.encode("The cat sat").unwrap().len() < "The cat sat".len());
    let eos = tok.eos_id();
    assert_eq!(tok.tokens(&[eos]), vec!["<|endoftext|>".to_string()]);
    let mut ids = tok.encode("hi").unwrap();
    ids.extend([eos, eos]);
    assert_eq!(tok.decode(&ids).unwrap(), "hi");
}

#[test]
fn tokenizer_json_is_deterministic_and_reloads_to_the_same_ids() {
    let a = Tokenizer::train(&corpus(), 300).unwrap();
    let b = Tokenizer::train(&corpus(), 300).unwrap();
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    a.save(&path).unwrap();
    let loaded = Tokenizer::load(&path).unwrap();
    let text = "The helpful dog sat on the cat's mat.";
    assert_eq!(a.encode(text).unwrap(), loaded.encode(text).unwrap());
    assert_eq!(a.eos_id(), loaded.eos_id());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        a.to_json().unwrap()
    );
}

#[test]
fn tokenizer_errors_are_typed_and_name_the_file() {
    assert!(matches!(
        Tokenizer::train(&corpus(), 100),
        Err(TokenizerError::BadVocabSize { got: 100, .. })
    ));
    assert!(matches!(
        Tokenizer::train(&corpus(), kto_lab::model::VOCAB + 1),
        Err(TokenizerError::BadVocabSize { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = Tokenizer::load(&missing).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }));
    assert!(err.to_string().contains("missing.json"));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let err = Tokenizer::load(&bad).unwrap_err();
    assert!(matches!(err, TokenizerError::File { .. }), "{err}");
    assert!(err.to_string().contains("bad.json"));
    // Where a model function meets it, it is a model error with the same words.
    let as_model = ModelError::from(err);
    assert!(
        as_model.to_string().starts_with(&bad.display().to_string()),
        "{as_model}"
    );
}

#[test]
fn tokenizer_feeds_the_model_end_to_end() {
    let tok = Tokenizer::train(&corpus(), tiny::VOCAB).unwrap();
    let (_, model) = tiny_model(14);
    let prompt = tok.encode("The cat").unwrap();
    let mut completion = tok.encode(" sat.").unwrap();
    completion.push(tok.eos_id());
    let batch =
        TokenBatch::new(&[(prompt.clone(), completion)], tok.eos_id(), tiny::MAX_SEQ).unwrap();
    let lp = model.sequence_logprobs(&batch, NoneTape).unwrap().as_vec();
    assert!(lp[0] < 0.0 && lp[0].is_finite());
    let cfg = SampleConfig {
        temperature: 0.8,
        top_k: Some(20),
        max_new_tokens: 5,
        seed: 1,
    };
    let out = model.generate_one(&prompt, tok.eos_id(), &cfg).unwrap();
    assert!(tok.decode(&out).is_ok());
}

#[test]
fn a_tampered_batch_is_an_error_not_a_panic() {
    let (_, model) = tiny_model(15);
    let mut batch = TokenBatch::new(&pairs(), PAD, tiny::MAX_SEQ).unwrap();
    batch.mask.pop();
    assert!(matches!(
        model.sequence_logprobs(&batch, NoneTape),
        Err(ModelError::BatchShape { field: "mask", .. })
    ));
    let mut batch = TokenBatch::new(&pairs(), PAD, tiny::MAX_SEQ).unwrap();
    batch.targets[0] = 10_000;
    assert!(matches!(
        model.sequence_logprobs(&batch, NoneTape),
        Err(ModelError::TokenOutOfRange { id: 10_000, .. })
    ));
}

#[test]
fn kto_trains_the_model_through_sequence_logprobs() {
    use dfdx::optim::{Adam, AdamConfig};
    use kto_lab::losses::{kto, KtoConfig};

    let (dev, mut policy) = tiny_model(16);
    let reference = policy.clone();
    let pairs = pairs();
    // KL pairs: each prompt with the next example's completion.
    let mismatched: Vec<_> = (0..pairs.len())
        .map(|i| (pairs[i].0.clone(), pairs[(i + 1) % pairs.len()].1.clone()))
        .collect();
    let (batch, kl_batch) = (
        TokenBatch::new(&pairs, PAD, tiny::MAX_SEQ).unwrap(),
        TokenBatch::new(&mismatched, PAD, tiny::MAX_SEQ).unwrap(),
    );
    let labels = [true, false, true];
    let cfg = KtoConfig {
        beta: 1.0,
        ..Default::default()
    };
    let reference_logps = reference.sequence_logprobs(&batch, NoneTape).unwrap();
    let kl_reference = reference.sequence_logprobs(&kl_batch, NoneTape).unwrap();

    let mut opt = Adam::new(
        &policy,
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let mut grads = policy.alloc_grads();
    for _ in 0..10 {
        let kl_policy = policy.sequence_logprobs(&kl_batch, NoneTape).unwrap();
        let logps = policy
            .sequence_logprobs(&batch, tape_from(&dev, grads))
            .unwrap();
        let (loss, _) = kto(
            logps,
            &reference_logps,
            &kl_policy,
            &kl_reference,
            &labels,
            &cfg,
        )
        .unwrap();
        grads = loss.backward();
        opt.update(&mut policy, &grads).unwrap();
        policy.zero_grads(&mut grads);
    }
    // Thumbs-up completions became more likely than under the reference, thumbs-down less.
    let after = policy.sequence_logprobs(&batch, NoneTape).unwrap().as_vec();
    let before = reference_logps.as_vec();
    for (i, up) in labels.iter().enumerate() {
        assert_eq!(
            after[i] > before[i],
            *up,
            "row {i}: {} → {}",
            before[i],
            after[i]
        );
    }
}

#[test]
fn sft_lowers_the_token_nll() {
    use dfdx::optim::{Adam, AdamConfig};

    let (dev, mut model) = tiny_model(17);
    let batch = TokenBatch::new(&pairs(), PAD, tiny::MAX_SEQ).unwrap();
    let start = model.token_nll(&batch, NoneTape).unwrap().array();
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let mut grads = model.alloc_grads();
    for _ in 0..20 {
        let loss = model.token_nll(&batch, tape_from(&dev, grads)).unwrap();
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let end = model.token_nll(&batch, NoneTape).unwrap().array();
    assert!(end < 0.5 * start, "NLL {start} → {end}");
}
