//! Exercise 3.4's check: a LoRA-adapted linear layer, x·W + (α/r)·x·A·B, against the library's.

use super::*;

/// A matrix as exercise 3.4 takes it: runtime-sized rows and columns.
pub type Matrix = Tensor<(usize, usize), f32, Dev>;
/// A vector as exercise 3.4 takes it (the bias).
pub type Vector = Tensor<(usize,), f32, Dev>;

/// The library's adapted projection for one case of exercise 3.4: a `Linear<I, O>` frozen under
/// a rank-`R` adapter, computed as lab 3's LoRA model computes it (`model::lora`).
pub(super) fn library_lora<const I: usize, const O: usize, const R: usize>(
    n: usize,
    [x, w, bias, a, b]: &[Vec<f32>; 5],
    alpha: f32,
) -> Vec<f32> {
    use crate::model::lora::{project, Adapter};
    let dev = crate::device::device();
    let lin = dfdx::nn::modules::Linear::<I, O, f32, Dev> {
        weight: dev.tensor_from_vec(w.clone(), (Const, Const)),
        bias: dev.tensor_from_vec(bias.clone(), (Const,)),
    };
    let adapter = Adapter::<I, O, R, f32, Dev> {
        a: dev.tensor_from_vec(a.clone(), (Const, Const)),
        b: dev.tensor_from_vec(b.clone(), (Const, Const)),
    };
    let x = dev.tensor_from_vec(x.clone(), (n, Const::<I>));
    project(&lin, Some((&adapter, Some(alpha / R as f32))), x)
        .map(|y| y.as_vec())
        .unwrap_or_default()
}

/// Exercise 3.4 — `student(x, w, bias, a, b, alpha)` must return one LoRA-adapted projection
/// of the rows `x` `[n, in]`: `x·Wᵀ + bias + (α/r)·(x·Aᵀ)·Bᵀ`, with `W` `[out, in]`, `A`
/// `[r, in]`, `B` `[out, r]` (PEFT's `lora_A`, `lora_B`) and r the rows of A. Compared with
/// the library's adapted layer — the one `kto-lab train --lora` trains.
pub fn lora_linear<F>(student: F) -> CheckResult
where
    F: Fn(Matrix, Matrix, Vector, Matrix, Matrix, f32) -> Matrix,
{
    crate::checks::exam::answer(
        "3.4",
        |(n, i, o, r, alpha, [x, w, bias, a, b]): &LoraQuestion| {
            let (n, i, o, r) = (*n, *i, *o, *r);
            let dev = crate::device::device();
            let m = |v: &Vec<f32>, rows: usize, cols: usize| {
                dev.tensor_from_vec(v.clone(), (rows, cols))
            };
            let got = student(
                m(x, n, i),
                m(w, o, i),
                dev.tensor_from_vec(bias.clone(), (o,)),
                m(a, r, i),
                m(b, o, r),
                *alpha,
            );
            if *got.shape() == (n, o) {
                got.as_vec()
            } else {
                // Show the wrong shape rather than reading a mis-shaped tensor.
                vec![f32::NAN; n * o]
            }
        },
        check_lora_linear,
    )
}

/// Exercise 3.4's question: rows n, d_in, d_out, rank r, α, and x, W, bias, A, B (row-major).
pub(super) type LoraQuestion = (usize, usize, usize, usize, f32, [Vec<f32>; 5]);

pub(crate) fn check_lora_linear(student: &mut dyn Ask<LoraQuestion, Vec<f32>>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 3.4 — a LoRA-adapted projection",
        "the frozen layer `x·Wᵀ + b` plus the correction `(x·Aᵀ)·Bᵀ` scaled by α/r (r = the rows \
         of A): transpose with `.permute::<_, Axes2<1, 0>>()` and broadcast the bias over the rows",
    );
    let mut rng = crate::checks::grading::rng(34);
    // (name, n, in, out, r, α, B zero?)
    let cases: [(&str, usize, usize, usize, usize, f32, bool); 5] = [
        (
            "B = 0 (a fresh adapter): exactly the frozen layer",
            3,
            8,
            6,
            2,
            4.0,
            true,
        ),
        ("α = r: the correction unscaled", 4, 8, 6, 2, 2.0, false),
        (
            "α/r = 2 (the seed's 32/16) at the classroom width",
            5,
            32,
            32,
            4,
            8.0,
            false,
        ),
        ("r = 1, a non-square layer", 2, 5, 3, 1, 1.5, false),
        ("α/r = 0.5", 4, 8, 6, 2, 1.0, false),
    ];
    for (name, n, i, o, r, alpha, zero_b) in cases {
        let mut draw = |len: usize, scale: f32| -> Vec<f32> {
            (0..len).map(|_| rng.gen_range(-scale..scale)).collect()
        };
        let data = [
            draw(n * i, 1.0),
            draw(o * i, 0.5),
            draw(o, 0.5),
            draw(r * i, 0.5),
            if zero_b {
                vec![0.0; o * r]
            } else {
                draw(o * r, 0.5)
            },
        ];
        let expected = match (i, o, r) {
            (8, 6, 2) => library_lora::<8, 6, 2>(n, &data, alpha),
            (32, 32, 4) => library_lora::<32, 32, 4>(n, &data, alpha),
            (5, 3, 1) => library_lora::<5, 3, 1>(n, &data, alpha),
            _ => Vec::new(),
        };
        let Some(got) = check.ask(student, &(n, i, o, r, alpha, data)) else {
            continue;
        };
        let e: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
        let g: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        check.close_all(name, &e, &g, 1e-5);
    }
    check.finish()
}
