//! Per-ISA inner loops of the separable SSIM filter in [`crate::metrics`],
//! behind safe dispatchers.
//!
//! Two kernels, each written once as safe generic Rust (`*_body`, the
//! portable instance) and once with AVX2 + FMA intrinsics:
//!
//! * [`moments_row`]: one input row of a tile → the horizontally filtered
//!   rows of the four moment maps `x`, `y`, `x² + y²`, `xy`;
//! * [`ssim_row`]: the vertical filter of those maps over a `K`-row window
//!   and the SSIM formula, one output row of the SSIM map.
//!
//! The portable instance (baseline x86-64: SSE2, 2-wide) multiplies and
//! adds separately. The AVX2 + FMA instance (`#[target_feature(enable =
//! "avx2,fma")]`, chosen at run time by [`Isa::detect`] and re-checked on
//! every call) does the same operations in the same order, 4 lanes wide,
//! with each `a * b + c` fused. (It was once the generic body compiled with
//! `mul_add`, but LLVM vectorised that only partly: scalar lanes, blends
//! and spills, 1.9x slower.) The two instances therefore differ in the last bits
//! (each fused multiply-add rounds once instead of twice); the unit tests
//! require them to agree to 1e-12 relative on odd sizes.
//!
//! Both instances sum the taps in the same order, so on a given CPU the
//! result does not depend on how the image is split into tiles or threads.

use super::Isa;

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Number of moment maps: `x`, `y`, `x² + y²`, `xy`.
pub(crate) const MOMENTS: usize = 4;

/// Output columns per block of [`moments_row`] (all four moments of a block
/// are filtered together, in registers); callers pad row widths to a
/// multiple of it.
pub(crate) const H_LANES: usize = 8;

/// Output columns per block of [`ssim_row`] for the scalar instance: two
/// `f64` are one SSE2 register, so the four moment sums never spill.
const V_LANES_SCALAR: usize = 2;

/// One input row of a tile, horizontally filtered into the four moment maps.
///
/// With `n = width` output columns and the symmetric kernel `g`:
/// `dst[m * S + i] = sum_k g[k] * v_m[i + k]` for `i < n`, where `v_0 = x`,
/// `v_1 = y`, `v_2 = x² + y²`, `v_3 = xy`. `scratch` receives `v_2` and
/// `v_3`.
///
/// Panics unless `n` is a multiple of [`H_LANES`] and at most `S`, `x` and
/// `y` hold at least `n + K - 1` samples, `scratch` at least `2 (n + K - 1)`
/// and `dst` at least `MOMENTS * S`.
pub(crate) fn moments_row<const K: usize, const S: usize>(
    isa: Isa,
    g: &[f64; K],
    n: usize,
    x: &[f64],
    y: &[f64],
    scratch: &mut [f64],
    dst: &mut [f64],
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `use_avx2_fma`).
        unsafe { moments_row_avx2_fma::<K, S>(g, n, x, y, scratch, dst) };
        return;
    }
    let _ = isa;
    moments_row_body::<K, S>(g, n, x, y, scratch, dst);
}

