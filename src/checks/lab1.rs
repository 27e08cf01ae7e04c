//! Checks for lab 1 — the KTO loss.
//!
//! | exercise | check | the student writes |
//! |---|---|---|
//! | 1.1 | [`kto_batch_mean`] | the seed's simplified loss on slices: batch-mean baseline, −log σ per class |
//! | 1.2 | [`reference_point`] | z0 = max(0, mean log-ratio of the mismatched pairs) |
//! | 1.3 | [`kto_tensor`] | the paper's loss on dfdx tensors, with the gradient tape |
//!
//! Each check compares the student's function with the library's reference
//! ([`crate::losses`]) on fixed batches (the lab's example, one-class batches, a negative
//! baseline, a negative KL estimate, a far-off example) and on seeded random batches.
//! The generic entry points only turn the student's function into a `&dyn Fn` and call a
//! non-generic body, so a notebook cell compiles just that shim.

use dfdx::prelude::*;
use rand::Rng;

use super::{fmt_num, Ask, CheckResult, Checker};
use crate::losses::kto::reference_point as reference_z0;
use crate::losses::plain;
use crate::losses::{Batch, ExampleBatch, KtoConfig, Scalar};

/// Tolerance of the loss and gradient comparisons (absolute, or relative to the expected value).
const TOL: f64 = 1e-5;

/// Exercise 1.1's signature: policy log-probs, reference log-probs, labels, config → loss
/// (`None` for an empty batch).
pub type KtoBatchMeanFn<'a> = dyn Fn(&[f32], &[f32], &[bool], &KtoConfig) -> Option<f32> + 'a;

/// Exercise 1.2's signature: mismatched-pair log-probs under policy and reference → z0
/// (`None` for no pairs).
pub type ReferencePointFn<'a> = dyn Fn(&[f32], &[f32]) -> Option<f32> + 'a;

/// A policy batch on the CPU that carries a gradient tape.
pub type Traced = Batch<Cpu, OwnedTape<f32, Cpu>>;

/// Exercise 1.3's signature: the paper's KTO on tensors, returning the scalar loss with its tape.
pub type KtoTensorFn<'a> = dyn Fn(
        Traced,
        &Batch<Cpu>,
        &Batch<Cpu>,
        &Batch<Cpu>,
        &[bool],
        &KtoConfig,
    ) -> Scalar<Cpu, OwnedTape<f32, Cpu>>
    + 'a;

/// A named test batch with its config.
struct Input {
    name: String,
    batch: ExampleBatch,
    cfg: KtoConfig,
}

fn cfg(beta: f32, desirable_weight: f32, undesirable_weight: f32) -> KtoConfig {
    KtoConfig {
        beta,
        desirable_weight,
        undesirable_weight,
    }
}

/// The fixed batches every lab 1 check runs, then `random` seeded random ones.
fn inputs(random: usize) -> Vec<Input> {
    let default = KtoConfig::default();
    let input = |name: &str, batch: ExampleBatch, cfg: KtoConfig| Input {
        name: name.to_string(),
        batch,
        cfg,
    };
    let mut v = vec![
        input(
            "the lab's batch (8 examples, seed 42)",
            ExampleBatch::generate(8, 42),
            default,
        ),
        input(
            "same batch, β = 0.5, λD = 1.33",
            ExampleBatch::generate(8, 42),
            cfg(0.5, 1.33, 1.0),
        ),
        input(
            "one class: all thumbs up",
            ExampleBatch::from_log_ratios(&[0.8, 1.5, -0.3], &[true; 3], &[0.4, 0.1, 0.2]),
            default,
        ),
        input(
            "one class: all thumbs down",
            ExampleBatch::from_log_ratios(&[-0.8, 0.4, -2.0, -1.1], &[false; 4], &[0.3; 4]),
            cfg(0.2, 1.0, 2.0),
        ),
        input(
            "imbalanced: 1 up, 5 down, λU = 0.2",
            ExampleBatch::from_log_ratios(
                &[0.6, -1.0, -0.2, -3.0, 0.5, -1.7],
                &[true, false, false, false, false, false],
                &[0.5, 0.1, 0.3, 0.2, 0.0, 0.4],
            ),
            cfg(0.1, 1.0, 0.2),
        ),
        input(
            "negative batch mean and negative KL estimate",
            ExampleBatch::from_log_ratios(
                &[0.2, -0.1, -3.0, -4.0, -2.5, -3.5],
                &[true, true, false, false, false, false],
                &[-0.6, -0.2, -0.4, 0.1, -0.5, -0.3],
            ),
            default,
        ),
        input(
            "a far-off example (β·r ≈ −150)",
            ExampleBatch::from_log_ratios(&[-300.0, 1.0, -0.5], &[true, true, false], &[1.0; 3]),
            cfg(0.5, 1.0, 1.0),
        ),
        input(
            "a single example",
            ExampleBatch::from_log_ratios(&[0.7], &[false], &[0.25]),
            default,
        ),
    ];
    let mut rng = super::grading::rng(0x6b74_6f31);
    for k in 0..random {
        let n = rng.gen_range(1..=12);
        let batch = ExampleBatch {
            policy_logps: (0..n).map(|_| rng.gen_range(-40.0..-5.0)).collect(),
            reference_logps: (0..n).map(|_| rng.gen_range(-40.0..-5.0)).collect(),
            labels: (0..n).map(|_| rng.gen_bool(0.5)).collect(),
            kl_policy_logps: (0..n).map(|_| rng.gen_range(-60.0..-20.0)).collect(),
            kl_reference_logps: (0..n).map(|_| rng.gen_range(-60.0..-20.0)).collect(),
        };
        let c = cfg(
            rng.gen_range(0.01..1.0),
            rng.gen_range(0.5..2.0),
            rng.gen_range(0.5..2.0),
        );
        v.push(input(
            &format!("random batch #{} (n = {n})", k + 1),
            batch,
            c,
        ));
    }
    v
}

