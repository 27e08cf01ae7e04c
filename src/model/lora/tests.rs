use super::*;
use crate::model::config::tiny::{TinyLora, TinyModel};
use crate::model::{tape_from, TokenBatch};

fn batch() -> TokenBatch {
    let rows: Vec<(Vec<u32>, Vec<u32>)> = (0..3)
        .map(|i| {
            let ids = |seed: u32, n: u32| (0..n).map(move |t| (seed * 31 + t * 17) % 250 + 3);
            (ids(i, 3 + i).collect(), ids(i + 50, 2 + i).collect())
        })
        .collect();
    TokenBatch::new(&rows, 0, 16).unwrap()
}

fn logps<M: LanguageModel<Cpu>>(m: &M) -> Vec<f32> {
    m.sequence_logprobs(&batch(), NoneTape).unwrap().as_vec()
}

/// Fills every B with small numbers, so the adapters change the model.
fn nudge<const R: usize>(lora: &mut TinyLora<R, Cpu>) {
    let dev = Cpu::default();
    for (i, block) in lora.adapters.modules.iter_mut().enumerate() {
        for (j, ad) in [&mut block.q, &mut block.k, &mut block.v, &mut block.o]
            .into_iter()
            .enumerate()
        {
            let n = ad.b.shape().num_elements();
            let b = (0..n)
                .map(|t| (((t + 7 * i + 3 * j) % 11) as f32 - 5.0) * 0.02)
                .collect();
            ad.b = dev.tensor_from_vec(b, (Const, Const));
        }
    }
}

#[test]
fn fresh_or_switched_off_adapters_are_the_base_model_exactly() {
    let base = TinyModel::<Cpu>::init(&Cpu::default(), 1);
    let mut lora = TinyLora::<4, Cpu>::new(&base, LoraConfig::default()).unwrap();
    assert_eq!(logps(&lora), logps(&base), "B = 0 at the start");
    nudge(&mut lora);
    assert_ne!(logps(&lora), logps(&base));
    assert_eq!(logps(&lora.without_adapters()), logps(&base));
    assert_eq!(lora.trainable_params(), 4 * 2 * 4 * 2 * 16);
}

#[test]
fn merged_weights_compute_the_adapted_model() {
    let base = TinyModel::<Cpu>::init(&Cpu::default(), 2);
    let mut lora = TinyLora::<2, Cpu>::new(&base, LoraConfig::default()).unwrap();
    nudge(&mut lora);
    let merged = lora.merged().unwrap();
    for (a, b) in logps(&lora).iter().zip(logps(&merged)) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
    }
    assert_eq!(
        logps(&lora.without_adapters().merged().unwrap()),
        logps(&base)
    );
}

