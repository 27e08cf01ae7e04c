//! Exercise 3.3's check: one KTO step by hand — the loss, the gradient (and where it stops), the
//! optimizer step — against the library's on the same start.

use super::*;

/// One starting point of exercise 3.3.
pub(super) struct StepCase {
    pub(super) name: &'static str,
    pub(super) labels: Vec<bool>,
    pub(super) cfg: KtoConfig,
    /// Reference steps taken before the checked one, so the policy has drifted.
    pub(super) warmup_steps: usize,
}

pub(super) fn step_cases() -> Vec<StepCase> {
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
pub(super) fn random_examples(labels: &[bool], seed: u64) -> Vec<Example> {
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
pub(super) fn loss_at(policy: &Policy, batch: &KtoBatch, cfg: &KtoConfig, z0: f32) -> f64 {
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
pub(super) fn gradient_gap(reference: &Policy, mine: Option<&[f32]>) -> Option<f64> {
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
pub(super) struct Start {
    pub(super) policy: Policy,
    pub(super) batch: KtoBatch,
    pub(super) z0: f32,
    pub(super) before: f64,
}

pub(super) fn start(case: &StepCase, seed: u64) -> Option<Start> {
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
    crate::checks::exam::answer(
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
pub(super) fn flat_grads(policy: &Policy) -> Option<Vec<f32>> {
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
        let seed = crate::checks::grading::seed(100 + i as u64);
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
pub(super) const GRADIENT_TOL: f64 = 1e-3;