/// [`moments_row_body`] compiled for AVX2 + FMA, with fused multiply-adds.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA. All other requirements are checked
/// (the body is safe code).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // k indexes weights and offsets alike
unsafe fn moments_row_avx2_fma<const K: usize, const S: usize>(
    g: &[f64; K],
    n: usize,
    x: &[f64],
    y: &[f64],
    scratch: &mut [f64],
    dst: &mut [f64],
) {
    // Written with intrinsics: LLVM vectorised the generic body's block of
    // four moments only partly (scalar lanes, blends, spills). Same
    // operations in the same order as `moments_row_body` (fused).
    assert!(n % H_LANES == 0 && n <= S, "row width {n}");
    let len = n + K - 1;
    let (x, y) = (&x[..len], &y[..len]);
    let (sq, xy) = scratch[..2 * len].split_at_mut(len);
    for (((s, p), &a), &b) in sq.iter_mut().zip(xy.iter_mut()).zip(x).zip(y) {
        *s = a.mul_add(a, b * b);
        *p = a * b;
    }
    let dst = &mut dst[..MOMENTS * S];
    let gv: [__m256d; K] = std::array::from_fn(|k| _mm256_set1_pd(g[k]));
    let mid = K / 2;
    for (m, src) in [x, y, &*sq, &*xy].into_iter().enumerate() {
        let sp = src.as_ptr();
        let dp = dst[m * S..m * S + n].as_mut_ptr();
        for j in (0..n).step_by(H_LANES) {
            // SAFETY: j + H_LANES <= n, so every load is within
            // src[j..j + H_LANES + K - 1] (len = n + K - 1 samples) and the
            // stores within dst[m S..m S + n].
            let w = sp.add(j);
            let mut a0 = _mm256_mul_pd(gv[mid], _mm256_loadu_pd(w.add(mid)));
            let mut a1 = _mm256_mul_pd(gv[mid], _mm256_loadu_pd(w.add(mid + 4)));
            for k in 0..mid {
                let far = K - 1 - k;
                let p0 = _mm256_add_pd(_mm256_loadu_pd(w.add(k)), _mm256_loadu_pd(w.add(far)));
                let p1 = _mm256_add_pd(
                    _mm256_loadu_pd(w.add(k + 4)),
                    _mm256_loadu_pd(w.add(far + 4)),
                );
                a0 = _mm256_fmadd_pd(gv[k], p0, a0);
                a1 = _mm256_fmadd_pd(gv[k], p1, a1);
            }
            _mm256_storeu_pd(dp.add(j), a0);
            _mm256_storeu_pd(dp.add(j + 4), a1);
        }
    }
}

#[inline(always)]
fn moments_row_body<const K: usize, const S: usize>(
    g: &[f64; K],
    n: usize,
    x: &[f64],
    y: &[f64],
    scratch: &mut [f64],
    dst: &mut [f64],
) {
    assert!(n % H_LANES == 0 && n <= S, "row width {n}");
    let len = n + K - 1;
    let (x, y) = (&x[..len], &y[..len]);
    let (sq, xy) = scratch[..2 * len].split_at_mut(len);
    for (((s, p), &a), &b) in sq.iter_mut().zip(xy.iter_mut()).zip(x).zip(y) {
        *s = a * a + b * b;
        *p = a * b;
    }
    let (sq, xy) = (&*sq, &*xy);
    let dst = &mut dst[..MOMENTS * S];
    let mid = K / 2;
    for j in (0..n).step_by(H_LANES) {
        // The four moments of one block together: independent sums that
        // hide the latency of each one's chain of multiply-adds.
        let mut acc = [[0.0; H_LANES]; MOMENTS];
        for (m, src) in [x, y, sq, xy].into_iter().enumerate() {
            let w = &src[j..j + H_LANES + K - 1];
            let a = &mut acc[m];
            for l in 0..H_LANES {
                a[l] = g[mid] * w[mid + l];
            }
            for k in 0..mid {
                for l in 0..H_LANES {
                    a[l] += g[k] * (w[k + l] + w[K - 1 - k + l]);
                }
            }
        }
        for (m, a) in acc.iter().enumerate() {
            dst[m * S + j..m * S + j + H_LANES].copy_from_slice(a);
        }
    }
}

/// Constants of the SSIM formula.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SsimConstants {
    /// `(K1 L)²`.
    pub c1: f64,
    /// `(K2 L)²`.
    pub c2: f64,
    /// Factor applied to the (co)variances (`1` for population statistics,
    /// `N / (N − 1)` for sample statistics).
    pub cov_norm: f64,
}

