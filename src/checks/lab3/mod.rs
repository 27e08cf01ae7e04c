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

mod lora;
mod step;

pub use lora::*;
pub use step::*;

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

/// Where the student stands in lab 3: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 3", &["3.1", "3.2", "3.3", "3.4"])
}

#[cfg(test)]
mod tests;
