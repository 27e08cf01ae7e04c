//! The optimizer, written here because dfdx 0.13 has no gradient clipping and keeps its
//! gradient buffers private: AdamW (Adam with decoupled weight decay) that clips the global
//! gradient norm as it reads the gradients, and a warmup + cosine learning-rate schedule.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorRef,
};
use dfdx::prelude::*;

/// Calls `f` on every trainable parameter of `model`, in the model's visiting order, as a flat
/// `(n,)` view that shares the parameter's id, hence its gradient.
pub(crate) fn for_each_param<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    f: impl FnMut(&Tensor<(usize,), f32, D>),
) {
    let mut op = EachParam { f };
    // The visitor never fails (it returns no error of its own).
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut op,
    });
}

struct EachParam<F> {
    f: F,
}

impl<D: Device<f32>, F: FnMut(&Tensor<(usize,), f32, D>)> TensorVisitor<f32, D> for EachParam<F> {
    type Viewer = ViewTensorRef;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, D::Err> {
        let n = t.shape().num_elements();
        if opts.do_gradient_update && n > 0 {
            // Parameters are contiguous: the reshape keeps the id and the data.
            (self.f)(&t.clone().reshape_like(&(n,)));
        }
        Ok(None)
    }
}

/// The global L2 norm of all trainable parameters' gradients: sqrt(Σ_p ‖∂L/∂p‖²).
pub fn grad_norm<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    grads: &Gradients<f32, D>,
) -> f32 {
    let mut total = 0.0f64;
    for_each_param(model, |t| {
        let g = grads.get(t);
        total += if crate::device::on_host::<D>() {
            g.as_vec().iter().map(|&x| (x * x) as f64).sum::<f64>()
        } else {
            g.square().sum::<Rank0, _>().as_vec()[0] as f64
        };
    });
    total.sqrt() as f32
}

/// `into += from` for every trainable parameter's gradient: the gradients of two parts of a
/// batch, trained on two threads, make the batch's gradient. CPU only (dfdx keeps gradient
/// buffers private; on the CPU they are plain vectors reachable through
/// `Gradients::get_or_alloc_mut`); the trainers only split batches on the CPU. Returns false
/// (and adds nothing) on another device.
pub fn add_grads<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    into: &mut Gradients<f32, D>,
    from: &mut Gradients<f32, D>,
) -> bool {
    use std::any::Any;
    let (Some(into), Some(from)) = (
        (into as &mut dyn Any).downcast_mut::<Gradients<f32, Cpu>>(),
        (from as &mut dyn Any).downcast_mut::<Gradients<f32, Cpu>>(),
    ) else {
        return false;
    };
    for_each_param(model, |t| {
        let Some(t) = (t as &dyn Any).downcast_ref::<Tensor<(usize,), f32, Cpu>>() else {
            return;
        };
        // Both stores come from `alloc_grads`: the buffers exist, and the CPU cannot fail.
        if let (Ok(a), Ok(b)) = (into.get_or_alloc_mut(t), from.get_or_alloc_mut(t)) {
            for (a, b) in a.iter_mut().zip(b.iter()) {
                *a += b;
            }
        }
    });
    true
}

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to √v̂ so tiny gradients do not blow the step up.
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (rank ≥ 2: linear weights, embeddings),
    /// not to biases or LayerNorm gains, as in GPT-2 / nanoGPT.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
        }
    }
}

/// A parameter's moment estimate, flattened.
type Flat<D> = Tensor<(usize,), f32, D>;

/// AdamW with global-norm clipping. Moments are kept per parameter tensor, in the (fixed) order
/// the model's `TensorCollection` visits them, flattened to 1-D.
#[derive(Debug, Clone)]
pub struct AdamW<D: Device<f32>> {
    /// Hyper-parameters (the learning rate is passed to each [`AdamW::step`]).
    pub cfg: AdamWConfig,
    t: i32,
    moments: Vec<(Flat<D>, Flat<D>)>,
    /// The moments on the CPU, as plain vectors (the update is then one loop per parameter).
    host_moments: Vec<(Vec<f32>, Vec<f32>)>,
}

/// What one optimizer step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
    /// Whether the gradients were scaled down.
    pub clipped: bool,
}