/// One output row of the SSIM map from a window of `K` horizontally filtered
/// rows.
///
/// `win` holds `K` consecutive ring slots of `MOMENTS * S` samples, each as
/// [`moments_row`] writes them (moment `m` at offset `m * S`). For `i < n`:
/// `μ_m = sum_k g[k] * win[k * MOMENTS * S + m * S + i]`, and
/// `map[i] = ((2 μx μy + c1)(2 c (μxy − μx μy) + c2)) /
/// ((μx² + μy² + c1)(c (μsq − μx² − μy²) + c2))` with `c = cov_norm`.
///
/// Panics unless `n` is a multiple of [`H_LANES`] and at most `S`, `win`
/// holds at least `K * MOMENTS * S` samples and `map` at least `n`.
pub(crate) fn ssim_row<const K: usize, const S: usize>(
    isa: Isa,
    g: &[f64; K],
    n: usize,
    k: SsimConstants,
    win: &[f64],
    map: &mut [f64],
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `use_avx2_fma`).
        unsafe { ssim_row_avx2_fma::<K, S>(g, n, k, win, map) };
        return;
    }
    let _ = isa;
    ssim_row_body::<K, S, V_LANES_SCALAR>(g, n, k, win, map);
}

/// [`ssim_row_body`] compiled for AVX2 + FMA, with fused multiply-adds.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA. All other requirements are checked
/// (the body is safe code).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // k indexes weights and offsets alike
unsafe fn ssim_row_avx2_fma<const K: usize, const S: usize>(
    g: &[f64; K],
    n: usize,
    k: SsimConstants,
    win: &[f64],
    map: &mut [f64],
) {
    // Intrinsics for the reason given in `moments_row_avx2_fma`; the same
    // operations in the same order as `ssim_row_body` (fused, 4 lanes).
    assert!(n % H_LANES == 0 && n <= S, "row width {n}");
    let slot = MOMENTS * S;
    let win = &win[..K * slot];
    let map = &mut map[..n];
    let gv: [__m256d; K] = std::array::from_fn(|k| _mm256_set1_pd(g[k]));
    let mid = K / 2;
    let wp = win.as_ptr();
    // SAFETY (every load below): m S + i + (K - 1) slot + 4 <= K slot because
    // i + 4 <= n <= S and m <= 3.
    let filter = |at: usize| -> __m256d {
        let c = wp.add(at);
        let mut acc = _mm256_mul_pd(gv[mid], _mm256_loadu_pd(c.add(mid * slot)));
        for t in 0..mid {
            let pair = _mm256_add_pd(
                _mm256_loadu_pd(c.add(t * slot)),
                _mm256_loadu_pd(c.add((K - 1 - t) * slot)),
            );
            acc = _mm256_fmadd_pd(gv[t], pair, acc);
        }
        acc
    };
    let c1 = _mm256_set1_pd(k.c1);
    let c2 = _mm256_set1_pd(k.c2);
    let cn = _mm256_set1_pd(k.cov_norm);
    let two = _mm256_set1_pd(2.0);
    for i in (0..n).step_by(4) {
        let mx = filter(i);
        let my = filter(S + i);
        let ms = filter(2 * S + i);
        let mp = filter(3 * S + i);
        let mxy = _mm256_mul_pd(mx, my);
        let msq = _mm256_fmadd_pd(mx, mx, _mm256_mul_pd(my, my));
        let cov = _mm256_mul_pd(cn, _mm256_sub_pd(mp, mxy));
        let var = _mm256_mul_pd(cn, _mm256_sub_pd(ms, msq));
        let num = _mm256_mul_pd(
            _mm256_add_pd(_mm256_mul_pd(two, mxy), c1),
            _mm256_add_pd(_mm256_mul_pd(two, cov), c2),
        );
        let den = _mm256_mul_pd(_mm256_add_pd(msq, c1), _mm256_add_pd(var, c2));
        // SAFETY: i + 4 <= n = map.len().
        _mm256_storeu_pd(map.as_mut_ptr().add(i), _mm256_div_pd(num, den));
    }
}

