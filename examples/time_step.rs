//! Times one training step's worth of model work with the default config: forward + backward of
//! the summed completion log-probs at batch 16, 48 input positions, with dfdx's allocation cache
//! off and on. Also an untaped forward (what the frozen reference model costs).
//!
//! `cargo run --release --example time_step`

use std::time::Instant;

use dfdx::prelude::*;
use kto_lab::model::{tape_from, Model, TokenBatch, MAX_SEQ, VOCAB};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 16;
const PROMPT: usize = 16;
const COMPLETION: usize = 33; // 16 + 33 tokens = 48 inputs + 1
const WARMUP: usize = 3;
const STEPS: usize = 15;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut ids =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(1..VOCAB as u32)).collect() };
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        (0..BATCH).map(|_| (ids(PROMPT), ids(COMPLETION))).collect();
    let batch = TokenBatch::new(&pairs, 0, MAX_SEQ)?;
    println!(
        "batch {} x seq {} ({} completion tokens)",
        batch.rows,
        batch.seq_len,
        batch.completion_tokens()
    );

    for cache in [false, true] {
        let dev = Cpu::default();
        if cache {
            dev.enable_cache();
        }
        let model = Model::init(&dev, 0);
        let mut grads = model.alloc_grads();
        let (mut train, mut eval) = (Vec::new(), Vec::new());
        for i in 0..WARMUP + STEPS {
            let t = Instant::now();
            let lp = model.sequence_logprobs(&batch, tape_from(&dev, grads))?;
            grads = lp.sum().backward();
            let train_ms = t.elapsed().as_secs_f64() * 1e3;
            model.zero_grads(&mut grads);

            let t = Instant::now();
            let _ = model.sequence_logprobs(&batch, NoneTape)?.as_vec();
            let eval_ms = t.elapsed().as_secs_f64() * 1e3;
            if i >= WARMUP {
                train.push(train_ms);
                eval.push(eval_ms);
            }
        }
        println!(
            "cache {:>3}: forward+backward median {:6.1} ms (min {:6.1}); untaped forward median {:6.1} ms",
            if cache { "on" } else { "off" },
            median(train.clone()),
            train.iter().cloned().fold(f64::INFINITY, f64::min),
            median(eval),
        );
    }
    Ok(())
}
