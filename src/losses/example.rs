//! A made-up but plausible batch of log-probs, seeded, for lab 1, the tour and the tests.
//!
//! Real log-probs come from a model (lab 3). Here we fake the numbers a policy that has drifted a
//! little from its reference would produce: thumbs-up completions slightly more likely than under
//! the reference, thumbs-down ones slightly less, and mismatched pairs a bit more likely overall
//! (a positive KL estimate, so the paper's z0 is not clamped away).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::plain::UnpairedBatch;
use std::fmt;

/// Owned log-probs and labels for one unpaired batch, including its mismatched (KL) pairs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExampleBatch {
    /// log πθ(y_i|x_i).
    pub policy_logps: Vec<f32>,
    /// log πref(y_i|x_i).
    pub reference_logps: Vec<f32>,
    /// First half thumbs up, second half thumbs down.
    pub labels: Vec<bool>,
    /// log πθ(y_(i+1)|x_i).
    pub kl_policy_logps: Vec<f32>,
    /// log πref(y_(i+1)|x_i).
    pub kl_reference_logps: Vec<f32>,
}

impl ExampleBatch {
    /// `n` examples from the given seed; the same seed always gives the same numbers.
    pub fn generate(n: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal =
            |mean: f32, std: f32| Normal::new(mean, std).expect("std is a positive constant");
        let (matched, mismatched) = (normal(-20.0, 5.0), normal(-35.0, 5.0));
        let (up, down, drift) = (normal(0.8, 1.0), normal(-0.8, 1.0), normal(0.3, 0.5));
        let labels: Vec<bool> = (0..n).map(|i| i < n.div_ceil(2)).collect();
        let mut b = ExampleBatch {
            labels,
            policy_logps: Vec::with_capacity(n),
            reference_logps: Vec::with_capacity(n),
            kl_policy_logps: Vec::with_capacity(n),
            kl_reference_logps: Vec::with_capacity(n),
        };
        for i in 0..n {
            let reference: f32 = matched.sample(&mut rng);
            let shift = if b.labels[i] {
                up.sample(&mut rng)
            } else {
                down.sample(&mut rng)
            };
            b.reference_logps.push(reference);
            b.policy_logps.push(reference + shift);
            let kl_reference: f32 = mismatched.sample(&mut rng);
            b.kl_reference_logps.push(kl_reference);
            b.kl_policy_logps
                .push(kl_reference + drift.sample(&mut rng));
        }
        b
    }

    /// A hand-made batch from log-ratios: `log_ratios[i]` = r_i = log πθ(y_i|x_i) − log πref(y_i|x_i)
    /// with thumbs up/down `labels[i]`, and `kl_log_ratios[j]` the log-ratio of the j-th mismatched
    /// pair. The log-probs themselves are made up around a fixed reference (−20 for matched
    /// completions, −35 for mismatched ones); every loss only looks at the differences.
    ///
    /// Lengths are not checked here: the losses report a mismatch, naming the field.
    pub fn from_log_ratios(log_ratios: &[f32], labels: &[bool], kl_log_ratios: &[f32]) -> Self {
        const MATCHED: f32 = -20.0;
        const MISMATCHED: f32 = -35.0;
        ExampleBatch {
            policy_logps: log_ratios.iter().map(|r| MATCHED + r).collect(),
            reference_logps: vec![MATCHED; log_ratios.len()],
            labels: labels.to_vec(),
            kl_policy_logps: kl_log_ratios.iter().map(|r| MISMATCHED + r).collect(),
            kl_reference_logps: vec![MISMATCHED; kl_log_ratios.len()],
        }
    }

    /// r_i = log πθ(y_i|x_i) − log πref(y_i|x_i) for every example.
    pub fn log_ratios(&self) -> Vec<f32> {
        self.policy_logps
            .iter()
            .zip(&self.reference_logps)
            .map(|(p, q)| p - q)
            .collect()
    }

    /// Borrows the batch in the shape the plain-data losses take.
    pub fn as_batch(&self) -> UnpairedBatch<'_> {
        UnpairedBatch {
            policy_logps: &self.policy_logps,
            reference_logps: &self.reference_logps,
            labels: &self.labels,
            kl_policy_logps: &self.kl_policy_logps,
            kl_reference_logps: &self.kl_reference_logps,
        }
    }
}

/// One line per example: label, policy and reference log-probs, the log-ratio r, and the
/// mismatched pair's log-ratio.
impl fmt::Display for ExampleBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "   #  label   log πθ   log πref        r   mismatched r")?;
        for (i, &up) in self.labels.iter().enumerate() {
            let cell = |v: &[f32]| v.get(i).map_or("—".to_string(), |x| format!("{x:.2}"));
            let kl = match (self.kl_policy_logps.get(i), self.kl_reference_logps.get(i)) {
                (Some(p), Some(q)) => format!("{:+.3}", p - q),
                _ => "—".to_string(),
            };
            let r = match (self.policy_logps.get(i), self.reference_logps.get(i)) {
                (Some(p), Some(q)) => format!("{:+.3}", p - q),
                _ => "—".to_string(),
            };
            writeln!(
                f,
                "  {i:>2}  {:<5} {:>8} {:>9} {r:>8}   {kl:>12}",
                if up { "up" } else { "down" },
                cell(&self.policy_logps),
                cell(&self.reference_logps),
            )?;
        }
        Ok(())
    }
}

impl ExampleBatch {
    /// evcxr's rich display: the [`Display`](fmt::Display) table as plain text.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/plain\n{self}EVCXR_END_CONTENT");
    }
}