/// Records a case comparing two optional numbers (`None` = no result, e.g. an empty batch).
pub(crate) fn close_opt(
    check: &mut Checker,
    name: impl Into<String>,
    expected: Option<f64>,
    got: Option<f64>,
    tol: f64,
) {
    match (expected, got) {
        (Some(e), Some(g)) => check.close(name, e, g, tol),
        _ => {
            let show =
                |v: Option<f64>| v.map_or("None".to_string(), |x| format!("Some({})", fmt_num(x)));
            check.case(
                name,
                show(expected),
                show(got),
                expected.is_none() && got.is_none(),
            );
        }
    }
}

/// Exercise 1.1 — the simplified (batch-mean) KTO loss of the seed notebook, on slices.
///
/// The student's `f(policy_logps, reference_logps, labels, cfg)` must return
/// `λD·L_D + λU·L_U` (an absent class contributes 0), with the baseline b = mean r over the
/// whole batch, or `None` for an empty batch. Compared with [`plain::kto_batch_mean`].
pub fn kto_batch_mean(
    f: impl Fn(&[f32], &[f32], &[bool], &KtoConfig) -> Option<f32>,
) -> CheckResult {
    super::exam::answer(
        "1.1",
        |(p, r, labels, cfg): &BatchQuestion| f(p, r, labels, cfg),
        check_kto_batch_mean,
    )
}

/// Exercise 1.1's question: policy and reference log-probs, labels, config.
type BatchQuestion = (Vec<f32>, Vec<f32>, Vec<bool>, KtoConfig);

pub(crate) fn check_kto_batch_mean(f: &mut dyn Ask<BatchQuestion, Option<f32>>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 1.1 — simplified KTO (batch-mean baseline)",
        "b is the mean of r = policy − reference over the WHOLE batch (both classes); each class \
         is averaged on its own (L_D over thumbs up, L_U over thumbs down) before weighting; an \
         absent class adds 0; −log σ(x) must stay finite for x ≈ −150 (compute in f64, or use \
         kto_lab::math::log_sigmoid); an empty batch gives None.",
    );
    for input in inputs(6) {
        let b = input.batch;
        let expected = plain::kto_batch_mean(&b.as_batch(), &input.cfg)
            .ok()
            .map(|o| f64::from(o.metrics.loss));
        let q = (b.policy_logps, b.reference_logps, b.labels, input.cfg);
        let Some(got) = check.ask(f, &q) else {
            continue;
        };
        close_opt(&mut check, input.name, expected, got.map(f64::from), TOL);
    }
    let empty = (vec![], vec![], vec![], KtoConfig::default());
    if let Some(got) = check.ask(f, &empty) {
        close_opt(&mut check, "empty batch", None, got.map(f64::from), TOL);
    }
    check.finish()
}

