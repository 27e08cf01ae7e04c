//! Checks of lab 3's exercises (`solutions/03_kto_pipeline.ipynb`).
//!
//! | exercise | check | the reference it compares with |
//! |---|---|---|
//! | 3.1 inputs, targets and completion mask of one row | [`row_targets`] | [`TokenBatch::new`] |
//! | 3.2 log π(y\|x) per row, in dfdx | [`sequence_logprobs`] | [`classroom::masked_sequence_sum`] |
//! | 3.3 one KTO step with dfdx, and where its gradient stops | [`kto_step`] | [`classroom::kto_step`] |
//! | 3.4 a LoRA-adapted projection | [`lora_linear`] | [`crate::model::lora::Adapter::correction`] on a frozen layer, as lab 3's model trains it |

use std::fmt;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{approx_eq, fmt_num, Ask, CheckResult, Checker};
use crate::classroom::{self, KtoBatch, Policy};
use crate::losses::{Dev, KtoConfig};
use crate::model::TokenBatch;
use crate::train::Example;

/// One row as exercise 3.1 returns it: `(inputs, targets, mask)`, each `seq_len` long.
pub type Row = (Vec<u32>, Vec<u32>, Vec<f32>);

answer_key! {
    /// The reference of exercise 3.1: the row [`TokenBatch::new`] builds for `(prompt, completion)`,
    /// right-padded with `pad` to `seq_len` positions. `None` when the row does not fit.
    pub fn reference_row(prompt: &[u32], completion: &[u32], seq_len: usize, pad: u32) -> Option<Row> {
        if completion.is_empty() || prompt.len().max(1) + completion.len() - 1 > seq_len {
            return None;
        }
        // A second, full-length row makes the batch exactly `seq_len` wide.
        let filler = (vec![pad], vec![pad; seq_len]);
        let rows = [(prompt.to_vec(), completion.to_vec()), filler];
        let b = TokenBatch::new(&rows, pad, seq_len).ok()?;
        let take = |v: &[usize]| v[..seq_len].iter().map(|&x| x as u32).collect::<Vec<u32>>();
        Some((
            take(&b.inputs),
            take(&b.targets),
            b.mask[..seq_len].to_vec(),
        ))
    }
}

/// Exercise 3.1 — `student(prompt, completion, seq_len, pad)` must return the row's
/// `(inputs, targets, mask)`: the sequence `prompt ++ completion` shifted by one (inputs are
/// tokens 0..n-1, targets tokens 1..n), mask 1 exactly where the target is a completion token,
/// right-padded with `pad` (mask 0) to `seq_len`. An empty prompt starts from `pad`.
pub fn row_targets<F>(student: F) -> CheckResult
where
    F: Fn(&[u32], &[u32], usize, u32) -> Row,
{
    super::exam::answer(
        "3.1",
        |(p, c, seq_len, pad): &RowQuestion| student(p, c, *seq_len, *pad),
        check_row_targets,
    )
}

/// Exercise 3.1's question: prompt, completion, sequence length, pad id.
type RowQuestion = (Vec<u32>, Vec<u32>, usize, u32);

pub(crate) fn check_row_targets(student: &mut dyn Ask<RowQuestion, Row>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 3.1 — inputs, targets and completion mask",
        "targets are the inputs shifted left by one; the first completion token is the target \
         at position len(prompt) − 1; padding positions hold `pad` in both and 0 in the mask",
    );
    // (name, prompt, completion, seq_len, pad)
    type RowCase = (String, Vec<u32>, Vec<u32>, usize, u32);
    let mut cases: Vec<RowCase> = vec![
        (
            "prompt of 3, completion of 2, no padding".into(),
            vec![10, 11, 12],
            vec![20, 21],
            4,
            0,
        ),
        (
            "padded to 8 with pad id 511".into(),
            vec![10, 11, 12],
            vec![20, 21],
            8,
            511,
        ),
        ("one-token prompt".into(), vec![7], vec![8, 9, 10], 3, 0),
        (
            "one-token completion".into(),
            vec![1, 2, 3, 4],
            vec![5],
            6,
            0,
        ),
        (
            "empty prompt: starts from the pad token".into(),
            vec![],
            vec![5, 6],
            4,
            256,
        ),
    ];
    let mut rng = super::grading::rng(3);
    for i in 0..4 {
        let p: Vec<u32> = (0..rng.gen_range(1..10))
            .map(|_| rng.gen_range(0..512))
            .collect();
        let c: Vec<u32> = (0..rng.gen_range(1..10))
            .map(|_| rng.gen_range(0..512))
            .collect();
        let seq_len = p.len() + c.len() - 1 + rng.gen_range(0..5);
        cases.push((format!("random row {}", i + 1), p, c, seq_len, 256));
    }
    for (name, p, c, seq_len, pad) in cases {
        let Some(expected) = reference_row(&p, &c, seq_len, pad) else {
            continue;
        };
        let Some(got) = check.ask(student, &(p, c, seq_len, pad)) else {
            continue;
        };
        let ok = got == expected;
        check.case(name, RowView(&expected), RowView(&got), ok);
    }
    check.finish()
}

