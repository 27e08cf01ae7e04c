//! log π(y|x): the number every preference loss is built from.
//!
//! One forward pass over `prompt ++ completion` scores every next token at once: the logits at
//! position t are the model's guess for token t + 1. So we
//!
//! 1. feed `seq[0..n-1]` and take `log_softmax` over the vocabulary,
//! 2. pick the log-prob of the token that actually came next (`targets = seq[1..n]`),
//! 3. multiply by a 0/1 mask that keeps only *completion* tokens (the prompt is given, not
//!    generated, and padding is not there at all),
//! 4. sum over the sequence: log π(y|x) = Σ_t log π(y_t | x, y_<t).
//!
//! The result keeps the gradient tape, so `loss(logps).backward()` trains the model.

use dfdx::prelude::*;

use super::error::{device_err, ModelError};
use super::lm::{Ids, LanguageModel};

/// How a row was shortened to fit the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// The row.
    pub row: usize,
    /// Prompt tokens dropped from the left (the start of the prompt).
    pub prompt_dropped: usize,
    /// Completion tokens dropped from the right (its end).
    pub completion_dropped: usize,
}

/// Prompt/completion pairs as the model sees them: right-padded `[rows, seq_len]` arrays,
/// row-major.
///
/// Row r holds `prompt ++ completion` (n tokens) as inputs `seq[0..n-1]`, targets `seq[1..n]`
/// and `mask[t] = 1` exactly where `targets[t]` is a completion token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Number of rows (B).
    pub rows: usize,
    /// Padded input length (S): the longest row's `n - 1`.
    pub seq_len: usize,
    /// Input ids `[B, S]`, padded with the pad id.
    pub inputs: Vec<usize>,
    /// Next-token targets `[B, S]`, padded with the pad id.
    pub targets: Vec<usize>,
    /// 1.0 where the target is a completion token, else 0.0. `[B, S]`.
    pub mask: Vec<f32>,
    /// Prompt tokens kept per row (after truncation).
    pub prompt_lens: Vec<usize>,
    /// Completion tokens kept per row (after truncation).
    pub completion_lens: Vec<usize>,
    /// The rows that had to be shortened to fit `max_seq`.
    pub truncations: Vec<Truncation>,
}

