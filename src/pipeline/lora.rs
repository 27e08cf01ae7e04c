//! LoRA beside full fine-tuning (`kto-lab train --lora R`): KTO and DPO again from the loop's
//! SFT model on the loop's feedback, once updating every weight and once through rank-R
//! adapters on q, k, v, o ([`crate::model::lora`]), one run after the other so their times
//! compare. The table says what each trains, the memory its training state takes, its time per
//! step, and the desirable rate it reaches.

use dfdx::nn::NumParams;
use dfdx::prelude::Device;
use serde::Serialize;
use std::time::Instant;

use super::data::RunData;
use super::evaluate::evaluate_split;
use super::runs::train_from;
use super::{Codec, Evaluation, LoopConfig, LoopError, LoopOutcome};
use crate::device::Shareable;
use crate::model::{Gpt, LanguageModel, LoraConfig, LoraGpt};
use crate::train::{self, TrainConfig};

/// How the adapter runs train, besides the rank (a type parameter).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoraSettings {
    /// α and the seed of the A matrices.
    pub config: LoraConfig,
    /// The adapter runs' learning rate is the full runs' times this (LoRA trains few numbers,
    /// each starting from zero in B, and is usually given a larger step; Hu et al. use 10×
    /// and more).
    pub lr_factor: f64,
}

/// One run of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoraRow {
    /// `KTO, full`, `KTO, LoRA r = 16`, …
    pub method: String,
    /// Numbers the optimizer updates.
    pub trained_params: usize,
    /// Bytes of training state those numbers need: a gradient and AdamW's two moments, f32
    /// (the frozen weights are shared with the reference and not counted).
    pub state_bytes: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Wall time of the training call divided by its steps, in milliseconds (the reference
    /// log-probs computed up front included).
    pub ms_per_step: f64,
    /// Sampled answers on the training prompts.
    pub train_prompts: Evaluation,
    /// Sampled answers on the held-out prompts.
    pub held_out: Evaluation,
}

/// The comparison's table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoraReport {
    /// The adapters' rank.
    pub rank: usize,
    /// The adapters' α.
    pub alpha: f32,
    /// Rows: KTO full, KTO LoRA, DPO full, DPO LoRA.
    pub rows: Vec<LoraRow>,
}

impl LoraReport {
    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let header = [
            "run",
            "trained numbers",
            "grads + AdamW state",
            "lr",
            "ms / step",
            "desirable rate: training prompts",
            "held-out prompts",
            "KL to reference",
        ];
        let rows = self.rows.iter().map(|r| {
            vec![
                r.method.clone(),
                r.trained_params.to_string(),
                format!("{:.1} KiB", r.state_bytes as f64 / 1024.0),
                format!("{:.0e}", r.lr),
                format!("{:.0}", r.ms_per_step),
                r.train_prompts.desirable_percent(),
                r.held_out.desirable_percent(),
                format!(
                    "{:.3}",
                    r.train_prompts.combine(&r.held_out).kl_to_reference
                ),
            ]
        });
        crate::table::markdown(&header, rows)
    }
}

/// What [`lora_beside_full`] trained: the report and the two adapter models.
pub struct LoraOutcome<M> {
    /// The table.
    pub report: LoraReport,
    /// KTO through the adapters.
    pub kto: M,
    /// DPO through the adapters.
    pub dpo: M,
}

/// Trains KTO and DPO from `outcome`'s SFT model on its feedback, in full and through rank-`R`
/// adapters, and evaluates all four as the loop does (same prompts, same sampling seed).
#[allow(clippy::type_complexity)]
pub fn lora_beside_full<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
    const R: usize,
    D: Device<f32> + Shareable,
