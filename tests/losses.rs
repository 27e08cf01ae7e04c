//! The losses against an independent f64 reference, hand-computed cases, finite-difference
//! gradients, edge cases and typed errors.

mod common;

use kto_lab::losses::plain::{self, UnpairedBatch};
use kto_lab::losses::{ExampleBatch, KtoConfig, LossError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// An independent f64 reference, written the way TRL's code reads: split the batch into chosen and
// rejected, compute each class's losses, concatenate, take the mean.
// ---------------------------------------------------------------------------------------------

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

struct Case {
    policy: Vec<f64>,
    reference: Vec<f64>,
    kl_policy: Vec<f64>,
    kl_reference: Vec<f64>,
    labels: Vec<bool>,
}

fn ref_kto(c: &Case, beta: f64, wd: f64, wu: f64, apo: bool) -> f64 {
    let n_kl = c.kl_policy.len() as f64;
    let kl = c
        .kl_policy
        .iter()
        .zip(&c.kl_reference)
        .map(|(p, r)| p - r)
        .sum::<f64>()
        / n_kl;
    let z0 = if apo { 0.0 } else { kl.max(0.0) };
    let mut losses = Vec::new();
    for i in 0..c.labels.len() {
        let r = c.policy[i] - c.reference[i];
        if c.labels[i] {
            losses.push(wd * (1.0 - sigmoid(beta * (r - z0))));
        }
    }
    for i in 0..c.labels.len() {
        let r = c.policy[i] - c.reference[i];
        if !c.labels[i] {
            losses.push(wu * (1.0 - sigmoid(beta * (z0 - r))));
        }
    }
    losses.iter().sum::<f64>() / losses.len() as f64
}

fn ref_batch_mean(c: &Case, beta: f64, wd: f64, wu: f64) -> f64 {
    let r: Vec<f64> = c
        .policy
        .iter()
        .zip(&c.reference)
        .map(|(p, q)| p - q)
        .collect();
    let b = r.iter().sum::<f64>() / r.len() as f64;
    let class_mean = |good: bool| {
        let xs: Vec<f64> = (0..r.len())
            .filter(|&i| c.labels[i] == good)
            .map(|i| {
                let s = if good { 1.0 } else { -1.0 };
                -sigmoid(s * beta * (r[i] - b)).ln()
            })
            .collect();
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    wd * class_mean(true) + wu * class_mean(false)
}

fn ref_dpo(pc: &[f64], pr: &[f64], rc: &[f64], rr: &[f64], beta: f64) -> f64 {
    (0..pc.len())
        .map(|i| -sigmoid(beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]))).ln())
        .sum::<f64>()
        / pc.len() as f64
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn random_case(seed: u64, n: usize, labels: Option<Vec<bool>>) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = |shift: f64, scale: f64| -> Vec<f64> {
        (0..n)
            .map(|_| shift + scale * (rng.gen::<f64>() * 2.0 - 1.0))
            .collect()
    };
    let policy = v(-20.0, 8.0);
    let reference = v(-20.0, 8.0);
    let kl_policy = v(-30.0, 5.0);
    let kl_reference = v(-30.0, 5.0);
    let labels = labels.unwrap_or_else(|| (0..n).map(|i| i % 3 != 0).collect());
    Case {
        policy,
        reference,
        kl_policy,
        kl_reference,
        labels,
    }
}

struct Owned {
    policy: Vec<f32>,
    reference: Vec<f32>,
    kl_policy: Vec<f32>,
    kl_reference: Vec<f32>,
    labels: Vec<bool>,
}

impl Owned {
    fn of(c: &Case) -> Self {
        Owned {
            policy: f32s(&c.policy),
            reference: f32s(&c.reference),
            kl_policy: f32s(&c.kl_policy),
            kl_reference: f32s(&c.kl_reference),
            labels: c.labels.clone(),
        }
    }
    fn batch(&self) -> UnpairedBatch<'_> {
        UnpairedBatch {
            policy_logps: &self.policy,
            reference_logps: &self.reference,
            labels: &self.labels,
            kl_policy_logps: &self.kl_policy,
            kl_reference_logps: &self.kl_reference,
        }
    }
}

fn cfg(beta: f32, wd: f32, wu: f32) -> KtoConfig {
    KtoConfig {
        beta,
        desirable_weight: wd,
        undesirable_weight: wu,
    }
}