impl TokenBatch {
    /// Builds a batch from `(prompt_ids, completion_ids)` pairs, right-padded with `pad_id`.
    ///
    /// - An empty prompt becomes `[pad_id]` (with pad = `<|endoftext|>` this is GPT-2's
    ///   "start of text"): the first completion token needs something to be predicted from.
    /// - End a completion with the EOS id if the model should learn to stop there.
    /// - A row longer than `max_seq` + 1 tokens is cut: first the prompt from the left (keeping
    ///   ≥ 1 token), then the completion from the right (keeping ≥ 1 token); see `truncations`.
    ///
    /// Errors: no pairs, an empty completion, `max_seq` = 0.
    pub fn new<P: AsRef<[u32]>, C: AsRef<[u32]>>(
        pairs: &[(P, C)],
        pad_id: u32,
        max_seq: usize,
    ) -> Result<Self, ModelError> {
        if pairs.is_empty() {
            return Err(ModelError::Empty { what: "batch" });
        }
        if max_seq == 0 {
            return Err(ModelError::BadParameter {
                name: "max_seq",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let mut rows: Vec<(Vec<usize>, usize)> = Vec::with_capacity(pairs.len());
        let mut truncations = Vec::new();
        for (row, (prompt, completion)) in pairs.iter().enumerate() {
            let (mut prompt, mut completion) = (prompt.as_ref(), completion.as_ref());
            if completion.is_empty() {
                return Err(ModelError::EmptyCompletion { row });
            }
            let start = [pad_id];
            if prompt.is_empty() {
                prompt = &start;
            }
            // n tokens give n - 1 inputs: the budget is max_seq + 1 tokens.
            let budget = max_seq + 1;
            let excess = (prompt.len() + completion.len()).saturating_sub(budget);
            let prompt_dropped = excess.min(prompt.len() - 1);
            let completion_dropped = excess - prompt_dropped;
            if excess > 0 {
                prompt = &prompt[prompt_dropped..];
                completion = &completion[..completion.len() - completion_dropped];
                truncations.push(Truncation {
                    row,
                    prompt_dropped,
                    completion_dropped,
                });
            }
            let seq = prompt
                .iter()
                .chain(completion)
                .map(|&t| t as usize)
                .collect();
            rows.push((seq, prompt.len()));
        }

        let seq_len = rows.iter().map(|(seq, _)| seq.len() - 1).max().unwrap_or(0);
        let pad = pad_id as usize;
        let n_rows = rows.len();
        let mut batch = TokenBatch {
            rows: n_rows,
            seq_len,
            inputs: vec![pad; n_rows * seq_len],
            targets: vec![pad; n_rows * seq_len],
            mask: vec![0.0; n_rows * seq_len],
            prompt_lens: Vec::with_capacity(n_rows),
            completion_lens: Vec::with_capacity(n_rows),
            truncations,
        };
        for (r, (seq, p)) in rows.iter().enumerate() {
            let base = r * seq_len;
            let n = seq.len();
            batch.inputs[base..base + n - 1].copy_from_slice(&seq[..n - 1]);
            batch.targets[base..base + n - 1].copy_from_slice(&seq[1..]);
            // Target t is token t + 1: completion tokens are targets p - 1 ..= n - 2.
            batch.mask[base + p - 1..base + n - 1].fill(1.0);
            batch.prompt_lens.push(*p);
            batch.completion_lens.push(n - p);
        }
        Ok(batch)
    }

    /// Checks that `inputs`, `targets` and `mask` all have `rows × seq_len` entries.
    pub fn validate(&self) -> Result<(), ModelError> {
        let expected = self.rows * self.seq_len;
        for (field, got) in [
            ("inputs", self.inputs.len()),
            ("targets", self.targets.len()),
            ("mask", self.mask.len()),
        ] {
            if got != expected {
                return Err(ModelError::BatchShape {
                    field,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }

    /// Total number of completion tokens (the mask's sum).
    pub fn completion_tokens(&self) -> usize {
        self.completion_lens.iter().sum()
    }
}

/// [`LanguageModel::token_logprobs`]: every position's target scored, the mask applied.
pub(super) fn token_logprobs<D: Device<f32>, M: LanguageModel<D>, T: Tape<f32, D>>(
    model: &M,
    batch: &TokenBatch,
    tape: T,
) -> Result<Tensor<(usize, usize), f32, D, T>, ModelError> {
    let ids = checked_ids(model, batch, tape)?;
    let shape = (batch.rows, batch.seq_len);
    let positions: Vec<usize> = (0..shape.0 * shape.1).collect();
    let run = || -> Result<_, D::Err> {
        let mask = model
            .device()
            .try_tensor_from_vec(batch.mask.clone(), shape)?;
        model
            .picked_logprobs(ids, &positions, &batch.targets)?
            .try_reshape_like(&shape)?
            .try_mul(mask)
    };
    run().map_err(device_err)
}

/// [`LanguageModel::sequence_logprobs`], computed without the `[B, S, V]` logits: only the
/// hidden states at completion positions (where the mask is not 0, about a third of a lab-3
/// batch) go through the LM head and the log-softmax, and a `[n] · [n, B]` product with the
/// mask values sums them per row.
pub(super) fn sequence_logprobs<D: Device<f32>, M: LanguageModel<D>, T: Tape<f32, D>>(
    model: &M,
    batch: &TokenBatch,
    tape: T,
) -> Result<Tensor<(usize,), f32, D, T>, ModelError> {
    let ids = checked_ids(model, batch, tape)?;
    let (b, s) = (batch.rows, batch.seq_len);
    let dev = model.device();
    // Flat positions scored, and their targets.
    let positions: Vec<usize> = (0..b * s).filter(|&i| batch.mask[i] != 0.0).collect();
    let n = positions.len();
    let run = || -> Result<Tensor<(usize,), f32, D, T>, D::Err> {
        if n == 0 {
            let (_, tape) = ids.split_tape();
            return Ok(dev.try_zeros_like(&(b,))?.put_tape(tape));
        }
        let targets: Vec<usize> = positions.iter().map(|&i| batch.targets[i]).collect();
        // [n, B]: entry (k, r) is the mask value of position k if it lies in row r.
        let mut rows = vec![0.0f32; n * b];
        for (k, &i) in positions.iter().enumerate() {
            rows[k * b + i / s] = batch.mask[i];
        }
        let rows = dev.try_tensor_from_vec(rows, (n, b))?;
        model
            .picked_logprobs(ids, &positions, &targets)?
            .try_reshape_like(&(1, n))?
            .try_matmul(rows)?
            .try_reshape_like(&(b,))
    };
    run().map_err(device_err)
}

/// [`LanguageModel::token_nll`]: minus the summed log-probs over the number of tokens scored.
pub(super) fn token_nll<D: Device<f32>, M: LanguageModel<D>, T: Tape<f32, D>>(
    model: &M,
    batch: &TokenBatch,
    tape: T,
) -> Result<Tensor<(), f32, D, T>, ModelError> {
    // The mask's sum is the number of tokens actually scored.
    let count = batch.mask.iter().sum::<f32>().max(1.0);
    sequence_logprobs(model, batch, tape)?
        .try_sum::<(), Axis<0>>()
        .and_then(|total| total.try_mul(-1.0 / count))
        .map_err(device_err)
}

/// The batch's inputs on the device with `tape`, after checking the batch and its ids.
fn checked_ids<D: Device<f32>, M: LanguageModel<D>, T: Tape<f32, D>>(
    model: &M,
    batch: &TokenBatch,
    tape: T,
) -> Result<Ids<D, T>, ModelError> {
    batch.validate()?;
    let (b, s) = (batch.rows, batch.seq_len);
    let vocab = model.vocab();
    if let Some(&id) = batch.targets.iter().find(|&&id| id >= vocab) {
        return Err(ModelError::TokenOutOfRange { id, vocab });
    }
    model.check_ids(b, s, &batch.inputs)?;
    let ids = model
        .device()
        .try_tensor_from_vec(batch.inputs.clone(), (b, s));
    Ok(ids.map_err(device_err)?.put_tape(tape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_shifted_padded_and_masked() {
        let pairs = [(vec![10u32, 11], vec![20u32, 21, 22]), (vec![12], vec![23])];
        let b = TokenBatch::new(&pairs, 0, 16).unwrap();
        assert_eq!((b.rows, b.seq_len), (2, 4));
        assert_eq!(b.inputs, vec![10, 11, 20, 21, 12, 0, 0, 0]);
        assert_eq!(b.targets, vec![11, 20, 21, 22, 23, 0, 0, 0]);
        assert_eq!(b.mask, vec![0., 1., 1., 1., 1., 0., 0., 0.]);
        assert_eq!(b.prompt_lens, vec![2, 1]);
        assert_eq!(b.completion_lens, vec![3, 1]);
        assert_eq!(b.completion_tokens(), 4);
        assert!(b.truncations.is_empty());
    }

    #[test]
    fn an_empty_prompt_starts_from_the_pad_token() {
        let b = TokenBatch::new(&[(vec![], vec![5u32, 6])], 9, 16).unwrap();
        assert_eq!(b.inputs, vec![9, 5]);
        assert_eq!(b.targets, vec![5, 6]);
        assert_eq!(b.mask, vec![1., 1.]);
    }

    #[test]
    fn long_rows_lose_the_prompt_start_first_then_the_completion_end() {
        // max_seq 4 → at most 5 tokens per row.
        let pairs = [
            (vec![1u32, 2, 3, 4], vec![5u32, 6]),
            (vec![1u32, 2], vec![5u32, 6, 7, 8, 9, 10]),
        ];
        let b = TokenBatch::new(&pairs, 0, 4).unwrap();
        assert_eq!(b.seq_len, 4);
        assert_eq!(&b.inputs[..4], &[2, 3, 4, 5]);
        assert_eq!(&b.targets[..4], &[3, 4, 5, 6]);
        assert_eq!(&b.inputs[4..], &[2, 5, 6, 7]);
        assert_eq!(&b.targets[4..], &[5, 6, 7, 8]);
        assert_eq!(
            b.truncations,
            vec![
                Truncation {
                    row: 0,
                    prompt_dropped: 1,
                    completion_dropped: 0
                },
                Truncation {
                    row: 1,
                    prompt_dropped: 1,
                    completion_dropped: 2
                },
            ]
        );
        // Even a context of 1 keeps one prompt and one completion token.
        let b = TokenBatch::new(&[(vec![1u32, 2, 3], vec![4u32, 5])], 0, 1).unwrap();
        assert_eq!(
            (b.inputs.clone(), b.targets.clone(), b.mask.clone()),
            (vec![3], vec![4], vec![1.0])
        );
    }

    #[test]
    fn empty_inputs_are_errors() {
        let none: [(Vec<u32>, Vec<u32>); 0] = [];
        assert!(matches!(
            TokenBatch::new(&none, 0, 8),
            Err(ModelError::Empty { .. })
        ));
        let pairs = [(vec![1u32], vec![2u32]), (vec![1], vec![])];
        assert!(matches!(
            TokenBatch::new(&pairs, 0, 8),
            Err(ModelError::EmptyCompletion { row: 1 })
        ));
        assert!(matches!(
            TokenBatch::new(&pairs[..1], 0, 0),
            Err(ModelError::BadParameter { .. })
        ));
    }
}