>(
    outcome: &LoopOutcome<Gpt<V, M, H, F, L, S, f32, D>>,
    cfg: &LoopConfig,
    settings: &LoraSettings,
) -> Result<LoraOutcome<LoraGpt<V, M, H, F, L, S, R, D>>, LoopError>
where
    Gpt<V, M, H, F, L, S, f32, D>: Shareable,
    LoraGpt<V, M, H, F, L, S, R, D>: Shareable,
{
    let codec = Codec {
        tokenizer: &outcome.tokenizer,
    };
    let pad = outcome.tokenizer.eos_id();
    let prompts = cfg.prompts();
    let data = RunData::of(&codec, &outcome.feedback, cfg)?;
    let (kto_data, weights, pairs) = (&data.kto, &data.kto_weights, &data.pairs);

    let full_ref = &outcome.reference;
    let adapted = LoraGpt::<V, M, H, F, L, S, R, D>::new(full_ref, settings.config)?;
    let lora_ref = adapted.without_adapters();
    let faster = |c: &TrainConfig| TrainConfig {
        lr: c.lr * settings.lr_factor,
        ..*c
    };
    let (kto_lora_cfg, dpo_lora_cfg) = (faster(&cfg.kto), faster(&cfg.dpo));

    // One after the other (no other run on the cores), timed.
    fn timed<T>(
        steps: usize,
        run: impl FnOnce() -> Result<T, train::TrainError>,
    ) -> Result<(T, f64), LoopError> {
        let start = Instant::now();
        let out = run()?;
        Ok((
            out,
            start.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64,
        ))
    }
    let kto_full = |m: &mut Gpt<V, M, H, F, L, S, f32, D>, s: &mut train::Session| {
        train::train_kto(m, full_ref, kto_data, weights, s, &mut train::no_probe)
    };
    let kto_lora = |m: &mut LoraGpt<V, M, H, F, L, S, R, D>, s: &mut train::Session| {
        train::train_kto(m, &lora_ref, kto_data, weights, s, &mut train::no_probe)
    };
    let dpo_full = |m: &mut Gpt<V, M, H, F, L, S, f32, D>, s: &mut train::Session| {
        train::train_dpo(m, full_ref, pairs, cfg.dpo_beta, s, &mut train::no_probe)
    };
    let dpo_lora = |m: &mut LoraGpt<V, M, H, F, L, S, R, D>, s: &mut train::Session| {
        train::train_dpo(m, &lora_ref, pairs, cfg.dpo_beta, s, &mut train::no_probe)
    };
    let ((kto, _), kto_ms) = timed(cfg.kto.steps, || {
        train_from(full_ref, "kto", &cfg.kto, pad, kto_full)
    })?;
    let ((kto_a, _), kto_a_ms) = timed(cfg.kto.steps, || {
        train_from(&adapted, "kto-lora", &kto_lora_cfg, pad, kto_lora)
    })?;
    let ((dpo, _), dpo_ms) = timed(cfg.dpo.steps, || {
        train_from(full_ref, "dpo", &cfg.dpo, pad, dpo_full)
    })?;
    let ((dpo_a, _), dpo_a_ms) = timed(cfg.dpo.steps, || {
        train_from(&adapted, "dpo-lora", &dpo_lora_cfg, pad, dpo_lora)
    })?;

    // Evaluated as the loop evaluates (same prompts, same seed).
    fn row<D: Device<f32>, Mo: LanguageModel<D>>(
        method: String,
        model: &Mo,
        lr: f64,
        ms_per_step: f64,
        (train_prompts, held_out): (Evaluation, Evaluation),
    ) -> LoraRow {
        let trained_params = model.num_trainable_params();
        LoraRow {
            method,
            trained_params,
            state_bytes: 3 * 4 * trained_params,
            lr,
            ms_per_step,
            train_prompts,
            held_out,
        }
    }
    let e = |m, r| evaluate_split(m, r, &codec, &prompts, cfg);
    let ea = |m, r| evaluate_split(m, r, &codec, &prompts, cfg);
    let named = |method: &str| format!("{method}, LoRA r = {R}");
    let rows = vec![
        row(
            "KTO, full".into(),
            &kto,
            cfg.kto.lr,
            kto_ms,
            e(&kto, full_ref)?,
        ),
        row(
            named("KTO"),
            &kto_a,
            kto_lora_cfg.lr,
            kto_a_ms,
            ea(&kto_a, &lora_ref)?,
        ),
        row(
            "DPO, full".into(),
            &dpo,
            cfg.dpo.lr,
            dpo_ms,
            e(&dpo, full_ref)?,
        ),
        row(
            named("DPO"),
            &dpo_a,
            dpo_lora_cfg.lr,
            dpo_a_ms,
            ea(&dpo_a, &lora_ref)?,
        ),
    ];
    Ok(LoraOutcome {
        report: LoraReport {
            rank: R,
            alpha: settings.config.alpha,
            rows,
        },
        kto: kto_a,
        dpo: dpo_a,
    })
}