/// Exercise 1.2 — the reference point z0 = max(0, mean of the mismatched pairs' log-ratios).
///
/// The student's `f(kl_policy_logps, kl_reference_logps)` must return z0, or `None` when there
/// are no pairs. Compared with [`crate::losses::kto::reference_point`].
pub fn reference_point(f: impl Fn(&[f32], &[f32]) -> Option<f32>) -> CheckResult {
    super::exam::answer(
        "1.2",
        |(p, r): &(Vec<f32>, Vec<f32>)| f(p, r),
        check_reference_point,
    )
}

pub(crate) fn check_reference_point(
    f: &mut dyn Ask<(Vec<f32>, Vec<f32>), Option<f32>>,
) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 1.2 — the reference point z0",
        "z0 = max(0, mean over the pairs of (policy − reference)): the mean of the differences, \
         then clamped at 0 (a KL divergence is never negative); no pairs gives None.",
    );
    let mut cases: Vec<(String, Vec<f32>, Vec<f32>)> = inputs(0)
        .into_iter()
        .map(|i| (i.name, i.batch.kl_policy_logps, i.batch.kl_reference_logps))
        .collect();
    cases.push((
        "estimate exactly 0".into(),
        vec![-30.0, -31.5],
        vec![-30.5, -31.0],
    ));
    cases.push(("one pair, negative".into(), vec![-42.0], vec![-41.0]));
    let mut rng = super::grading::rng(0x7a30);
    for k in 0..6 {
        let n = rng.gen_range(1..=10);
        let reference: Vec<f32> = (0..n).map(|_| rng.gen_range(-60.0..-20.0)).collect();
        // Centre the drift near 0 so that about half the random cases clamp.
        let policy = reference
            .iter()
            .map(|r| r + rng.gen_range(-1.0..1.0))
            .collect();
        cases.push((
            format!("random pairs #{} (n = {n})", k + 1),
            policy,
            reference,
        ));
    }
    cases.push(("no pairs".into(), vec![], vec![]));
    for (name, policy, reference) in cases {
        let expected = reference_z0(&policy, &reference).ok().map(f64::from);
        let Some(got) = check.ask(f, &(policy, reference)) else {
            continue;
        };
        close_opt(&mut check, name, expected, got.map(f64::from), TOL);
    }
    check.finish()
}

/// Exercise 1.3 — the paper's KTO loss on dfdx tensors, with the gradient tape.
///
/// The student's `f(policy_logps, reference_logps, kl_policy_logps, kl_reference_logps,
/// labels, cfg)` gets the policy log-probs carrying a tape and must return the scalar loss
/// still carrying it. The check compares the loss *and* ∂loss/∂policy (from `backward()`)
/// with [`plain::kto`]. Batches are never empty here.
pub fn kto_tensor(
    f: impl Fn(
        Traced,
        &Batch<Cpu>,
        &Batch<Cpu>,
        &Batch<Cpu>,
        &[bool],
        &KtoConfig,
    ) -> Scalar<Cpu, OwnedTape<f32, Cpu>>,
) -> CheckResult {
    super::exam::answer(
        "1.3",
        |q: &TensorQuestion| answer_kto_tensor(&f, q),
        check_kto_tensor,
    )
}

/// Exercise 1.3's question: policy, reference, KL-pair policy and reference log-probs, labels,
/// config.
type TensorQuestion = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<bool>, KtoConfig);

/// The loss the student's function returns and its gradient with respect to the policy
/// log-probs (from `backward()` on the returned loss).
fn answer_kto_tensor(f: &KtoTensorFn, q: &TensorQuestion) -> (f32, Vec<f32>) {
    let (p, r, klp, klr, labels, cfg) = q;
    let dev = Cpu::default();
    let tensor = |v: &[f32]| dev.tensor_from_vec(v.to_vec(), (v.len(),));
    let policy = tensor(p);
    let loss = f(
        policy.leaky_trace(),
        &tensor(r),
        &tensor(klp),
        &tensor(klr),
        labels,
        cfg,
    );
    let value = loss.array();
    let grads = loss.backward();
    (value, grads.get(&policy).as_vec())
}