struct RowView<'a>(&'a Row);

impl fmt::Display for RowView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, t, m) = self.0;
        let m: Vec<u8> = m.iter().map(|&x| x as u8).collect();
        write!(f, "inputs {i:?}, targets {t:?}, mask {m:?}")
    }
}

/// Per-token log-probs `[B, S]` as exercise 3.2 receives them.
pub type TokenLogps = Tensor<(usize, usize), f32, Dev>;
/// Per-sequence log-probs `(B,)` as exercise 3.2 returns them.
pub type SeqLogps = Tensor<(usize,), f32, Dev>;

/// One input of exercise 3.2: `rows × seq_len` log-probs and mask.
struct MaskCase {
    name: String,
    rows: usize,
    seq_len: usize,
    logps: Vec<f32>,
    mask: Vec<f32>,
}

fn mask_cases() -> Vec<MaskCase> {
    let mut cases = vec![
        MaskCase {
            name: "2 rows: prompt, completion and padding".into(),
            rows: 2,
            seq_len: 4,
            logps: vec![-1.0, -2.0, -0.5, -0.25, -3.0, -0.125, -7.0, -9.0],
            mask: vec![0., 1., 1., 1., 1., 0., 0., 0.],
        },
        MaskCase {
            name: "an all-padding row sums to 0".into(),
            rows: 3,
            seq_len: 3,
            logps: vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -0.5, -0.5, -0.5],
            mask: vec![0., 1., 1., 0., 0., 0., 1., 1., 1.],
        },
        MaskCase {
            name: "one position per row".into(),
            rows: 3,
            seq_len: 1,
            logps: vec![-1.5, -2.5, -0.75],
            mask: vec![1., 0., 1.],
        },
        MaskCase {
            name: "large log-probs at masked positions are ignored".into(),
            rows: 1,
            seq_len: 5,
            logps: vec![-1e4, -1e4, -0.5, -1.5, -1e4],
            mask: vec![0., 0., 1., 1., 0.],
        },
    ];
    let mut rng = super::grading::rng(32);
    for i in 0..3 {
        let rows = rng.gen_range(1..7);
        let seq_len = rng.gen_range(2..20);
        let mut logps = Vec::new();
        let mut mask = Vec::new();
        for _ in 0..rows {
            let p = rng.gen_range(0..seq_len);
            let n = rng.gen_range(p..=seq_len);
            for t in 0..seq_len {
                logps.push(-rng.gen_range(0.0f32..8.0));
                mask.push(if t >= p && t < n { 1.0 } else { 0.0 });
            }
        }
        cases.push(MaskCase {
            name: format!("random batch {} ({rows} × {seq_len})", i + 1),
            rows,
            seq_len,
            logps,
            mask,
        });
    }
    cases
}

/// Exercise 3.2 — `student(token_logps, mask)` must return log π(y|x) per row: the sum over
/// positions of the per-token log-probs where the mask is 1, as a `(B,)` tensor.
pub fn sequence_logprobs<F>(student: F) -> CheckResult
where
    F: Fn(TokenLogps, TokenLogps) -> SeqLogps,
{
    super::exam::answer(
        "3.2",
        |(rows, seq_len, logps, mask): &MaskQuestion| {
            let dev = crate::device::device();
            let shape = (*rows, *seq_len);
            let got = student(
                dev.tensor_from_vec(logps.clone(), shape),
                dev.tensor_from_vec(mask.clone(), shape),
            );
            if got.shape().0 == *rows {
                got.as_vec()
            } else {
                // Show the wrong length rather than reading a mis-shaped tensor.
                vec![f32::NAN; got.shape().0]
            }
        },
        check_sequence_logprobs,
    )
}

/// Exercise 3.2's question: rows, sequence length, per-token log-probs and mask (row-major).
type MaskQuestion = (usize, usize, Vec<f32>, Vec<f32>);