fn close(got: f32, want: f64, tol: f64) -> bool {
    (got as f64 - want).abs() <= tol * want.abs().max(1.0)
}

/// Central finite differences of `f` with respect to each policy log-prob.
fn finite_diff(c: &Case, f: impl Fn(&Case) -> f64) -> Vec<f64> {
    let h = 1e-4;
    (0..c.policy.len())
        .map(|i| {
            let mut plus = Case {
                policy: c.policy.clone(),
                ..clone_case(c)
            };
            let mut minus = Case {
                policy: c.policy.clone(),
                ..clone_case(c)
            };
            plus.policy[i] += h;
            minus.policy[i] -= h;
            (f(&plus) - f(&minus)) / (2.0 * h)
        })
        .collect()
}

fn clone_case(c: &Case) -> Case {
    Case {
        policy: c.policy.clone(),
        reference: c.reference.clone(),
        kl_policy: c.kl_policy.clone(),
        kl_reference: c.kl_reference.clone(),
        labels: c.labels.clone(),
    }
}

fn assert_grads(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 + 1e-3 * w.abs(),
            "gradient [{i}]: autodiff {g}, finite differences {w}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// KTO (paper / TRL)
// ---------------------------------------------------------------------------------------------

#[test]
fn kto_hand_computed_with_clamped_reference_point() {
    // r = [2, -1]; KL pairs give mean(1, -1) = 0 → z0 = 0. β = 1.
    // desirable: 1 − σ(2) = 0.11920292; undesirable: 1 − σ(0 − (−1)) = 1 − σ(1) = 0.26894142.
    let o = Owned {
        policy: vec![-3.0, -6.0],
        reference: vec![-5.0, -5.0],
        kl_policy: vec![-1.0, -3.0],
        kl_reference: vec![-2.0, -2.0],
        labels: vec![true, false],
    };
    let out = plain::kto(&o.batch(), &cfg(1.0, 1.0, 1.0)).unwrap();
    assert!(close(
        out.metrics.loss,
        (0.11920292 + 0.26894142) / 2.0,
        1e-6
    ));
    assert_eq!(out.metrics.kl, 0.0);

    // Now the KL pairs drift negative (mean −1.5): the clamp keeps z0 at 0, same loss.
    let o2 = Owned {
        kl_policy: vec![-3.5, -3.5],
        ..o
    };
    let out2 = plain::kto(&o2.batch(), &cfg(1.0, 1.0, 1.0)).unwrap();
    assert_eq!(out2.metrics.kl, 0.0);
    assert_eq!(out2.metrics.loss, out.metrics.loss);
}

#[test]
fn kto_hand_computed_with_positive_reference_point_and_weights() {
    // r = [3, 0.5]; KL mean = (0.5 + 1.5)/2 = 1 → z0 = 1. β = 0.5, λD = 2, λU = 3.
    // desirable: 2·(1 − σ(0.5·2)) = 2·0.26894142 = 0.53788284
    // undesirable: 3·(1 − σ(0.5·(1 − 0.5))) = 3·(1 − σ(0.25)) = 3·0.43782350 = 1.31347051
    let o = Owned {
        policy: vec![-2.0, -4.5],
        reference: vec![-5.0, -5.0],
        kl_policy: vec![-9.5, -8.5],
        kl_reference: vec![-10.0, -10.0],
        labels: vec![true, false],
    };
    let m = plain::kto(&o.batch(), &cfg(0.5, 2.0, 3.0)).unwrap().metrics;
    assert!(close(m.kl, 1.0, 1e-6));
    assert!(
        close(m.loss, (0.53788284 + 1.31347051) / 2.0, 1e-6),
        "{}",
        m.loss
    );
    // TRL's logged rewards are β·r per class.
    assert!(close(m.rewards_chosen.unwrap(), 1.5, 1e-6));
    assert!(close(m.rewards_rejected.unwrap(), 0.25, 1e-6));
    assert!(close(m.rewards_margins.unwrap(), 1.25, 1e-6));
    assert_eq!(m.logps_chosen, Some(-2.0));
    assert_eq!(m.logps_rejected, Some(-4.5));
    assert_eq!((m.count_chosen, m.count_rejected), (1, 1));
}

#[test]
fn kto_at_zero_reward_costs_half_the_weight() {
    // r = z0 = 0 → every example loses λ·(1 − σ(0)) = λ/2, whatever β.
    let o = Owned {
        policy: vec![-7.0; 4],
        reference: vec![-7.0; 4],
        kl_policy: vec![-9.0; 4],
        kl_reference: vec![-9.0; 4],
        labels: vec![true, true, false, false],
    };
    for beta in [0.01, 0.1, 5.0] {
        let m = plain::kto(&o.batch(), &cfg(beta, 1.0, 2.0))
            .unwrap()
            .metrics;
        assert!(close(m.loss, (0.5 + 0.5 + 1.0 + 1.0) / 4.0, 1e-6));
    }
}

#[test]
fn kto_matches_the_reference_on_random_batches() {
    for seed in 0..20 {
        let n = 1 + seed as usize % 9;
        let c = random_case(seed, n, None);
        let o = Owned::of(&c);
        for (beta, wd, wu) in [(0.1, 1.0, 1.0), (0.5, 1.33, 1.0), (0.05, 1.0, 4.0)] {
            let got = plain::kto(&o.batch(), &cfg(beta as f32, wd as f32, wu as f32)).unwrap();
            let want = ref_kto(&c, beta, wd, wu, false);
            assert!(
                close(got.metrics.loss, want, 1e-5),
                "seed {seed}: {} vs {want}",
                got.metrics.loss
            );
        }
    }
}

#[test]
fn kto_gradients_match_finite_differences() {
    for seed in 0..8 {
        let c = random_case(100 + seed, 7, None);
        let (beta, wd, wu) = (0.3, 1.2, 0.8);
        let got = plain::kto(
            &Owned::of(&c).batch(),
            &cfg(beta as f32, wd as f32, wu as f32),
        )
        .unwrap();
        // z0 is detached: finite differences move only the matched log-probs, never the KL pairs.
        let want = finite_diff(&c, |c| ref_kto(c, beta, wd, wu, false));
        assert_grads(&got.grad_policy_logps, &want);
    }
}

#[test]
fn kto_gradient_direction_pushes_good_up_and_bad_down() {
    let c = random_case(7, 6, Some(vec![true, false, true, false, true, false]));
    let g = plain::kto(&Owned::of(&c).batch(), &KtoConfig::default())
        .unwrap()
        .grad_policy_logps;
    for (i, gi) in g.iter().enumerate() {
        // Gradient descent subtracts the gradient: negative → that log-prob goes up.
        if c.labels[i] {
            assert!(*gi < 0.0, "desirable example {i} has gradient {gi}");
        } else {
            assert!(*gi > 0.0, "undesirable example {i} has gradient {gi}");
        }
    }
}

#[test]
fn kto_one_class_batches_use_that_class_only() {
    let all_good = random_case(3, 5, Some(vec![true; 5]));
    let m = plain::kto(&Owned::of(&all_good).batch(), &cfg(0.1, 2.0, 1.0))
        .unwrap()
        .metrics;
    assert!(close(
        m.loss,
        ref_kto(&all_good, 0.1, 2.0, 1.0, false),
        1e-5
    ));
    assert_eq!(m.count_rejected, 0);
    assert_eq!(m.rewards_rejected, None);
    assert_eq!(m.rewards_margins, None);
    assert_eq!(m.logps_rejected, None);
    assert!(m.loss.is_finite());

    let all_bad = random_case(4, 5, Some(vec![false; 5]));
    let m = plain::kto(&Owned::of(&all_bad).batch(), &cfg(0.1, 1.0, 3.0))
        .unwrap()
        .metrics;
    assert!(close(m.loss, ref_kto(&all_bad, 0.1, 1.0, 3.0, false), 1e-5));
    assert_eq!(m.rewards_chosen, None);
    assert_eq!(m.count_chosen, 0);
}

#[test]
fn kto_weights_scale_each_class() {
    let c = random_case(11, 6, Some(vec![true, true, true, false, false, false]));
    let o = Owned::of(&c);
    let base = plain::kto(&o.batch(), &cfg(0.1, 1.0, 1.0))
        .unwrap()
        .metrics
        .loss;
    let both = plain::kto(&o.batch(), &cfg(0.1, 2.5, 2.5))
        .unwrap()
        .metrics
        .loss;
    assert!(close(both, 2.5 * base as f64, 1e-5));
    let only_d = plain::kto(&o.batch(), &cfg(0.1, 3.0, 1.0))
        .unwrap()
        .metrics
        .loss;
    assert!(close(only_d, ref_kto(&c, 0.1, 3.0, 1.0, false), 1e-5));
    assert!(only_d > base);
}

#[test]
fn kto_saturates_where_the_batch_mean_form_does_not() {
    // A very confident desirable example: r − z0 = 200, β = 1.
    let o = Owned {
        policy: vec![0.0],
        reference: vec![-200.0],
        kl_policy: vec![-1.0],
        kl_reference: vec![-1.0],
        labels: vec![true],
    };
    let out = plain::kto(&o.batch(), &cfg(1.0, 1.0, 1.0)).unwrap();
    assert!(out.metrics.loss.abs() < 1e-30 && out.grad_policy_logps[0].abs() < 1e-30);
}

// ---------------------------------------------------------------------------------------------
// APO-zero
// ---------------------------------------------------------------------------------------------

#[test]
fn apo_zero_is_kto_with_the_reference_point_at_zero() {
    for seed in 0..10 {
        let c = random_case(200 + seed, 6, None);
        let o = Owned::of(&c);
        let got = plain::apo_zero_unpaired(&o.batch(), &cfg(0.2, 1.5, 1.0)).unwrap();
        assert!(close(
            got.metrics.loss,
            ref_kto(&c, 0.2, 1.5, 1.0, true),
            1e-5
        ));
        assert_eq!(got.metrics.kl, 0.0);
        let want = finite_diff(&c, |c| ref_kto(c, 0.2, 1.5, 1.0, true));
        assert_grads(&got.grad_policy_logps, &want);
    }
    // Hand case: r = 1, β = 1, undesirable → σ(1) = 0.73105858.
    let o = Owned {
        policy: vec![-1.0],
        reference: vec![-2.0],
        kl_policy: vec![],
        kl_reference: vec![],
        labels: vec![false],
    };
    let m = plain::apo_zero_unpaired(&o.batch(), &cfg(1.0, 1.0, 1.0))
        .unwrap()
        .metrics;
    assert!(close(m.loss, 0.73105858, 1e-6));
}

// ---------------------------------------------------------------------------------------------
// The seed's batch-mean KTO
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_mean_hand_computed() {
    // r = [1, 3, -2]; b = 2/3. β = 1.
    // desirable: −log σ(1 − 2/3) = 0.54636, −log σ(3 − 2/3) = 0.09264 → L_D = 0.31950
    // undesirable: −log σ(2/3 + 2) = 0.06716 → L_U = 0.06716
    let o = Owned {
        policy: vec![-1.0, 1.0, -4.0],
        reference: vec![-2.0, -2.0, -2.0],
        kl_policy: vec![],
        kl_reference: vec![],
        labels: vec![true, true, false],
    };
    let m = plain::kto_batch_mean(&o.batch(), &cfg(1.0, 1.0, 2.0))
        .unwrap()
        .metrics;
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    let ld = (-s(1.0 / 3.0).ln() - s(7.0 / 3.0).ln()) / 2.0;
    let lu = -s(8.0 / 3.0).ln();
    assert!(close(m.kl_baseline, 2.0 / 3.0, 1e-6));
    assert!(close(m.desirable_loss.unwrap(), ld, 1e-6));
    assert!(close(m.undesirable_loss.unwrap(), lu, 1e-6));
    assert!(close(m.loss, ld + 2.0 * lu, 1e-6));
    assert_eq!(m.desirable_accuracy, Some(1.0));
    assert_eq!(m.undesirable_accuracy, Some(1.0));
}

#[test]
fn batch_mean_matches_reference_and_finite_differences() {
    for seed in 0..10 {
        let c = random_case(300 + seed, 2 + seed as usize % 7, None);
        let got = plain::kto_batch_mean(&Owned::of(&c).batch(), &cfg(0.1, 1.0, 1.5)).unwrap();
        assert!(close(
            got.metrics.loss,
            ref_batch_mean(&c, 0.1, 1.0, 1.5),
            1e-5
        ));
        // The baseline b is detached, like the seed's `.detach()`: finite differences must hold
        // it at its unperturbed value.
        let frozen = clone_case(&c);
        let want = finite_diff(&c, |p| ref_batch_mean_detached(p, &frozen));
        assert_grads(&got.grad_policy_logps, &want);
    }
}

/// The batch-mean loss with the baseline frozen at its value on `frozen` (what `.detach()` means).
fn ref_batch_mean_detached(c: &Case, frozen: &Case) -> f64 {
    let b = frozen
        .policy
        .iter()
        .zip(&frozen.reference)
        .map(|(p, q)| p - q)
        .sum::<f64>()
        / frozen.policy.len() as f64;
    let (beta, wd, wu) = (0.1, 1.0, 1.5);
    let mut d = (0.0, 0usize);
    let mut u = (0.0, 0usize);
    for i in 0..c.labels.len() {
        let r = c.policy[i] - c.reference[i];
        if c.labels[i] {
            d = (d.0 - sigmoid(beta * (r - b)).ln(), d.1 + 1);
        } else {
            u = (u.0 - sigmoid(-beta * (r - b)).ln(), u.1 + 1);
        }
    }
    let m = |(s, n): (f64, usize)| if n == 0 { 0.0 } else { s / n as f64 };
    wd * m(d) + wu * m(u)
}

#[test]
fn batch_mean_one_class_and_negative_baseline() {
    let c = random_case(5, 4, Some(vec![false; 4]));
    let m = plain::kto_batch_mean(&Owned::of(&c).batch(), &cfg(0.1, 1.0, 1.0))
        .unwrap()
        .metrics;
    assert_eq!(m.desirable_loss, None);
    assert_eq!(m.desirable_accuracy, None);
    assert!(close(m.loss, m.undesirable_loss.unwrap() as f64, 1e-6));
    // Unlike the paper's z0, the batch-mean baseline is not clamped: it can be negative.
    let o = Owned {
        policy: vec![-9.0, -8.0],
        reference: vec![-5.0, -5.0],
        kl_policy: vec![],
        kl_reference: vec![],
        labels: vec![true, false],
    };
    let m = plain::kto_batch_mean(&o.batch(), &KtoConfig::default())
        .unwrap()
        .metrics;
    assert!(close(m.kl_baseline, -3.5, 1e-6));
}

// ---------------------------------------------------------------------------------------------
// DPO
// ---------------------------------------------------------------------------------------------

#[test]
fn dpo_hand_computed_and_gradients() {
    // chosen ratio 1, rejected ratio −1, β = 0.5 → logit 1 → loss −log σ(1) = 0.31326169.
    let out = plain::dpo(&[-4.0], &[-6.0], &[-5.0], &[-5.0], 0.5).unwrap();
    assert!(close(out.metrics.loss, 0.31326169, 1e-6));
    assert!(close(out.metrics.rewards_chosen, 0.5, 1e-6));
    assert!(close(out.metrics.rewards_rejected, -0.5, 1e-6));
    assert!(close(out.metrics.rewards_margins, 1.0, 1e-6));
    assert_eq!(out.metrics.rewards_accuracies, 1.0);
    // ∂/∂chosen = −β σ(−1) = −0.13447071, ∂/∂rejected = +0.13447071.
    assert!(close(
        out.grad_policy_chosen_logps[0],
        -0.5 * 0.26894142,
        1e-5
    ));
    assert!(close(
        out.grad_policy_rejected_logps[0],
        0.5 * 0.26894142,
        1e-5
    ));

    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut v =
        |n: usize| -> Vec<f64> { (0..n).map(|_| -20.0 + 10.0 * rng.gen::<f64>()).collect() };
    let (pc, pr, rc, rr) = (v(5), v(5), v(5), v(5));
    let out = plain::dpo(&f32s(&pc), &f32s(&pr), &f32s(&rc), &f32s(&rr), 0.1).unwrap();
    assert!(close(
        out.metrics.loss,
        ref_dpo(&pc, &pr, &rc, &rr, 0.1),
        1e-5
    ));
    let h = 1e-4;
    for i in 0..5 {
        let (mut a, mut b) = (pc.clone(), pc.clone());
        a[i] += h;
        b[i] -= h;
        let want = (ref_dpo(&a, &pr, &rc, &rr, 0.1) - ref_dpo(&b, &pr, &rc, &rr, 0.1)) / (2.0 * h);
        assert_grads(&out.grad_policy_chosen_logps[i..=i], &[want]);
        let (mut a, mut b) = (pr.clone(), pr.clone());
        a[i] += h;
        b[i] -= h;
        let want = (ref_dpo(&pc, &a, &rc, &rr, 0.1) - ref_dpo(&pc, &b, &rc, &rr, 0.1)) / (2.0 * h);
        assert_grads(&out.grad_policy_rejected_logps[i..=i], &[want]);
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_inputs_give_typed_errors_naming_the_field() {
    let good = random_case(1, 3, None);
    let o = Owned::of(&good);

    let empty = Owned {
        policy: vec![],
        reference: vec![],
        labels: vec![],
        ..Owned::of(&good)
    };
    assert_eq!(
        plain::kto(&empty.batch(), &KtoConfig::default()).unwrap_err(),
        LossError::EmptyBatch { field: "labels" }
    );
    assert!(plain::kto_batch_mean(&empty.batch(), &KtoConfig::default()).is_err());
    assert!(plain::apo_zero_unpaired(&empty.batch(), &KtoConfig::default()).is_err());

    let mut nan = Owned::of(&good);
    nan.reference[1] = f32::NAN;
    let err = plain::kto(&nan.batch(), &KtoConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LossError::NonFinite {
                field: "reference_logps",
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "`reference_logps[1]` is NaN: log-probs must be finite numbers"
    );

    let mut inf = Owned::of(&good);
    inf.kl_policy[0] = f32::NEG_INFINITY;
    let err = plain::kto(&inf.batch(), &KtoConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        LossError::NonFinite {
            field: "kl_policy_logps",
            index: 0,
            ..
        }
    ));

    let mut short = Owned::of(&good);
    short.policy.pop();
    let err = plain::kto(&short.batch(), &KtoConfig::default()).unwrap_err();
    assert_eq!(
        err,
        LossError::LengthMismatch {
            field: "policy_logps",
            like: "labels",
            expected: 3,
            got: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "`policy_logps` has 2 values but `labels` has 3: they must line up one per example"
    );

    let mut kl_short = Owned::of(&good);
    kl_short.kl_reference.pop();
    assert!(matches!(
        plain::kto(&kl_short.batch(), &KtoConfig::default()).unwrap_err(),
        LossError::LengthMismatch {
            field: "kl_reference_logps",
            ..
        }
    ));

    for bad in [0.0, -0.1, f32::NAN, f32::INFINITY] {
        let err = plain::kto(&o.batch(), &cfg(bad, 1.0, 1.0)).unwrap_err();
        assert!(matches!(err, LossError::BadParameter { name: "beta", .. }));
        let err = plain::kto(&o.batch(), &cfg(0.1, 1.0, bad)).unwrap_err();
        assert!(matches!(
            err,
            LossError::BadParameter {
                name: "undesirable_weight",
                ..
            }
        ));
    }

    assert!(matches!(
        plain::dpo(&[], &[], &[], &[], 0.1).unwrap_err(),
        LossError::EmptyBatch { .. }
    ));
    assert!(matches!(
        plain::dpo(&[-1.0, -2.0], &[-1.0], &[-1.0, -1.0], &[-1.0, -1.0], 0.1).unwrap_err(),
        LossError::LengthMismatch {
            field: "policy_rejected_logps",
            ..
        }
    ));
    assert!(matches!(
        plain::dpo(&[-1.0], &[-1.0], &[f32::NAN], &[-1.0], 0.1).unwrap_err(),
        LossError::NonFinite {
            field: "reference_chosen_logps",
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// Snapshots of what lab 1's solution prints for its fixed batch
// ---------------------------------------------------------------------------------------------

#[test]
fn lab1_metrics_snapshot() {
    let example = ExampleBatch::generate(8, 42);
    let b = example.as_batch();
    let cfg = KtoConfig::default();
    insta::assert_json_snapshot!(
        "lab1_metrics",
        serde_json::json!({
            "batch": common::rounded(&example, 4),
            "kto": common::rounded(&plain::kto(&b, &cfg).unwrap(), 5),
            "kto_batch_mean": common::rounded(&plain::kto_batch_mean(&b, &cfg).unwrap(), 5),
            "apo_zero_unpaired": common::rounded(&plain::apo_zero_unpaired(&b, &cfg).unwrap(), 5),
        })
    );
}

#[test]
fn example_batch_is_seeded_and_has_a_positive_kl_estimate() {
    assert_eq!(ExampleBatch::generate(8, 42), ExampleBatch::generate(8, 42));
    assert_ne!(ExampleBatch::generate(8, 42), ExampleBatch::generate(8, 43));
    let b = ExampleBatch::generate(8, 42);
    assert_eq!(b.labels.iter().filter(|&&l| l).count(), 4);
    let z0 =
        kto_lab::losses::kto::reference_point(&b.kl_policy_logps, &b.kl_reference_logps).unwrap();
    assert!(z0 > 0.0, "z0 = {z0}");
}