pub(crate) fn check_kto_tensor(f: &mut dyn Ask<TensorQuestion, (f32, Vec<f32>)>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 1.3 — KTO as in the paper, on tensors",
        "z0 = max(0, mean(kl_policy − kl_reference)) as a plain f32 (no tape: it is not trained \
         through); per example β(r − z0) for thumbs up and β(z0 − r) for thumbs down; loss = \
         mean over ALL examples of λ·(1 − σ(·)). Keep policy_logps as the LEFT operand so the \
         tape flows to the loss.",
    );
    for input in inputs(4) {
        let b = input.batch;
        let Ok(expected) = plain::kto(&b.as_batch(), &input.cfg) else {
            continue;
        };
        let q = (
            b.policy_logps,
            b.reference_logps,
            b.kl_policy_logps,
            b.kl_reference_logps,
            b.labels,
            input.cfg,
        );
        let Some((value, grad)) = check.ask(f, &q) else {
            continue;
        };
        check.close(
            format!("{}: loss", input.name),
            f64::from(expected.metrics.loss),
            f64::from(value),
            TOL,
        );
        check.close_all(
            format!("{}: ∂loss/∂policy", input.name),
            &to_f64(&expected.grad_policy_logps),
            &to_f64(&grad),
            TOL,
        );
    }
    check.finish()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Where the student stands in lab 1: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 1", &["1.1", "1.2", "1.3"])
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use crate::math::log_sigmoid;

    /// Exercise 1.1 written out by hand, as the solution notebook does.
    fn solution_1_1(p: &[f32], q: &[f32], labels: &[bool], cfg: &KtoConfig) -> Option<f32> {
        if labels.is_empty() {
            return None;
        }
        let r: Vec<f64> = p.iter().zip(q).map(|(a, b)| f64::from(a - b)).collect();
        let b = r.iter().sum::<f64>() / r.len() as f64;
        let beta = f64::from(cfg.beta);
        let class_mean = |up: bool| {
            let xs: Vec<f64> = r
                .iter()
                .zip(labels)
                .filter(|(_, &l)| l == up)
                .map(|(x, _)| {
                    let m = if up { beta * (x - b) } else { -beta * (x - b) };
                    -log_sigmoid(m)
                })
                .collect();
            if xs.is_empty() {
                0.0
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        let loss = f64::from(cfg.desirable_weight) * class_mean(true)
            + f64::from(cfg.undesirable_weight) * class_mean(false);
        Some(loss as f32)
    }

    fn solution_1_2(p: &[f32], q: &[f32]) -> Option<f32> {
        if p.is_empty() {
            return None;
        }
        let mean = p.iter().zip(q).map(|(a, b)| f64::from(a - b)).sum::<f64>() / p.len() as f64;
        Some(mean.max(0.0) as f32)
    }

    fn solution_1_3(
        policy: Traced,
        reference: &Batch<Cpu>,
        kl_policy: &Batch<Cpu>,
        kl_reference: &Batch<Cpu>,
        labels: &[bool],
        cfg: &KtoConfig,
    ) -> Scalar<Cpu, OwnedTape<f32, Cpu>> {
        let z0 = (kl_policy.clone() - kl_reference.clone())
            .mean()
            .array()
            .max(0.0);
        let dev = policy.device().clone();
        let n = labels.len();
        let pick = |up: f32, down: f32| -> Vec<f32> {
            labels.iter().map(|&l| if l { up } else { down }).collect()
        };
        let signed_beta = dev.tensor_from_vec(pick(cfg.beta, -cfg.beta), (n,));
        let weight = dev.tensor_from_vec(pick(cfg.desirable_weight, cfg.undesirable_weight), (n,));
        let logits = ((policy - reference.clone()) - z0) * signed_beta;
        ((logits.sigmoid().negate() + 1.0) * weight).mean()
    }

    #[test]
    fn the_solutions_pass() {
        for r in [
            kto_batch_mean(solution_1_1),
            reference_point(solution_1_2),
            kto_tensor(solution_1_3),
        ] {
            assert_eq!(r.status, Status::Passed, "{r}");
            assert!(r.cases.len() >= 10, "{r}");
        }
    }

    #[test]
    fn todo_is_not_done_yet() {
        let r = kto_batch_mean(|_, _, _, _| todo!("average the log-ratios"));
        assert_eq!(r.status, Status::NotDone);
        let r = reference_point(|_, _| todo!());
        assert_eq!(r.status, Status::NotDone);
        let r = kto_tensor(|_, _, _, _, _, _| todo!("the paper's loss"));
        assert_eq!(r.status, Status::NotDone);
        assert!(r.to_string().contains("⏳ not done yet"));
    }

    #[test]
    fn a_mean_over_all_examples_fails_the_imbalanced_and_weighted_cases() {
        // A common slip: one mean over every example instead of one mean per class.
        let wrong = |p: &[f32], q: &[f32], labels: &[bool], cfg: &KtoConfig| -> Option<f32> {
            if labels.is_empty() {
                return None;
            }
            let r: Vec<f64> = p.iter().zip(q).map(|(a, b)| f64::from(a - b)).collect();
            let b = r.iter().sum::<f64>() / r.len() as f64;
            let beta = f64::from(cfg.beta);
            let total: f64 = r
                .iter()
                .zip(labels)
                .map(|(x, &up)| -log_sigmoid(if up { beta * (x - b) } else { -beta * (x - b) }))
                .sum();
            Some((total / r.len() as f64) as f32)
        };
        let r = kto_batch_mean(wrong);
        assert_eq!(r.status, Status::Failed);
        let failed = r.failed_cases();
        assert!(
            failed.contains(&"imbalanced: 1 up, 5 down, λU = 0.2"),
            "{failed:?}"
        );
        let text = r.to_string();
        assert!(
            text.contains("FAIL") && text.contains("hint: b is the mean"),
            "{text}"
        );
        assert!(r.html().contains("<td>❌</td>"));
    }

    #[test]
    fn naive_f32_log_sigmoid_fails_only_the_far_off_example() {
        // Everything in f32 with ln(σ(x)): σ(−150) underflows to 0 and the loss becomes inf.
        let naive = |p: &[f32], q: &[f32], labels: &[bool], cfg: &KtoConfig| -> Option<f32> {
            if labels.is_empty() {
                return None;
            }
            let r: Vec<f32> = p.iter().zip(q).map(|(a, b)| a - b).collect();
            let b = r.iter().sum::<f32>() / r.len() as f32;
            let class_mean = |up: bool| {
                let xs: Vec<f32> = r
                    .iter()
                    .zip(labels)
                    .filter(|(_, &l)| l == up)
                    .map(|(x, _)| {
                        let m = if up {
                            cfg.beta * (x - b)
                        } else {
                            -cfg.beta * (x - b)
                        };
                        -(1.0 / (1.0 + (-m).exp())).ln()
                    })
                    .collect();
                if xs.is_empty() {
                    0.0
                } else {
                    xs.iter().sum::<f32>() / xs.len() as f32
                }
            };
            Some(
                cfg.desirable_weight * class_mean(true)
                    + cfg.undesirable_weight * class_mean(false),
            )
        };
        let r = kto_batch_mean(naive);
        let failed = r.failed_cases();
        assert_eq!(failed, ["a far-off example (β·r ≈ −150)"], "{r}");
    }

    #[test]
    fn forgetting_the_clamp_fails_the_negative_cases() {
        let r = reference_point(|p, q| {
            if p.is_empty() {
                return None;
            }
            Some(p.iter().zip(q).map(|(a, b)| a - b).sum::<f32>() / p.len() as f32)
        });
        assert_eq!(r.status, Status::Failed);
        assert!(
            r.cases
                .iter()
                .any(|c| !c.ok && c.name == "one pair, negative"),
            "{r}"
        );
        // Returning 0.0 instead of None for no pairs fails the last case.
        let r = reference_point(|p, q| solution_1_2(p, q).or(Some(0.0)));
        let failed = r.failed_cases();
        assert_eq!(failed, ["no pairs"]);
        assert_eq!(r.cases.last().unwrap().got, "Some(0)");
    }

    #[test]
    fn the_simplified_loss_on_tensors_fails_with_loss_and_gradient_rows() {
        // −log σ instead of 1 − σ, and no z0: wrong value and wrong gradient.
        let wrong = |policy: Traced,
                     reference: &Batch<Cpu>,
                     _: &Batch<Cpu>,
                     _: &Batch<Cpu>,
                     labels: &[bool],
                     cfg: &KtoConfig| {
            let dev = policy.device().clone();
            let s: Vec<f32> = labels
                .iter()
                .map(|&l| if l { cfg.beta } else { -cfg.beta })
                .collect();
            let s = dev.tensor_from_vec(s, (labels.len(),));
            crate::losses::log_sigmoid((policy - reference.clone()) * s)
                .negate()
                .mean()
        };
        let r = kto_tensor(wrong);
        assert_eq!(r.status, Status::Failed);
        assert!(r.cases.iter().any(|c| !c.ok && c.name.ends_with(": loss")));
        assert!(r
            .cases
            .iter()
            .any(|c| !c.ok && c.name.ends_with("∂loss/∂policy")));
    }

    #[test]
    fn a_panic_is_a_failed_case_not_a_crash() {
        let r = kto_tensor(|_, _, _, _, _, _| panic!("shape mismatch"));
        assert_eq!(r.status, Status::Failed);
        assert!(r.cases[0].got.contains("shape mismatch"));
    }
}