pub(crate) fn check_sequence_logprobs(
    student: &mut dyn Ask<MaskQuestion, Vec<f32>>,
) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 3.2 — log π(y|x) per row, in dfdx",
        "multiply the log-probs by the mask (prompt and padding become 0), then sum — not \
         average: log π(y|x) is the whole answer's — over the sequence axis: \
         `.sum::<(usize,), Axis<1>>()`",
    );
    let dev = crate::device::device();
    for case in mask_cases() {
        let shape = (case.rows, case.seq_len);
        let expected = classroom::masked_sequence_sum(
            dev.tensor_from_vec(case.logps.clone(), shape),
            dev.tensor_from_vec(case.mask.clone(), shape),
        )
        .as_vec();
        let q = (case.rows, case.seq_len, case.logps, case.mask);
        let Some(got) = check.ask(student, &q) else {
            continue;
        };
        let e: Vec<f64> = expected.iter().map(|&x| x as f64).collect();
        let g: Vec<f64> = got.iter().map(|&x| x as f64).collect();
        check.close_all(case.name, &e, &g, 1e-5);
    }
    check.finish()
}

/// One starting point of exercise 3.3.
struct StepCase {
    name: &'static str,
    labels: Vec<bool>,
    cfg: KtoConfig,
    /// Reference steps taken before the checked one, so the policy has drifted.
    warmup_steps: usize,
}

fn step_cases() -> Vec<StepCase> {
    let beta1 = KtoConfig {
        beta: 1.0,
        ..KtoConfig::default()
    };
    vec![
        StepCase {
            name: "πθ = πref, balanced batch, β = 0.1",
            labels: vec![true, false, true, false, true, false],
            cfg: KtoConfig::default(),
            warmup_steps: 0,
        },
        StepCase {
            name: "drifted policy, β = 1",
            labels: vec![true, true, false, true, false, false],
            cfg: beta1,
            warmup_steps: 3,
        },
        StepCase {
            name: "λD = 2, λU = 0.5",
            labels: vec![true, false, false, false, true, false],
            cfg: KtoConfig {
                beta: 0.5,
                desirable_weight: 2.0,
                undesirable_weight: 0.5,
            },
            warmup_steps: 2,
        },
        StepCase {
            name: "one-class batch: all thumbs up",
            labels: vec![true; 4],
            cfg: beta1,
            warmup_steps: 1,
        },
        StepCase {
            name: "one-class batch: all thumbs down",
            labels: vec![false; 4],
            cfg: beta1,
            warmup_steps: 1,
        },
        StepCase {
            name: "two examples (the smallest batch)",
            labels: vec![false, true],
            cfg: KtoConfig::default(),
            warmup_steps: 0,
        },
    ]
}

/// Random prompt/completion ids for a labelled batch (seeded).
fn random_examples(labels: &[bool], seed: u64) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    labels
        .iter()
        .map(|&label| Example {
            prompt: (0..rng.gen_range(2..8))
                .map(|_| rng.gen_range(0..300))
                .collect(),
            completion: (0..rng.gen_range(1..8))
                .map(|_| rng.gen_range(0..300))
                .collect(),
            label,
        })
        .collect()
}

/// The loss of `batch` under `policy` with the reference point held at `z0` (as the gradient
/// sees it: z0 carries no gradient).
fn loss_at(policy: &Policy, batch: &KtoBatch, cfg: &KtoConfig, z0: f32) -> f64 {
    let Ok(logps) = policy.logprobs_no_grad(&batch.tokens) else {
        return f64::NAN;
    };
    let n = batch.len() as f64;
    logps
        .iter()
        .zip(&batch.reference_logps)
        .zip(&batch.labels)
        .map(|((p, q), &up)| {
            let r = (p - q - z0) as f64;
            let (sign, w) = if up {
                (1.0, cfg.desirable_weight)
            } else {
                (-1.0, cfg.undesirable_weight)
            };
            w as f64 * (1.0 - crate::math::sigmoid(sign * cfg.beta as f64 * r))
        })
        .sum::<f64>()
        / n
}

/// How far the gradient `mine` (flattened, [`flat_grads`]) is from `reference`'s last step's:
/// the largest difference over every parameter, relative to the largest reference gradient.
/// `None` when the student took no step.
fn gradient_gap(reference: &Policy, mine: Option<&[f32]>) -> Option<f64> {
    let (expected, got) = (flat_grads(reference)?, mine?);
    if expected.len() != got.len() {
        return Some(f64::INFINITY);
    }
    let (mut gap, mut scale) = (0.0f64, 0.0f64);
    for (e, g) in expected.iter().zip(got) {
        // NaN never counts as close.
        let d = (e - g).abs() as f64;
        gap = if d.is_nan() {
            f64::INFINITY
        } else {
            gap.max(d)
        };
        scale = scale.max(e.abs() as f64);
    }
    Some(gap / scale.max(1e-12))
}

