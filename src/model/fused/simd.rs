//! Arithmetic written so that the host loops calling it compile to SIMD code.

/// `eˣ` in plain f32 arithmetic with no branches and no libm call, so that loops calling it
/// compile to SIMD code (libm's `expf` is one call per number: 10–15 % of a training step was
/// spent in it). `x = n·ln2 + r` with |r| ≤ ln2/2 (ln2 split in two parts, Cody–Waite), `eʳ`
/// by its degree-7 Taylor polynomial (remainder below 1e-8 relative), `2ⁿ` built in the
/// exponent bits. Relative error within 3e-7 of libm over the clamped range; inputs below −87.3
/// give ~1e-38 instead of a denormal or 0, above 88.3 about 2e38 (finite).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2²³: adding it rounds to the nearest integer (and subtracting it gives that integer).
    const ROUND: f32 = 12_582_912.0;
    // NaN stays NaN: the clamp's comparisons are false for it and it poisons `p` below.
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // n as an integer, read from t's low mantissa bits (|n| ≤ 127 ≪ 2²²): integer SIMD lanes,
    // where `n as i32` (saturating, NaN → 0) would be done one number at a time.
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// `a·b`, in eight interleaved partial sums so the compiler can use SIMD lanes (a plain
/// `.sum()` must add in order, one lane at a time).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f32;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst <= 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }
}
