//! Each fused op against the chain of dfdx ops it replaces, values and gradients, with and
//! without a tape.

use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;

use super::{
    causal_attention, gelu, layer_norm, linear, masked_softmax, matmul_transposed, select_logprobs,
    Weights,
};
use crate::model::Hidden;

/// `a ≈ b` element by element, to `tol` relative (plus absolute near 0).
pub fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
    }
}

/// `n` numbers in [−1, 1.1), varied by `k`.
pub fn ramp(n: usize, k: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * k) % 17) as f32 * 0.13 - 1.0).collect()
}

// --- linear ---

#[test]
fn linear_is_dfdx_linear_values_and_gradients() {
    use dfdx::nn::modules::Linear;
    let dev = Cpu::default();
    let lin: Linear<6, 4, f32, Cpu> = Linear {
        weight: dev.tensor_from_vec(ramp(24, 7), (Const, Const)),
        bias: dev.tensor_from_vec(ramp(4, 5), (Const,)),
    };
    let x: Hidden<6, Cpu> = dev.tensor_from_vec(ramp(5 * 6, 11), (5, Const));
    let w: Hidden<4, Cpu> = dev.tensor_from_vec(ramp(5 * 4, 3), (5, Const));
    let run = |fused: bool| {
        let grads = Gradients::leaky();
        let y = if fused {
            linear(&lin, x.trace(grads))
        } else {
            lin.try_forward(x.trace(grads))
        }
        .unwrap();
        let values = y.as_vec();
        let g = (y * w.clone()).sum().backward();
        (
            values,
            g.get(&x).as_vec(),
            g.get(&lin.weight).as_vec(),
            g.get(&lin.bias).as_vec(),
        )
    };
    let (ours, theirs) = (run(true), run(false));
    close(&ours.0, &theirs.0, 1e-6);
    close(&ours.1, &theirs.1, 1e-5);
    close(&ours.2, &theirs.2, 1e-5);
    close(&ours.3, &theirs.3, 1e-5);
    assert_eq!(linear(&lin, x.clone()).unwrap().as_vec(), ours.0);
    // The head: x · Wᵀ without a bias.
    let head = matmul_transposed(x.leaky_trace(), &lin.weight, Weights::Train).unwrap();
    let reference = x.leaky_trace().matmul(
        lin.weight
            .retaped::<OwnedTape<f32, Cpu>>()
            .permute::<_, Axes2<1, 0>>(),
    );
    close(&head.as_vec(), &reference.as_vec(), 1e-6);
    let g_ours = (head * w.clone()).sum().backward().get(&x).as_vec();
    let g_ref = (reference * w).sum().backward().get(&x).as_vec();
    close(&g_ours, &g_ref, 1e-5);
}

// --- attention ---

#[test]
fn causal_attention_is_the_dfdx_attention_values_and_gradients() {
    let dev = Cpu::default();
    let (b, s) = (2, 5);
    let q: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 7), (b * s, Const));
    let k: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 5), (b * s, Const));
    let v: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 3), (b * s, Const));
    let w: Hidden<8, Cpu> = dev.tensor_from_vec(ramp(b * s * 8, 13), (b * s, Const));
    let mask = crate::model::attention::causal_mask(&dev, s);
    let run = |fused: bool| {
        let grads = Gradients::leaky();
        let (qt, kt, vt) = (q.trace(grads), k.leaky_trace(), v.leaky_trace());
        let y = if fused {
            causal_attention(qt, kt, vt, 2, s)
        } else {
            crate::model::attention::attention_core::<8, 2, Cpu, _>(qt, kt, vt, &mask)
        }
        .unwrap();
        let values = y.as_vec();
        let g = (y * w.clone()).sum().backward();
        (values, [&q, &k, &v].map(|t| g.get(t).as_vec()))
    };
    let (ours, theirs) = (run(true), run(false));
    close(&ours.0, &theirs.0, 1e-6);
    for (a, b) in ours.1.iter().zip(&theirs.1) {
        close(a, b, 1e-5);
    }
    let untaped = causal_attention(q.clone(), k.clone(), v.clone(), 2, s).unwrap();
    assert_eq!(untaped.as_vec(), ours.0);
    // Row 0 of each sequence sees only itself: its output is its own value.
    assert_eq!(&ours.0[..8], &v.as_vec()[..8]);
    assert!(causal_attention(q.clone(), k.clone(), v.clone(), 3, s).is_err());
    assert!(causal_attention(q, k, v, 2, 3).is_err());
}

#[test]
fn masked_softmax_is_scale_add_mask_softmax_values_and_gradients() {
    let dev = Cpu::default();
    let (b, s) = (2, 5);
    let xs: Vec<f32> = (0..b * 3 * s * s)
        .map(|i| ((i * 11) % 13) as f32 * 0.4 - 2.0)
        .collect();
    let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(xs, (b, 3, s, s));
    let w: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(
        (0..b * 3 * s * s)
            .map(|i| ((i * 7) % 5) as f32 - 2.0)
            .collect(),
        (b, 3, s, s),
    );
    let mask = dev.upper_tri_like(&(s, s), -1e9f32, 1);
    let ours = masked_softmax(x.leaky_trace(), 0.7, &mask).unwrap();
    let theirs =
        (x.leaky_trace() * 0.7) + mask.clone().broadcast_like::<_, Axes2<0, 1>>(&(b, 3, s, s));
    let theirs = theirs.softmax::<Axis<3>>();
    for (a, b) in ours.as_vec().iter().zip(theirs.as_vec()) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
    let g_ours = (ours * w.clone()).sum().backward().get(&x).as_vec();
    let g_ref = (theirs * w).sum().backward().get(&x).as_vec();
    for (a, b) in g_ours.iter().zip(&g_ref) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    let wrong = dev.upper_tri_like(&(s + 1, s + 1), -1e9f32, 1);
    assert!(masked_softmax(x, 0.7, &wrong).is_err());
}

