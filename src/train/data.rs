//! Training examples as token ids, and a seeded, epoch-shuffling batch sampler.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One unpaired example: prompt and completion token ids (the completion ends with EOS when the
/// model should learn to stop), and a thumbs up (`true`) or down. SFT ignores the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Completion token ids.
    pub completion: Vec<u32>,
    /// Desirable?
    pub label: bool,
}

/// One preference pair for DPO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// The preferred completion.
    pub chosen: Vec<u32>,
    /// The dispreferred completion.
    pub rejected: Vec<u32>,
}

/// Draws batches of indices into a dataset of `len` items: each epoch visits every item once,
/// in a fresh seeded order. Batches never straddle two epochs, so within an epoch every item is
/// seen exactly once (the last batch of an epoch may be smaller).
#[derive(Debug, Clone)]
pub struct Batcher {
    order: Vec<usize>,
    pos: usize,
    rng: ChaCha8Rng,
    epoch: usize,
}

impl Batcher {
    /// A sampler over `len` items seeded with `seed`.
    pub fn new(len: usize, seed: u64) -> Self {
        let mut b = Batcher {
            order: (0..len).collect(),
            pos: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            epoch: 0,
        };
        b.order.shuffle(&mut b.rng);
        b
    }

    /// The next batch of at most `size` indices (empty only for an empty dataset).
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        if self.order.is_empty() {
            return Vec::new();
        }
        if self.pos >= self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
            self.epoch += 1;
        }
        let end = (self.pos + size.max(1)).min(self.order.len());
        let batch = self.order[self.pos..end].to_vec();
        self.pos = end;
        batch
    }

    /// Completed passes over the data.
    pub fn epoch(&self) -> usize {
        self.epoch
    }
}

/// KTO's mismatched pairs for a batch: prompt i with completion i + 1 (mod n), as TRL builds
/// them after shuffling. Their log-ratio estimates how far the policy drifted in general.
pub fn mismatched(batch: &[&Example]) -> Vec<(Vec<u32>, Vec<u32>)> {
    let n = batch.len();
    (0..n)
        .map(|i| {
            (
                batch[i].prompt.clone(),
                batch[(i + 1) % n].completion.clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_per_epoch_in_a_seeded_order() {
        let mut b = Batcher::new(10, 7);
        let mut seen: Vec<usize> = (0..4).flat_map(|_| b.next_batch(3)).collect();
        assert_eq!(
            seen.len(),
            10,
            "3 + 3 + 3 + 1: batches stop at the epoch's end"
        );
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let next = b.next_batch(3);
        assert_eq!(b.epoch(), 1);
        assert_eq!(next.len(), 3);
        let mut again = Batcher::new(10, 7);
        assert_eq!(again.next_batch(3), Batcher::new(10, 7).next_batch(3));
        assert_ne!(again.next_batch(10), Batcher::new(10, 8).next_batch(10));
        assert!(Batcher::new(0, 1).next_batch(4).is_empty());
    }

    #[test]
    fn mismatched_pairs_rotate_completions() {
        let ex = |p: u32, c: u32| Example {
            prompt: vec![p],
            completion: vec![c],
            label: true,
        };
        let (a, b, c) = (ex(1, 10), ex(2, 20), ex(3, 30));
        let pairs = mismatched(&[&a, &b, &c]);
        assert_eq!(
            pairs,
            vec![
                (vec![1], vec![20]),
                (vec![2], vec![30]),
                (vec![3], vec![10])
            ]
        );
    }
}