impl<D: Device<f32>> AdamW<D> {
    /// A fresh optimizer (zero moments).
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW {
            cfg,
            t: 0,
            moments: Vec::new(),
            host_moments: Vec::new(),
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i32 {
        self.t
    }

    /// One update of `model` from `grads` at learning rate `lr`. A non-finite gradient norm
    /// skips the update (the weights are never poisoned by a NaN batch) and is reported.
    pub fn step<M: TensorCollection<f32, D>>(
        &mut self,
        model: &mut M,
        grads: &Gradients<f32, D>,
        lr: f64,
    ) -> StepInfo {
        let grad_norm = grad_norm(model, grads);
        let limit = self.cfg.max_grad_norm.unwrap_or(f64::INFINITY) as f32;
        let clipped = grad_norm > limit;
        if !grad_norm.is_finite() {
            return StepInfo {
                grad_norm,
                clipped: false,
            };
        }
        self.t += 1;
        let mut op = Update {
            opt: self,
            grads,
            lr,
            scale: if clipped { limit / grad_norm } else { 1.0 },
            index: 0,
        };
        let _ = M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut op,
        });
        StepInfo { grad_norm, clipped }
    }
}

struct Update<'a, D: Device<f32>> {
    opt: &'a mut AdamW<D>,
    grads: &'a Gradients<f32, D>,
    lr: f64,
    scale: f32,
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Update<'_, D> {
    type Viewer = ViewTensorMut;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        p: &mut Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, D::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let cfg = self.opt.cfg;
        let n = p.shape().num_elements();
        // p ← p·(1 − lr·wd) − lr·update   (weight decay only on matrices)
        let decay = if S::NUM_DIMS >= 2 {
            self.lr * cfg.weight_decay
        } else {
            0.0
        };
        let t = self.opt.t;
        if crate::device::on_host::<D>() {
            // The same arithmetic as the tensor ops below (constants rounded from f64 the
            // same way), as one loop instead of a dozen ops with a buffer each.
            let mut params = vec![0.0f32; n];
            p.copy_into(&mut params);
            let grads = self.grads.get(p).as_vec();
            if self.opt.host_moments.len() <= self.index {
                self.opt.host_moments.push((vec![0.0; n], vec![0.0; n]));
            }
            let (m, v) = &mut self.opt.host_moments[self.index];
            self.index += 1;
            let (b1, one_b1) = (cfg.beta1 as f32, (1.0 - cfg.beta1) as f32);
            let (b2, one_b2) = (cfg.beta2 as f32, (1.0 - cfg.beta2) as f32);
            let c1 = (1.0 - cfg.beta1.powi(t)) as f32;
            let c2 = (1.0 - cfg.beta2.powi(t)) as f32;
            let (eps, keep, lr) = (cfg.eps as f32, (1.0 - decay) as f32, -self.lr as f32);
            for (((p, g), m), v) in params.iter_mut().zip(&grads).zip(m).zip(v) {
                let g = g * self.scale;
                *m = *m * b1 + g * one_b1;
                *v = *v * b2 + g * g * one_b2;
                let update = (*m / c1) / ((*v / c2).sqrt() + eps);
                *p = *p * keep + update * lr;
            }
            p.copy_from(&params);
            return Ok(None);
        }
        let g = (self.grads.get(p) * self.scale).reshape_like(&(n,));
        if self.opt.moments.len() <= self.index {
            let dev = p.device().clone();
            self.opt
                .moments
                .push((dev.zeros_like(&(n,)), dev.zeros_like(&(n,))));
        }
        let (m, v) = &mut self.opt.moments[self.index];
        self.index += 1;
        // m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
        m.axpy(cfg.beta1, &g, 1.0 - cfg.beta1);
        v.axpy(cfg.beta2, &g.square(), 1.0 - cfg.beta2);
        // Bias correction: early moments are biased towards their zero start.
        let m_hat = m.clone() / (1.0 - cfg.beta1.powi(t)) as f32;
        let v_hat = v.clone() / (1.0 - cfg.beta2.powi(t)) as f32;
        let update = (m_hat / (v_hat.sqrt() + cfg.eps as f32)).reshape_like(p.shape());
        p.axpy(1.0 - decay, &update, -self.lr);
        Ok(None)
    }
}

/// Learning rate: linear warmup from 0 to `peak` over `warmup` steps, then cosine decay to
/// `peak · min_ratio` at `total`. Warmup keeps Adam's first, noisy steps small.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    /// The highest learning rate, reached at the end of warmup.
    pub peak: f64,
    /// Steps of linear warmup.
    pub warmup: usize,
    /// Total steps.
    pub total: usize,
    /// Final learning rate as a fraction of the peak.
    pub min_ratio: f64,
}

impl LrSchedule {
    /// The learning rate for 0-based `step`.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::optim::AdamConfig;

    type Net = (Linear<3, 4>, Linear<4, 2>);

    fn grads_of(dev: &Cpu, model: &<Net as BuildOnDevice<Cpu, f32>>::Built) -> Gradients<f32, Cpu> {
        let x = dev.tensor([[1.0f32, -2.0, 0.5], [0.3, 0.1, -1.0]]);
        let y = model.forward(x.trace(model.alloc_grads()));
        y.square().sum().backward()
    }