/// A prepared starting point: the policy, its batch, the reference point and the loss now.
struct Start {
    policy: Policy,
    batch: KtoBatch,
    z0: f32,
    before: f64,
}

fn start(case: &StepCase, seed: u64) -> Option<Start> {
    let reference = classroom::new_model(seed);
    let batch = KtoBatch::new(&reference, &random_examples(&case.labels, seed), 0).ok()?;
    let mut policy = Policy::new(reference, 1e-3);
    for _ in 0..case.warmup_steps {
        classroom::kto_step(&mut policy, &batch, &case.cfg).ok()?;
    }
    // A fresh optimizer for the checked step, so student and reference start level.
    let policy = Policy::new(policy.model().clone(), 1e-3);
    let z0 = classroom::kto_loss(&policy, &batch, &case.cfg).ok()?.kl;
    let before = loss_at(&policy, &batch, &case.cfg, z0);
    Some(Start {
        policy,
        batch,
        z0,
        before,
    })
}

/// Exercise 3.3 — `student(policy, batch, cfg)` takes one KTO step and returns the loss before
/// the update. For each starting point the check compares the returned loss with the
/// reference's, and the loss after the student's update with the loss after the reference's
/// update (both at the step's reference point z0), which must be lower than before.
pub fn kto_step<F, E>(student: F) -> CheckResult
where
    F: Fn(&mut Policy, &KtoBatch, &KtoConfig) -> Result<f32, E>,
    E: fmt::Display,
{
    super::exam::answer(
        "3.3",
        |&(case, seed): &(usize, u64)| {
            let case = step_cases().into_iter().nth(case)?;
            let s = start(&case, seed)?;
            let mut mine = s.policy.clone();
            let loss = student(&mut mine, &s.batch, &case.cfg).map_err(|e| e.to_string());
            Some(StepAnswer {
                loss,
                steps: mine.steps(),
                after: loss_at(&mine, &s.batch, &case.cfg, s.z0),
                grads: flat_grads(&mine),
            })
        },
        check_kto_step,
    )
}

/// What exercise 3.3's check reads of the student's step: the loss it returned, how many
/// optimizer steps it took, the loss after them (at the step's z0), and the last step's
/// gradient, every parameter in order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StepAnswer {
    loss: Result<f32, String>,
    steps: i32,
    after: f64,
    grads: Option<Vec<f32>>,
}

/// The last step's gradient of `policy`, every parameter flattened in the model's order.
fn flat_grads(policy: &Policy) -> Option<Vec<f32>> {
    let grads = policy.last_grads()?;
    let mut flat = Vec::new();
    crate::train::optim::for_each_param(policy.model(), |t| flat.extend(grads.get(t).as_vec()));
    Some(flat)
}

/// Exercise 3.3's question: a starting point (its index in [`step_cases`]) and its seed; the
/// student's side builds the same policy and batch from them.
pub(crate) fn check_kto_step(
    student: &mut dyn Ask<(usize, u64), Option<StepAnswer>>,
) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 3.3 — one KTO step with dfdx",
        "r = log πθ − log πref; z0 = max(0, mean of the KL pairs' log-ratios), without \
         gradient; loss = mean of λ·(1 − σ(±β(r − z0))), + for thumbs up, − for thumbs down; \
         then `policy.step(loss.backward())` and return the loss value",
    );
    for (i, case) in step_cases().iter().enumerate() {
        let seed = super::grading::seed(100 + i as u64);
        let Some(s) = start(case, seed) else {
            check.case(case.name, "a starting point", "could not prepare it", false);
            continue;
        };
        let mut reference = s.policy.clone();
        let expected = classroom::kto_step(&mut reference, &s.batch, &case.cfg);
        let Some(answer) = check.ask(student, &(i, seed)) else {
            continue;
        };
        let Some(mine) = answer else {
            check.case(case.name, "a starting point", "could not prepare it", false);
            continue;
        };
        let (expected, got) = match (expected, mine.loss) {
            (Ok(e), Ok(g)) => (e, g),
            (Err(e), _) => {
                check.case(
                    case.name,
                    "the reference step",
                    format!("error: {e}"),
                    false,
                );
                continue;
            }
            (_, Err(e)) => {
                check.case(
                    format!("{}: loss", case.name),
                    "a loss",
                    format!("error: {e}"),
                    false,
                );
                continue;
            }
        };
        check.close(
            format!("{}: loss", case.name),
            expected as f64,
            got as f64,
            1e-4,
        );
        let after_ref = loss_at(&reference, &s.batch, &case.cfg, s.z0);
        let after = mine.after;
        let moved = mine.steps == 1
            && after < s.before
            && approx_eq(s.before - after_ref, s.before - after, 2e-2);
        check.case(
            format!("{}: loss after the step", case.name),
            format!(
                "{} → {} (one AdamW step)",
                fmt_num(s.before),
                fmt_num(after_ref)
            ),
            format!(
                "{} → {} ({} optimizer step{})",
                fmt_num(s.before),
                fmt_num(after),
                mine.steps,
                if mine.steps == 1 { "" } else { "s" }
            ),
            moved,
        );
        // Where the gradient stops: z0 is a constant of the step (as in TRL). A z0 that carries
        // the tape gives the model a second way to lower the loss — moving the reference point
        // instead of the answers — and a different gradient.
        let gap = gradient_gap(&reference, mine.grads.as_deref());
        check.case(
            format!("{}: gradient", case.name),
            "the reference's gradient (z0 held fixed)",
            match gap {
                None => "no step taken".to_string(),
                Some(g) if g <= GRADIENT_TOL => "the same".to_string(),
                Some(g) => format!(
                    "off by {:.0}% of its largest entry (does z0 carry the tape?)",
                    100.0 * g
                ),
            },
            gap.is_some_and(|g| g <= GRADIENT_TOL),
        );
    }
    check.finish()
}

