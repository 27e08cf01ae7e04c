//! Tuning harness for lab 3's defaults (not part of the workbook): caches the SFT model and
//! times each phase. `SFT_STEPS=.. KTO_LR=.. cargo run --release --example tune_loop`

use std::time::Instant;

use kto_lab::losses::{Dev, KtoConfig};
use kto_lab::model::Model;
use kto_lab::pipeline::{evaluate, sample_and_judge, Codec, LoopConfig};
use kto_lab::tokenizer::Tokenizer;
use kto_lab::train::{self, MetricsLog, Session};
use kto_lab::world::{self, Split};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = LoopConfig::default();
    cfg.sft.steps = env("SFT_STEPS", cfg.sft.steps);
    cfg.sft.lr = env("SFT_LR", cfg.sft.lr);
    cfg.kto.steps = env("KTO_STEPS", cfg.kto.steps);
    cfg.kto.lr = env("KTO_LR", cfg.kto.lr);
    cfg.dpo.steps = env("DPO_STEPS", cfg.dpo.steps);
    cfg.dpo.lr = env("DPO_LR", cfg.dpo.lr);
    cfg.kto_loss.beta = env("BETA", cfg.kto_loss.beta);
    cfg.dpo_beta = env("DPO_BETA", cfg.dpo_beta);
    cfg.feedback_samples = env("FB", cfg.feedback_samples);
    cfg.eval_samples = env("EVAL", cfg.eval_samples);
    cfg.sampling.temperature = env("TEMP", cfg.sampling.temperature);
    let k: usize = env("TOPK", 8);
    cfg.sampling.top_k = (k > 0).then_some(k);
    let dev = Dev::default();
    let t = Instant::now();
    let tokenizer = Tokenizer::train(&world::tokenizer_corpus(), cfg.vocab_size)?;
    let codec = Codec {
        tokenizer: &tokenizer,
    };
    let pad = tokenizer.eos_id();
    println!("tokenizer {:.1}s", t.elapsed().as_secs_f64());
    let mut log = MetricsLog::quiet();
    let path = format!("/tmp/tune-sft-{}-{}.safetensors", cfg.sft.steps, cfg.sft.lr);
    let t = Instant::now();
    let reference = if std::path::Path::new(&path).exists() {
        Model::from_file(&dev, &path)?
    } else {
        let data: Vec<_> = world::sft_corpus(cfg.seed, cfg.good_fraction)
            .iter()
            .map(|e| codec.example(&e.prompt, &e.completion, e.kind.is_none()))
            .collect::<Result<_, _>>()?;
        let mut m = Model::init(&dev, cfg.seed);
        train::train_sft(
            &mut m,
            &data,
            &mut Session {
                phase: "sft",
                cfg: &cfg.sft,
                pad_id: pad,
                log: &mut log,
            },
        )?;
        m.save(&path)?;
        m
    };
    println!(
        "sft {:.1}s (last loss {:?})",
        t.elapsed().as_secs_f64(),
        log.records().last().map(|r| r.loss)
    );
    let prompts: Vec<_> = world::prompts().iter().collect();
    let train_prompts: Vec<_> = prompts
        .iter()
        .copied()
        .filter(|p| p.split == Split::Train)
        .collect();
    let t = Instant::now();
    let samples = sample_and_judge(
        &reference,
        &codec,
        &train_prompts,
        cfg.feedback_samples,
        &cfg.sampling,
        7,
    )?;
    println!("feedback sampling {:.1}s", t.elapsed().as_secs_f64());
    let records: Vec<_> = samples
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            world::to_record(
                s.prompt,
                &s.answer,
                &s.verdict,
                [("i".to_string(), i.into())].into_iter().collect(),
            )
            .ok()
        })
        .collect();
    let stats = kto_lab::feedback::Stats::of(&records);
    println!("feedback {stats}");
    let ev = |name: &str, m: &Model, secs: f64| -> Result<(), Box<dyn std::error::Error>> {
        let t = Instant::now();
        let all = sample_and_judge(m, &codec, &prompts, cfg.eval_samples, &cfg.sampling, 99)?;
        let held: Vec<_> = all
            .iter()
            .filter(|s| s.prompt.split == Split::Eval)
            .cloned()
            .collect();
        let e = evaluate(m, &reference, &codec, &all, 64)?;
        if env("SHOW", 0) == 1 {
            for s in all.iter().filter(|s| !s.verdict.label).take(12) {
                println!(
                    "    [{}] {:?} -> {:?} ({})",
                    name, s.question, s.answer, s.verdict.reason
                );
            }
        }
        let h = evaluate(m, &reference, &codec, &held, 64)?;
        let tr: Vec<_> = all
            .iter()
            .filter(|s| s.prompt.split == Split::Train)
            .cloned()
            .collect();
        let tr = evaluate(m, &reference, &codec, &tr, 64)?;
        println!(
            "          train-prompts {:.1}%",
            100.0 * tr.judged.desirable_rate.unwrap_or(0.0)
        );
        println!(
            "{name:>8}: train {secs:5.1}s eval {:4.1}s | all {} | held {:.1}% | KL {:.3}",
            t.elapsed().as_secs_f64(),
            e.judged,
            100.0 * h.judged.desirable_rate.unwrap_or(0.0),
            e.kl_to_reference
        );
        Ok(())
    };
    ev("sft", &reference, 0.0)?;
    let data: Vec<_> = records
        .iter()
        .map(|r| match (&r.prompt, &r.completion) {
            (kto_lab::feedback::Text::Plain(p), kto_lab::feedback::Text::Plain(c)) => {
                codec.example(p, c, r.label)
            }
            _ => unreachable!(),
        })
        .collect::<Result<_, _>>()?;
    let w = kto_lab::feedback::advise(stats.desirable, stats.undesirable, 1.0, 1.0)?;
    let kto_cfg = KtoConfig {
        desirable_weight: if w.ratio < 1.0 {
            w.suggested_desirable_weight as f32
        } else {
            1.0
        },
        ..cfg.kto_loss
    };
    let t = Instant::now();
    let mut kto = reference.clone();
    train::train_kto(
        &mut kto,
        &reference,
        &data,
        &kto_cfg,
        &mut Session {
            phase: "kto",
            cfg: &cfg.kto,
            pad_id: pad,
            log: &mut log,
        },
    )?;
    ev("kto", &kto, t.elapsed().as_secs_f64())?;
    let k: Vec<_> = log.phase("kto").collect();
    println!(
        "   kto loss {:.3} → {:.3}, last kl {:?}",
        k[0].loss,
        k[k.len() - 1].loss,
        k[k.len() - 1].metrics.get("kl")
    );
    if env("DPO", 1) == 1 {
        let pairs: Vec<_> = world::dpo_pairs(&records)
            .iter()
            .map(|p| match (&p.prompt, &p.chosen, &p.rejected) {
                (
                    kto_lab::feedback::Text::Plain(a),
                    kto_lab::feedback::Text::Plain(b),
                    kto_lab::feedback::Text::Plain(c),
                ) => codec.pair(a, b, c),
                _ => unreachable!(),
            })
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        let mut dpo = reference.clone();
        train::train_dpo(
            &mut dpo,
            &reference,
            &pairs,
            cfg.dpo_beta,
            &mut Session {
                phase: "dpo",
                cfg: &cfg.dpo,
                pad_id: pad,
                log: &mut log,
            },
        )?;
        ev("dpo", &dpo, t.elapsed().as_secs_f64())?;
    }
    Ok(())
}