// --- norm ---

#[test]
fn layer_norm_is_dfdx_layer_norm_values_and_gradients() {
    let dev = Cpu::default();
    let mut ln: LayerNorm1D<8, f32, Cpu> = LayerNorm1D {
        gamma: dev.tensor_from_vec((0..8).map(|i| 0.5 + 0.1 * i as f32).collect(), (Const,)),
        beta: dev.tensor_from_vec((0..8).map(|i| 0.05 * i as f32 - 0.2).collect(), (Const,)),
        epsilon: 1e-5,
    };
    let xs: Vec<f32> = (0..5 * 8)
        .map(|i| ((i * 13) % 17) as f32 * 0.3 - 2.0)
        .collect();
    let x: Tensor<(usize, Const<8>), f32, Cpu> = dev.tensor_from_vec(xs, (5, Const));
    let w: Tensor<(usize, Const<8>), f32, Cpu> = dev.tensor_from_vec(
        (0..40).map(|i| ((i * 7) % 5) as f32 - 2.0).collect(),
        (5, Const),
    );
    let run = |ln: &LayerNorm1D<8, f32, Cpu>, fused: bool| {
        let mut grads = Gradients::leaky();
        let y = if fused {
            layer_norm(ln, x.trace(grads))
        } else {
            ln.try_forward(x.trace(grads))
        }
        .unwrap();
        let values = y.as_vec();
        grads = (y * w.clone()).sum().backward();
        (
            values,
            grads.get(&x).as_vec(),
            grads.get(&ln.gamma).as_vec(),
            grads.get(&ln.beta).as_vec(),
        )
    };
    let (ours, theirs) = (run(&ln, true), run(&ln, false));
    for (a, b) in [
        (&ours.0, &theirs.0),
        (&ours.1, &theirs.1),
        (&ours.2, &theirs.2),
        (&ours.3, &theirs.3),
    ] {
        close(a, b, 1e-5);
    }
    let untaped = layer_norm(&ln, x.clone()).unwrap().as_vec();
    assert_eq!(untaped, ours.0);
    ln.epsilon = 0.5;
    assert_ne!(layer_norm(&ln, x.clone()).unwrap().as_vec(), untaped);
}

// --- gelu ---

#[test]
fn gelu_is_dfdx_fast_gelu_values_and_gradients() {
    let dev = Cpu::default();
    let xs: Vec<f32> = (0..161).map(|i| -8.0 + 0.1 * i as f32).collect();
    let x = dev.tensor_from_vec(xs.clone(), (xs.len(),));

    let ours = gelu(x.leaky_trace()).unwrap();
    let reference = x.leaky_trace().fast_gelu();
    close(&ours.as_vec(), &reference.as_vec(), 1e-6);
    close(
        &gelu(x.clone()).unwrap().as_vec(),
        &reference.as_vec(),
        1e-6,
    );
    // Weighted sum, so each element's gradient is checked with its own weight.
    let w = dev.tensor_from_vec((0..161).map(|i| 1.0 + (i % 7) as f32).collect(), (161,));
    let g_ours = (ours * w.clone()).sum().backward().get(&x).as_vec();
    let g_ref = (reference * w).sum().backward().get(&x).as_vec();
    close(&g_ours, &g_ref, 1e-5);
}

// --- log_softmax ---

#[test]
fn select_logprobs_is_log_softmax_then_select_values_and_gradients() {
    let dev = Cpu::default();
    let vals: Vec<f32> = (0..4 * 6)
        .map(|i| ((i * 7) % 11) as f32 * 0.9 - 4.0)
        .collect();
    let logits: Tensor<(usize, Const<6>), f32, Cpu> = dev.tensor_from_vec(vals, (4, Const));
    let targets = vec![0, 5, 2, 2];
    let ours = select_logprobs(logits.leaky_trace(), &targets).unwrap();
    let idx = dev.tensor_from_vec(targets.clone(), (4,));
    let reference = logits.leaky_trace().log_softmax::<Axis<1>>().select(idx);
    for (a, b) in ours.as_vec().iter().zip(reference.as_vec()) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    let untaped = select_logprobs(logits.clone(), &targets).unwrap().as_vec();
    assert_eq!(untaped.len(), 4);
    for (a, b) in untaped.iter().zip(reference.as_vec()) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    let w = dev.tensor_from_vec(vec![1.0f32, -2.0, 0.5, 3.0], (4,));
    let g_ours = (ours * w.clone()).sum().backward().get(&logits).as_vec();
    let g_ref = (reference * w).sum().backward().get(&logits).as_vec();
    for (a, b) in g_ours.iter().zip(&g_ref) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    assert!(select_logprobs(logits.clone(), &targets[..3]).is_err());
    assert!(select_logprobs(logits, &[0, 1, 2, 6]).is_err());
}