/// How close (relative to the largest entry) a step's gradient must be to the reference's.
const GRADIENT_TOL: f64 = 1e-3;

/// A matrix as exercise 3.4 takes it: runtime-sized rows and columns.
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// A vector as exercise 3.4 takes it (the bias).
pub type Vector = Tensor<(usize,), f32, Dev>;

/// The library's adapted projection for one case of exercise 3.4: a `Linear<I, O>` frozen under
/// a rank-`R` adapter, computed as lab 3's LoRA model computes it (`model::lora`).
fn library_lora<const I: usize, const O: usize, const R: usize>(
    n: usize,
    [x, w, bias, a, b]: &[Vec<f32>; 5],
    alpha: f32,
) -> Vec<f32> {
    use crate::model::lora::{project, Adapter};
    let dev = crate::device::device();
    let lin = dfdx::nn::modules::Linear::<I, O, f32, Dev> {
        weight: dev.tensor_from_vec(w.clone(), (Const, Const)),
        bias: dev.tensor_from_vec(bias.clone(), (Const,)),
    };
    let adapter = Adapter::<I, O, R, f32, Dev> {
        a: dev.tensor_from_vec(a.clone(), (Const, Const)),
        b: dev.tensor_from_vec(b.clone(), (Const, Const)),
    };
    let x = dev.tensor_from_vec(x.clone(), (n, Const::<I>));
    project(&lin, Some((&adapter, Some(alpha / R as f32))), x)
        .map(|y| y.as_vec())
        .unwrap_or_default()
}

/// Exercise 3.4 — `student(x, w, bias, a, b, alpha)` must return one LoRA-adapted projection
/// of the rows `x` `[n, in]`: `x·Wᵀ + bias + (α/r)·(x·Aᵀ)·Bᵀ`, with `W` `[out, in]`, `A`
/// `[r, in]`, `B` `[out, r]` (PEFT's `lora_A`, `lora_B`) and r the rows of A. Compared with
/// the library's adapted layer — the one `kto-lab train --lora` trains.
pub fn lora_linear<F>(student: F) -> CheckResult
where
    F: Fn(Matrix, Matrix, Vector, Matrix, Matrix, f32) -> Matrix,
{
    super::exam::answer(
        "3.4",
        |(n, i, o, r, alpha, [x, w, bias, a, b]): &LoraQuestion| {
            let (n, i, o, r) = (*n, *i, *o, *r);
            let dev = crate::device::device();
            let m = |v: &Vec<f32>, rows: usize, cols: usize| {
                dev.tensor_from_vec(v.clone(), (rows, cols))
            };
            let got = student(
                m(x, n, i),
                m(w, o, i),
                dev.tensor_from_vec(bias.clone(), (o,)),
                m(a, r, i),
                m(b, o, r),
                *alpha,
            );
            if *got.shape() == (n, o) {
                got.as_vec()
            } else {
                // Show the wrong shape rather than reading a mis-shaped tensor.
                vec![f32::NAN; n * o]
            }
        },
        check_lora_linear,
    )
}

