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