#[test]
fn gradients_of_a_and_b_match_finite_differences() {
    let base = TinyModel::<Cpu>::init(&Cpu::default(), 3);
    let mut lora = TinyLora::<2, Cpu>::new(&base, LoraConfig::default()).unwrap();
    nudge(&mut lora);
    let dev = Cpu::default();
    let loss = |m: &TinyLora<2, Cpu>| -> f64 { logps(m).iter().map(|&x| x as f64).sum() };
    let grads = lora
        .sequence_logprobs(&batch(), tape_from(&dev, lora.alloc_grads()))
        .unwrap()
        .sum()
        .backward();
    let block = &lora.adapters.modules[1];
    let (ga, gb) = (
        grads.get(&block.v.a).as_vec(),
        grads.get(&block.o.b).as_vec(),
    );
    let eps = 1e-2f32;
    let probe = |which: usize, k: usize| -> f64 {
        let shifted = |delta: f32| {
            let mut m = lora.clone();
            let ad = &mut m.adapters.modules[1];
            let t = if which == 0 {
                let mut a = ad.v.a.as_vec();
                a[k] += delta;
                ad.v.a = dev.tensor_from_vec(a, (Const, Const));
                &m
            } else {
                let mut b = ad.o.b.as_vec();
                b[k] += delta;
                ad.o.b = dev.tensor_from_vec(b, (Const, Const));
                &m
            };
            loss(t)
        };
        (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64)
    };
    for k in [0, 5, 17, 30] {
        let (numeric, exact) = (probe(0, k), ga[k] as f64);
        assert!(
            (numeric - exact).abs() <= 2e-2 * (1.0 + exact.abs()),
            "A[{k}]: {numeric} vs {exact}"
        );
        let (numeric, exact) = (probe(1, k), gb[k] as f64);
        assert!(
            (numeric - exact).abs() <= 2e-2 * (1.0 + exact.abs()),
            "B[{k}]: {numeric} vs {exact}"
        );
    }
    assert!(ga.iter().any(|g| g.abs() > 1e-4) && gb.iter().any(|g| g.abs() > 1e-4));
    // The frozen projections and the head got no gradient buffer at all (no ∂W GEMM).
    let attn = &lora.base.h.modules[0].attn;
    let has_grad = |id: &dyn Fn() -> Vec<f32>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(id)).is_ok()
    };
    assert!(!has_grad(&|| grads.get(&attn.q.weight).as_vec()));
    assert!(!has_grad(&|| grads.get(&attn.c_proj.weight).as_vec()));
    assert!(!has_grad(&|| grads.get(&lora.base.wte.weight).as_vec()));
    assert!(has_grad(&|| grads.get(&block.q.a).as_vec()));
}

#[test]
fn adapters_save_and_load_alone() {
    let base = TinyModel::<Cpu>::init(&Cpu::default(), 4);
    let mut lora = TinyLora::<2, Cpu>::new(&base, LoraConfig::default()).unwrap();
    nudge(&mut lora);
    let dir = std::env::temp_dir().join(format!("kto-lab-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("adapters.safetensors");
    lora.save(&path).unwrap();
    let mut fresh = TinyLora::<2, Cpu>::new(&base, LoraConfig::default()).unwrap();
    fresh.load(&path).unwrap();
    assert_eq!(logps(&fresh), logps(&lora));
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(
        size < 4 * lora.trainable_params() + 4096,
        "only the adapters: {size} bytes"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_kto_step_changes_the_adapters_and_nothing_else() {
    use crate::losses::KtoConfig;
    use crate::train::{self, Example, MetricsLog, Session, TrainConfig};
    let base = TinyModel::<Cpu>::init(&Cpu::default(), 5);
    let mut policy = TinyLora::<2, Cpu>::new(&base, LoraConfig::default()).unwrap();
    let reference = policy.without_adapters();
    let data: Vec<Example> = (0..6u32)
        .map(|i| Example {
            prompt: vec![3 + i, 40, 41],
            completion: vec![50 + i, 60],
            label: i % 2 == 0,
        })
        .collect();
    let cfg = TrainConfig {
        steps: 2,
        batch_size: 4,
        lr: 1e-2,
        warmup: 0,
        adamw: train::AdamWConfig::default(),
        seed: 0,
    };
    let mut log = MetricsLog::quiet();
    let mut session = Session {
        phase: "kto",
        cfg: &cfg,
        pad_id: 0,
        log: &mut log,
    };
    let before = policy.clone();
    train::train_kto(
        &mut policy,
        &reference,
        &data,
        &KtoConfig::default(),
        &mut session,
        &mut train::no_probe,
    )
    .unwrap();
    let all = |m: &TinyModel<Cpu>| {
        let mut out = Vec::new();
        crate::train::optim::for_each_param(m, |t| out.extend(t.as_vec()));
        out
    };
    assert_eq!(all(&policy.base), all(&base), "the base model is frozen");
    assert_eq!(all(&reference.base), all(&base));
    let b = |m: &TinyLora<2, Cpu>| m.adapters.modules[0].q.b.as_vec();
    assert_ne!(b(&policy), b(&before), "B moved off zero");
    assert!(b(&before).iter().all(|&x| x == 0.0));
    assert_eq!(
        logps(&reference),
        logps(&base),
        "the reference stayed the base model"
    );
}