/// Exercise 3.4's question: rows n, d_in, d_out, rank r, α, and x, W, bias, A, B (row-major).
type LoraQuestion = (usize, usize, usize, usize, f32, [Vec<f32>; 5]);

pub(crate) fn check_lora_linear(student: &mut dyn Ask<LoraQuestion, Vec<f32>>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 3.4 — a LoRA-adapted projection",
        "the frozen layer `x·Wᵀ + b` plus the correction `(x·Aᵀ)·Bᵀ` scaled by α/r (r = the rows \
         of A): transpose with `.permute::<_, Axes2<1, 0>>()` and broadcast the bias over the rows",
    );
    let mut rng = super::grading::rng(34);
    // (name, n, in, out, r, α, B zero?)
    let cases: [(&str, usize, usize, usize, usize, f32, bool); 5] = [
        (
            "B = 0 (a fresh adapter): exactly the frozen layer",
            3,
            8,
            6,
            2,
            4.0,
            true,
        ),
        ("α = r: the correction unscaled", 4, 8, 6, 2, 2.0, false),
        (
            "α/r = 2 (the seed's 32/16) at the classroom width",
            5,
            32,
            32,
            4,
            8.0,
            false,
        ),
        ("r = 1, a non-square layer", 2, 5, 3, 1, 1.5, false),
        ("α/r = 0.5", 4, 8, 6, 2, 1.0, false),
    ];
    for (name, n, i, o, r, alpha, zero_b) in cases {
        let mut draw = |len: usize, scale: f32| -> Vec<f32> {
            (0..len).map(|_| rng.gen_range(-scale..scale)).collect()
        };
        let data = [
            draw(n * i, 1.0),
            draw(o * i, 0.5),
            draw(o, 0.5),
            draw(r * i, 0.5),
            if zero_b {
                vec![0.0; o * r]
            } else {
                draw(o * r, 0.5)
            },
        ];
        let expected = match (i, o, r) {
            (8, 6, 2) => library_lora::<8, 6, 2>(n, &data, alpha),
            (32, 32, 4) => library_lora::<32, 32, 4>(n, &data, alpha),
            (5, 3, 1) => library_lora::<5, 3, 1>(n, &data, alpha),
            _ => Vec::new(),
        };
        let Some(got) = check.ask(student, &(n, i, o, r, alpha, data)) else {
            continue;
        };
        let e: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
        let g: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        check.close_all(name, &e, &g, 1e-5);
    }
    check.finish()
}

