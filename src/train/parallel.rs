//! A step over both cores (the CPU build's trainers use it): the batch's rows split in two
//! halves, one per thread, and the second half's gradients added into the first's.
//!
//! dfdx's CPU GEMM is single-threaded per call at these sizes, so a step on one thread leaves
//! the second core idle; each half keeps its GEMMs on its own thread. The split is the same on
//! every machine, whatever its core count, so a seed gives the same model everywhere.

use dfdx::prelude::*;
use std::ops::Range;

use super::optim::add_grads;
use super::step::{backward, Outcome, Part, Step};
use super::TrainError;
use crate::device::{both, on_host, Shareable};
use crate::model::{fused, tape_from, LanguageModel};

/// [`backward`] with the rows split over two threads (on the CPU, with two rows or more; else
/// [`backward`] itself). `grads` are two zeroed stores: the outcome's holds the batch's
/// gradient; the other comes back to be used again.
pub fn backward_split<D, M, S>(
    model: &M,
    step: &S,
    [first, second]: [Gradients<f32, D>; 2],
) -> Result<(Outcome<D>, Gradients<f32, D>), TrainError>
where
    D: Device<f32> + Shareable,
    M: LanguageModel<D> + Shareable,
    S: Step<D, M> + Shareable,
{
    let rows = step.size().rows;
    if rows < 2 || !on_host::<D>() {
        return Ok((
            fused::with_serial_gemm(|| backward(model, step, first))?,
            second,
        ));
    }
    let dev = model.device();
    let run = |range: Range<usize>, grads: Gradients<f32, D>| {
        fused::with_serial_gemm(|| -> Result<_, TrainError> {
            let Part { loss, values, .. } = step.part(model, range, tape_from(&dev, grads))?;
            Ok((loss.as_vec()[0], values, loss.backward()))
        })
    };
    let half = rows.div_ceil(2);
    let (b, a) = both(|| run(half..rows, second), || run(0..half, first));
    let ((loss_a, mut values, mut grads_a), (loss_b, values_b, mut grads_b)) = (a?, b?);
    if !add_grads(model, &mut grads_a, &mut grads_b) {
        return Err(TrainError::BadConfig {
            name: "device",
            value: "not the CPU".into(),
            expected: "the CPU for a batch split over two threads",
        });
    }
    values.extend(values_b);
    let outcome = Outcome {
        loss: loss_a + loss_b,
        metrics: step.metrics(model, &values)?,
        grads: grads_a,
    };
    Ok((outcome, grads_b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::KtoConfig;
    use crate::model::config::tiny::TinyModel;
    use crate::train::step::{DpoPair, DpoStep, KtoRows, KtoStep, Row, SftStep};

    fn ids(seed: usize, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| ((seed * 31 + i * 17) % 250 + 3) as u32)
            .collect()
    }

    /// Every parameter's gradient, flattened, in visiting order.
    fn all_grads(model: &TinyModel<Cpu>, grads: &Gradients<f32, Cpu>) -> Vec<f32> {
        let mut out = Vec::new();
        crate::train::optim::for_each_param(model, |t| out.extend(grads.get(t).as_vec()));
        out
    }

    /// The step's loss, metrics and gradients with the batch in one piece, then split over two
    /// threads: the same up to float rounding.
    fn split_equals_whole<S: Step<Cpu, TinyModel<Cpu>> + Shareable>(
        model: &TinyModel<Cpu>,
        step: S,
    ) {
        let whole = backward(model, &step, model.alloc_grads()).unwrap();
        let (split, _) =
            backward_split(model, &step, [model.alloc_grads(), model.alloc_grads()]).unwrap();
        let (loss, split_loss) = (whole.loss, split.loss);
        assert!(
            (loss - split_loss).abs() <= 1e-6 * (1.0 + loss.abs()),
            "{loss} vs {split_loss}"
        );
        assert_eq!(whole.metrics.len(), split.metrics.len());
        for (name, a) in &whole.metrics {
            let (a, b) = (a.as_f64().unwrap(), split.metrics[name].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "{name}: {a} vs {b}"
            );
        }
        let (a, b) = (
            all_grads(model, &whole.grads),
            all_grads(model, &split.grads),
        );
        assert_eq!(a.len(), b.len());
        let scale = a.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
        assert!(scale > 0.0);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * scale, "{x} vs {y}");
        }
    }

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| (ids(i, 3 + i % 3), ids(i + 50, 2 + i % 4)))
            .collect()
    }

    #[test]
    fn split_sft_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 3);
        split_equals_whole(&model, SftStep::new(&model, rows(5), 0).unwrap());
    }

    #[test]
    fn split_kto_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 4);
        let reference = TinyModel::<Cpu>::init(&Cpu::default(), 5);
        let p = rows(6);
        let mismatched = (0..6)
            .map(|i| (p[i].0.clone(), p[(i + 1) % 6].1.clone()))
            .collect();
        let batch = KtoRows {
            rows: p,
            labels: vec![true, false, false, true, true, false],
            reference: vec![-9.0, -7.5, -8.0, -10.0, -6.0, -9.5],
            mismatched,
        };
        let step = KtoStep::new(&model, &reference, batch, KtoConfig::default(), 0).unwrap();
        split_equals_whole(&model, step);
    }

    #[test]
    fn split_dpo_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 6);
        let p = rows(10);
        let dpo = (0..5)
            .map(|i| DpoPair {
                chosen: p[2 * i].clone(),
                rejected: p[2 * i + 1].clone(),
                reference: [-8.0 - i as f32, -7.0],
            })
            .collect();
        split_equals_whole(&model, DpoStep::new(&model, dpo, 0.1, 0).unwrap());
    }
}