/// `sum_k g[k] * col[k * MOMENTS * S + at + l]` for `l < V`, folded
/// (`g[k] (a + b)` for the symmetric pairs).
#[inline(always)]
fn filter_col<const K: usize, const S: usize, const V: usize>(
    col: &[f64],
    at: usize,
    g: &[f64; K],
) -> [f64; V] {
    let slot = MOMENTS * S;
    let mid = K / 2;
    let col = &col[at..at + (K - 1) * slot + V];
    let mut acc = [0.0; V];
    for l in 0..V {
        acc[l] = g[mid] * col[mid * slot + l];
    }
    for k in 0..mid {
        for l in 0..V {
            acc[l] += g[k] * (col[k * slot + l] + col[(K - 1 - k) * slot + l]);
        }
    }
    acc
}

#[inline(always)]
fn ssim_row_body<const K: usize, const S: usize, const V: usize>(
    g: &[f64; K],
    n: usize,
    k: SsimConstants,
    win: &[f64],
    map: &mut [f64],
) {
    assert!(
        n % H_LANES == 0 && n <= S && H_LANES % V == 0,
        "row width {n}"
    );
    let win = &win[..K * MOMENTS * S];
    let SsimConstants { c1, c2, cov_norm } = k;
    for (j, o) in map[..n].chunks_exact_mut(V).enumerate() {
        let i = j * V;
        let mx = filter_col::<K, S, V>(win, i, g);
        let my = filter_col::<K, S, V>(win, S + i, g);
        let ms = filter_col::<K, S, V>(win, 2 * S + i, g);
        let mp = filter_col::<K, S, V>(win, 3 * S + i, g);
        for l in 0..V {
            let mxy = mx[l] * my[l];
            let msq = mx[l] * mx[l] + my[l] * my[l];
            let cov = cov_norm * (mp[l] - mxy);
            let var = cov_norm * (ms[l] - msq);
            o[l] = ((2.0 * mxy + c1) * (2.0 * cov + c2)) / ((msq + c1) * (var + c2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: usize = 40;

    fn data(n: usize, seed: u64) -> Vec<f64> {
        // Deterministic pseudo-random 0..255 samples, not integers.
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64 * 255.0
            })
            .collect()
    }

    fn gauss() -> [f64; 11] {
        let mut g = [0.0; 11];
        for (i, v) in g.iter_mut().enumerate() {
            let d = i as f64 - 5.0;
            *v = (-(d * d) / 4.5).exp();
        }
        let s: f64 = g.iter().sum();
        g.map(|v| v / s)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
    }

    /// Every supported level against a plain reference (direct sums, no
    /// folding), on odd valid widths padded to the block size.
    fn check<const K: usize>(g: &[f64; K], cov_norm: f64) {
        let consts = SsimConstants {
            c1: 6.5025,
            c2: 58.5225,
            cov_norm,
        };
        for valid in [1usize, 7, 13, 33] {
            let n = valid.div_ceil(H_LANES) * H_LANES;
            let len = n + K - 1;
            let rows: Vec<(Vec<f64>, Vec<f64>)> = (0..K as u64)
                .map(|r| (data(len, 2 * r + 1), data(len, 2 * r + 2)))
                .collect();
            // Reference: horizontal then vertical, direct sums.
            let mut want = vec![[0.0; MOMENTS]; n];
            for (r, (x, y)) in rows.iter().enumerate() {
                for (i, w) in want.iter_mut().enumerate() {
                    for t in 0..K {
                        let (a, b) = (x[i + t], y[i + t]);
                        let v = [a, b, a * a + b * b, a * b];
                        for m in 0..MOMENTS {
                            w[m] += g[r] * g[t] * v[m];
                        }
                    }
                }
            }
            let want_map: Vec<f64> = want
                .iter()
                .map(|&[mx, my, ms, mp]| {
                    let cov = cov_norm * (mp - mx * my);
                    let var = cov_norm * (ms - mx * mx - my * my);
                    ((2.0 * mx * my + consts.c1) * (2.0 * cov + consts.c2))
                        / ((mx * mx + my * my + consts.c1) * (var + consts.c2))
                })
                .collect();
            for isa in [Isa::Scalar, Isa::Avx2Fma] {
                if !isa.is_supported() {
                    continue;
                }
                let mut win = vec![0.0; K * MOMENTS * S];
                let mut scratch = vec![0.0; 2 * len];
                for (r, (x, y)) in rows.iter().enumerate() {
                    let slot = &mut win[r * MOMENTS * S..(r + 1) * MOMENTS * S];
                    moments_row::<K, S>(isa, g, n, x, y, &mut scratch, slot);
                }
                let mut map = vec![0.0; n];
                ssim_row::<K, S>(isa, g, n, consts, &win, &mut map);
                for i in 0..valid {
                    let got: Vec<f64> = (0..MOMENTS)
                        .map(|m| {
                            (0..K)
                                .map(|r| g[r] * win[r * MOMENTS * S + m * S + i])
                                .sum()
                        })
                        .collect();
                    for m in 0..MOMENTS {
                        assert!(
                            (got[m] - want[i][m]).abs() <= 1e-12 * want[i][m].abs(),
                            "{isa:?} K={K} n={valid} i={i} m={m}: {} vs {}",
                            got[m],
                            want[i][m]
                        );
                    }
                    // The SSIM of random data is small and cancels: compare
                    // against the reference within its own conditioning.
                    assert!(
                        (map[i] - want_map[i]).abs() <= 1e-9 * want_map[i].abs().max(1e-3),
                        "{isa:?} K={K} n={valid} i={i}: {} vs {}",
                        map[i],
                        want_map[i]
                    );
                }
            }
        }
    }

    #[test]
    fn levels_match_reference() {
        check(&gauss(), 1.0);
        check(&[1.0 / 7.0; 7], 49.0 / 48.0);
    }

    /// The AVX2 + FMA instance against the scalar one: 1e-12 relative on
    /// every filtered moment and on the SSIM of smooth (realistic) data.
    #[test]
    fn avx2_fma_matches_scalar() {
        if !Isa::Avx2Fma.is_supported() {
            return;
        }
        let g = gauss();
        const K: usize = 11;
        for valid in [1usize, 9, 17, 31, 39] {
            let n = valid.div_ceil(H_LANES) * H_LANES;
            let len = n + K - 1;
            let mut wins = Vec::new();
            let mut maps = Vec::new();
            for isa in [Isa::Scalar, Isa::Avx2Fma] {
                let mut win = vec![0.0; K * MOMENTS * S];
                let mut scratch = vec![0.0; 2 * len];
                for r in 0..K {
                    // Correlated, smooth pair: SSIM near 1, as on images.
                    let x: Vec<f64> = (0..len)
                        .map(|i| {
                            128.0 + 90.0 * ((i + 3 * r) as f64 * 0.37).sin() + 0.013 * i as f64
                        })
                        .collect();
                    let noise = data(len, r as u64 + 100);
                    let y: Vec<f64> = x.iter().zip(&noise).map(|(a, e)| a + e / 50.0).collect();
                    let slot = &mut win[r * MOMENTS * S..(r + 1) * MOMENTS * S];
                    moments_row::<K, S>(isa, &g, n, &x, &y, &mut scratch, slot);
                }
                let mut map = vec![0.0; n];
                let consts = SsimConstants {
                    c1: 6.5025,
                    c2: 58.5225,
                    cov_norm: 1.0,
                };
                ssim_row::<K, S>(isa, &g, n, consts, &win, &mut map);
                wins.push(win);
                maps.push(map);
            }
            for r in 0..K {
                for m in 0..MOMENTS {
                    for i in 0..valid {
                        let at = r * MOMENTS * S + m * S + i;
                        assert!(
                            close(wins[0][at], wins[1][at]),
                            "n={valid} r={r} m={m} i={i}"
                        );
                    }
                }
            }
            for (i, (a, b)) in maps[0].iter().zip(&maps[1]).take(valid).enumerate() {
                assert!(close(*a, *b), "n={valid} i={i}: {a} vs {b}");
            }
        }
    }
}