/// Where the student stands in lab 3: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 3", &["3.1", "3.2", "3.3", "3.4"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn solution_row(p: &[u32], c: &[u32], seq_len: usize, pad: u32) -> Row {
        let start = [pad];
        let p = if p.is_empty() { &start[..] } else { p };
        let seq: Vec<u32> = p.iter().chain(c).copied().collect();
        let n = seq.len();
        let mut inputs = vec![pad; seq_len];
        let mut targets = vec![pad; seq_len];
        let mut mask = vec![0.0; seq_len];
        inputs[..n - 1].copy_from_slice(&seq[..n - 1]);
        targets[..n - 1].copy_from_slice(&seq[1..]);
        mask[p.len() - 1..n - 1].fill(1.0);
        (inputs, targets, mask)
    }

    #[test]
    fn row_targets_passes_the_solution_and_fails_an_off_by_one() {
        let r = row_targets(solution_row);
        assert!(r.passed(), "{r}");
        assert!(r.cases.len() >= 8);
        let off_by_one = |p: &[u32], c: &[u32], s: usize, pad: u32| {
            let (i, t, mut m) = solution_row(p, c, s, pad);
            m.rotate_right(1);
            (i, t, m)
        };
        let r = row_targets(off_by_one);
        assert_eq!(r.status, Status::Failed);
        let text = r.to_string();
        assert!(text.contains("FAIL") && text.contains("mask"), "{text}");
        assert!(text.contains("hint:"), "{text}");
        let r = row_targets(|_: &[u32], _: &[u32], _: usize, _: u32| -> Row { todo!() });
        assert_eq!(r.status, Status::NotDone);
    }

    #[test]
    fn reference_row_refuses_what_does_not_fit() {
        assert!(reference_row(&[1, 2], &[3], 1, 0).is_none());
        assert!(reference_row(&[1], &[], 4, 0).is_none());
        assert_eq!(
            reference_row(&[1, 2], &[3], 2, 0),
            Some((vec![1, 2], vec![2, 3], vec![0.0, 1.0]))
        );
    }

    #[test]
    fn sequence_logprobs_passes_the_solution_and_fails_an_unmasked_sum() {
        let r =
            sequence_logprobs(|l: TokenLogps, m: TokenLogps| (l * m).sum::<(usize,), Axis<1>>());
        assert!(r.passed(), "{r}");
        let r = sequence_logprobs(|l: TokenLogps, _m: TokenLogps| l.sum::<(usize,), Axis<1>>());
        assert_eq!(r.status, Status::Failed);
        assert!(r.to_string().contains("all-padding"), "{r}");
        let r = sequence_logprobs(|_: TokenLogps, _: TokenLogps| -> SeqLogps { todo!() });
        assert_eq!(r.status, Status::NotDone);
        // A per-token mean (length-normalized) is a different number.
        let r = sequence_logprobs(|l: TokenLogps, m: TokenLogps| {
            let lengths = m.clone().sum::<(usize,), Axis<1>>().clamp(1.0, f32::MAX);
            (l * m).sum::<(usize,), Axis<1>>() / lengths
        });
        assert_eq!(r.status, Status::Failed, "{r}");
        // A wrong shape (summing over rows) is a failure, not a crash.
        let r =
            sequence_logprobs(|l: TokenLogps, m: TokenLogps| (l * m).sum::<(usize,), Axis<0>>());
        assert_eq!(r.status, Status::Failed);
    }

    /// The solution of exercise 3.3, as a student writes it with dfdx.
    fn solution_step(
        policy: &mut Policy,
        batch: &KtoBatch,
        cfg: &KtoConfig,
    ) -> Result<f32, crate::model::ModelError> {
        let n = batch.len();
        let logps = policy.logprobs(&batch.tokens)?;
        let dev = logps.device().clone();
        let kl_policy = policy.logprobs_no_grad(&batch.kl_tokens)?;
        let kl: f32 = kl_policy
            .iter()
            .zip(&batch.kl_reference_logps)
            .map(|(p, q)| p - q)
            .sum::<f32>()
            / n as f32;
        let z0 = kl.max(0.0);
        let reference = dev.tensor_from_vec(batch.reference_logps.clone(), (n,));
        Ok(finish_step(policy, batch, cfg, (logps - reference) - z0))
    }

    /// The rest of the step once each example's `(log π − log πref) − z0` is in hand: the sign
    /// and weight of its class, 1 − σ, the mean, one optimizer step. Returns the loss.
    fn finish_step(
        policy: &mut Policy,
        batch: &KtoBatch,
        cfg: &KtoConfig,
        shifted: Tensor<(usize,), f32, Dev, OwnedTape<f32, Dev>>,
    ) -> f32 {
        let n = batch.len();
        let dev = shifted.device().clone();
        let per = |up: f32, down: f32| -> Vec<f32> {
            batch
                .labels
                .iter()
                .map(|&l| if l { up } else { down })
                .collect()
        };
        let sign = dev.tensor_from_vec(per(cfg.beta, -cfg.beta), (n,));
        let weight = dev.tensor_from_vec(per(cfg.desirable_weight, cfg.undesirable_weight), (n,));
        let loss = (((shifted * sign).sigmoid().negate() + 1.0) * weight).mean();
        let value = loss.array();
        policy.step(loss.backward());
        value
    }

    #[test]
    fn kto_step_passes_the_solution() {
        let r = kto_step(solution_step);
        assert!(r.passed(), "{r}");
        assert_eq!(r.cases.len(), 18);
    }

    #[test]
    fn kto_step_fails_a_step_that_climbs_or_skips() {
        // The loss right, the update wrong: gradient ascent.
        let ascent = |p: &mut Policy, b: &KtoBatch, c: &KtoConfig| {
            let n = b.len();
            let logps = p.logprobs(&b.tokens)?;
            let dev = logps.device().clone();
            let reference = dev.tensor_from_vec(b.reference_logps.clone(), (n,));
            let (loss, m) = crate::losses::kto(
                logps,
                &reference,
                &dev.tensor_from_vec(p.logprobs_no_grad(&b.kl_tokens)?, (n,)),
                &dev.tensor_from_vec(b.kl_reference_logps.clone(), (n,)),
                &b.labels,
                c,
            )
            .map_err(|e| crate::model::ModelError::Device(e.to_string()))?;
            p.step(loss.negate().backward());
            Ok::<f32, crate::model::ModelError>(m.loss)
        };
        let r = kto_step(ascent);
        assert_eq!(r.status, Status::Failed);
        let text = r.to_string();
        assert!(
            text.contains("FAIL") && text.contains("loss after the step"),
            "{text}"
        );
        // No step at all.
        let r = kto_step(|p: &mut Policy, b: &KtoBatch, c: &KtoConfig| {
            classroom::kto_loss(p, b, c).map(|m| m.loss)
        });
        assert_eq!(r.status, Status::Failed);
        assert!(r.to_string().contains("0 optimizer steps"), "{r}");
        // −log σ instead of 1 − σ: the loss values differ.
        let r = kto_step(|p: &mut Policy, b: &KtoBatch, c: &KtoConfig| {
            classroom::kto_step(p, b, c).map(|l| -(1.0 - l).ln())
        });
        assert_eq!(r.status, Status::Failed);
        let r = kto_step(
            |_: &mut Policy, _: &KtoBatch, _: &KtoConfig| -> Result<f32, String> { todo!() },
        );
        assert_eq!(r.status, Status::NotDone);
    }

    #[test]
    fn kto_step_fails_a_reference_point_that_carries_the_gradient() {
        // Everything right but z0, computed from taped log-probs: the loss value and the
        // loss after the step can still look right; the gradient cannot.
        let taped_z0 = |p: &mut Policy, b: &KtoBatch, c: &KtoConfig| {
            let n = b.len();
            let logps = p.logprobs(&b.tokens)?;
            let kl_policy = p.logprobs(&b.kl_tokens)?;
            let dev = logps.device().clone();
            let kl_reference = dev.tensor_from_vec(b.kl_reference_logps.clone(), (n,));
            let z0 = (kl_policy - kl_reference).mean().relu();
            let reference = dev.tensor_from_vec(b.reference_logps.clone(), (n,));
            let shifted = (logps - reference) - z0.broadcast_like(&(n,));
            Ok::<f32, crate::model::ModelError>(finish_step(p, b, c, shifted))
        };
        let r = kto_step(taped_z0);
        assert_eq!(r.status, Status::Failed, "{r}");
        // Some starting points catch it only by the gradient (where z0 > 0; a clamped z0 has
        // no gradient to carry).
        let failed = r.failed_cases();
        let caught_only_by_the_gradient = failed.iter().any(|c| {
            c.strip_suffix(": gradient").is_some_and(|name| {
                !failed.contains(&format!("{name}: loss after the step").as_str())
                    && !failed.contains(&format!("{name}: loss").as_str())
            })
        });
        assert!(caught_only_by_the_gradient, "{r}");
        assert!(r.to_string().contains("does z0 carry the tape?"), "{r}");
    }

    #[test]
    fn the_drifted_cases_have_a_positive_reference_point_somewhere() {
        // At least one starting point exercises the clamp's "kept" side (z0 > 0).
        let z0s: Vec<f32> = step_cases()
            .iter()
            .enumerate()
            .filter_map(|(i, c)| start(c, 100 + i as u64).map(|s| s.z0))
            .collect();
        assert_eq!(z0s.len(), 6);
        assert!(z0s.iter().any(|&z| z > 0.0), "{z0s:?}");
    }

    /// Exercise 3.4's solution, as the notebook writes it.
    fn solution_lora(
        x: Matrix,
        w: Matrix,
        bias: Vector,
        a: Matrix,
        b: Matrix,
        alpha: f32,
    ) -> Matrix {
        let (n, out) = (x.shape().0, w.shape().0);
        let r = a.shape().0;
        let frozen = x.clone().matmul(w.permute::<_, Axes2<1, 0>>())
            + bias.broadcast_like::<_, Axis<0>>(&(n, out));
        let correction = x
            .matmul(a.permute::<_, Axes2<1, 0>>())
            .matmul(b.permute::<_, Axes2<1, 0>>());
        frozen + correction * (alpha / r as f32)
    }

    #[test]
    fn lora_linear_passes_the_solution_and_fails_a_wrong_scale() {
        let r = lora_linear(solution_lora);
        assert!(r.passed(), "{r}");
        assert_eq!(r.cases.len(), 5);
        // Scaling by α instead of α/r: only the B = 0 and α = r cases pass.
        let by_alpha = |x, w, bias, a: Matrix, b, alpha: f32| {
            let r = a.shape().0 as f32;
            solution_lora(x, w, bias, a, b, alpha * r)
        };
        let r = lora_linear(by_alpha);
        assert!(!r.passed());
        assert_eq!(r.cases.iter().filter(|c| c.ok).count(), 2, "{r}");
        let not_done = lora_linear(|_, _, _, _, _, _| -> Matrix { todo!() });
        assert!(!not_done.passed());
    }
}