    #[test]
    fn grad_norm_is_the_l2_norm_of_every_gradient() {
        let dev = Cpu::seed_from_u64(0);
        let model = dev.build_module::<Net, f32>();
        let grads = grads_of(&dev, &model);
        let manual: f32 = [
            grads.get(&model.0.weight).as_vec(),
            grads.get(&model.0.bias).as_vec(),
            grads.get(&model.1.weight).as_vec(),
            grads.get(&model.1.bias).as_vec(),
        ]
        .iter()
        .flatten()
        .map(|g| g * g)
        .sum::<f32>()
        .sqrt();
        assert!((grad_norm(&model, &grads) - manual).abs() < 1e-5 * manual);
    }

    #[test]
    fn adamw_without_decay_or_clipping_matches_dfdx_adam() {
        let dev = Cpu::seed_from_u64(1);
        let mut ours = dev.build_module::<Net, f32>();
        let mut theirs = ours.clone();
        let mut adamw = AdamW::new(AdamWConfig {
            weight_decay: 0.0,
            max_grad_norm: None,
            ..AdamWConfig::default()
        });
        let mut adam = dfdx::optim::Adam::new(
            &theirs,
            AdamConfig {
                lr: 1e-2,
                betas: [0.9, 0.95],
                eps: 1e-8,
                weight_decay: None,
            },
        );
        for _ in 0..5 {
            let g = grads_of(&dev, &ours);
            adamw.step(&mut ours, &g, 1e-2);
            let g = grads_of(&dev, &theirs);
            dfdx::optim::Optimizer::update(&mut adam, &mut theirs, &g).unwrap();
        }
        for (a, b) in ours.0.weight.as_vec().iter().zip(theirs.0.weight.as_vec()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        for (a, b) in ours.1.bias.as_vec().iter().zip(theirs.1.bias.as_vec()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn clipping_bounds_the_first_step_and_is_reported() {
        // Adam's first step is ≈ lr·sign(g) whatever the gradient's scale, so check the clip
        // where it acts: on the moments, and in the reported norm and flag.
        let dev = Cpu::seed_from_u64(2);
        let mut model = dev.build_module::<Net, f32>();
        let g = grads_of(&dev, &model);
        let norm = grad_norm(&model, &g);
        let mut opt = AdamW::new(AdamWConfig {
            max_grad_norm: Some((norm / 4.0) as f64),
            ..AdamWConfig::default()
        });
        let info = opt.step(&mut model, &g, 1e-3);
        assert_eq!(info.grad_norm, norm);
        assert!(info.clipped);
        // The first moment holds (1 − β1)·g·(max/norm): a quarter of the unclipped value.
        let first = opt.host_moments[0].0.clone();
        let raw = g.get(&model.0.weight).as_vec();
        for (m, g) in first.iter().zip(&raw) {
            assert!((m - 0.1 * g / 4.0).abs() < 1e-6 * g.abs().max(1.0));
        }
        let mut loose = AdamW::<Cpu>::new(AdamWConfig::default());
        let info = loose.step(&mut model.clone(), &g, 1e-3);
        assert_eq!(info.clipped, norm > 1.0);
    }

    #[test]
    fn a_nan_gradient_skips_the_update() {
        let dev = Cpu::seed_from_u64(3);
        let mut model = dev.build_module::<Net, f32>();
        let before = model.0.weight.as_vec();
        let x = dev.tensor([[f32::NAN, 0.0, 0.0]]);
        let g = model.forward(x.trace(model.alloc_grads())).sum().backward();
        let mut opt = AdamW::new(AdamWConfig::default());
        let info = opt.step(&mut model, &g, 1e-3);
        assert!(info.grad_norm.is_nan());
        assert_eq!(opt.steps(), 0);
        assert_eq!(model.0.weight.as_vec(), before);
    }

    #[test]
    fn weight_decay_shrinks_matrices_but_not_biases() {
        let dev = Cpu::seed_from_u64(4);
        let mut model = dev.build_module::<Net, f32>();
        let zero = model.alloc_grads();
        let (w, b) = (model.0.weight.as_vec(), model.0.bias.as_vec());
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.5,
            ..AdamWConfig::default()
        });
        opt.step(&mut model, &zero, 0.1);
        for (after, before) in model.0.weight.as_vec().iter().zip(&w) {
            assert!((after - before * 0.95).abs() < 1e-6);
        }
        assert_eq!(model.0.bias.as_vec(), b);
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = LrSchedule {
            peak: 1e-3,
            warmup: 10,
            total: 110,
            min_ratio: 0.1,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - 0.55e-3).abs() < 1e-9);
        assert!((s.lr(110) - 1e-4).abs() < 1e-12);
        assert!((s.lr(500) - 1e-4).abs() < 1e-12);
        for step in 10..110 {
            assert!(s.lr(step + 1) <= s.lr(step));
        }
    }
}
