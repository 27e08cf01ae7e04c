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
    let r = sequence_logprobs(|l: TokenLogps, m: TokenLogps| (l * m).sum::<(usize,), Axis<1>>());
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
    let r = sequence_logprobs(|l: TokenLogps, m: TokenLogps| (l * m).sum::<(usize,), Axis<0>>());
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
    let r =
        kto_step(|_: &mut Policy, _: &KtoBatch, _: &KtoConfig| -> Result<f32, String> { todo!() });
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
fn solution_lora(x: Matrix, w: Matrix, bias: Vector, a: Matrix, b: Matrix, alpha: f32) -> Matrix {
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
