//! Per-ISA inner loops of [`crate::resample`], behind safe dispatchers.
//!
//! Every kernel is written once, as safe generic Rust (`*_body`), and
//! instantiated twice (the horizontal pass's accumulation also has an AVX2
//! intrinsics version that stores its sums as vectors, same operations in
//! the same order): plainly (the scalar / baseline-x86-64 fallback, which
//! SSE2 vectorises 2-wide) and inside an `#[target_feature(enable = "avx2")]`
//! wrapper, where LLVM vectorises the same code 4-wide over `f64`. The
//! dispatchers pick the AVX2 instance only when the CPU reports AVX2 at run
//! time ([`Isa::detect`], re-checked on every call, so no [`Isa`] value can
//! make them run an unsupported instruction).
//!
//! # Same bits on every ISA
//!
//! FMA is deliberately **not** enabled with AVX2, and Rust never contracts
//! `a * b + c` into a fused multiply-add by itself: each output sample is the
//! same sequence of separately rounded `f64` multiplications and additions,
//! taps in ascending order, in both instances. Vectorisation only runs
//! independent samples side by side, so the scalar and AVX2 results are
//! identical to the last bit (tested in `resample`'s unit tests).

use super::{map_body, Isa};

/// A stored sample type the passes read: `f32` or `f64`, widened exactly.
pub(crate) trait Sample: Copy + Default + Send + Sync + 'static {
    /// Widens to `f64` (exact).
    fn to_f64(self) -> f64;
}

impl Sample for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Sample for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// Columns per register block of [`vertical_row`] for the scalar instance
/// (8 SSE2 registers of sums).
const XBLOCK_SCALAR: usize = 16;
/// Columns per register block for the AVX2 instance (8 YMM registers of
/// sums, enough independent additions to hide their latency).
const XBLOCK_AVX2: usize = 32;

/// One output row of the vertical pass:
/// `out[x] = store(sum_j ws[j] * src[offs[j] + x])`, taps `j` ascending,
/// each sum starting from `0.0`.
///
/// Panics if some `offs[j] + out.len() > src.len()` or `offs` is shorter than
/// `ws`.
pub(crate) fn vertical_row<S, T, F>(
    isa: Isa,
    src: &[S],
    offs: &[usize],
    ws: &[f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { vertical_row_avx2(src, offs, ws, out, store) };
        return;
    }
    let _ = isa;
    vertical_row_body::<S, T, F, XBLOCK_SCALAR>(src, offs, ws, out, store);
}

/// [`vertical_row_body`] compiled for AVX2 (no FMA).
///
/// # Safety
///
/// The CPU must support AVX2. All other requirements are checked (the body
/// is safe code).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2")]
unsafe fn vertical_row_avx2<S, T, F>(
    src: &[S],
    offs: &[usize],
    ws: &[f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    vertical_row_body::<S, T, F, XBLOCK_AVX2>(src, offs, ws, out, store);
}

#[inline(always)]
fn vertical_row_body<S, T, F, const XB: usize>(
    src: &[S],
    offs: &[usize],
    ws: &[f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    let w = out.len();
    let offs = &offs[..ws.len()];
    // One up-front check lets the block loads below skip theirs.
    assert!(offs.iter().all(|&o| o + w <= src.len()));
    let full = w - w % XB;
    for x0 in (0..full).step_by(XB) {
        // Sums stay in registers across the taps.
        let mut sums = [0.0f64; XB];
        for (&wt, &off) in ws.iter().zip(offs) {
            let row: &[S; XB] = src[off + x0..off + x0 + XB]
                .try_into()
                .expect("block of XB");
            for i in 0..XB {
                sums[i] += wt * row[i].to_f64();
            }
        }
        map_body(&sums, &mut out[x0..x0 + XB], store);
    }
    if full < w {
        let mut sums = [0.0f64; XB];
        let rem = w - full;
        for (&wt, &off) in ws.iter().zip(offs) {
            let row = &src[off + full..off + w];
            for (s, &v) in sums[..rem].iter_mut().zip(row) {
                *s += wt * v.to_f64();
            }
        }
        map_body(&sums[..rem], &mut out[full..], store);
    }
}

/// Rows interleaved per horizontal-pass strip (the vector width of its tap
/// loop): two AVX2 or four SSE2 registers of sums.
pub(crate) const STRIP: usize = 8;

/// What [`horizontal_strip`] needs to know about the horizontal axis.
pub(crate) struct HorizontalPlan<'a> {
    /// Input row length.
    pub w_in: usize,
    /// Input column of every padded position (the border rule applied).
    pub pmap: &'a [usize],
    /// First padded position of each output's taps.
    pub base: &'a [usize],
    /// Taps per output.
    pub taps: usize,
    /// Weights, `base.len() * taps`.
    pub weights: &'a [f64],
}

/// One strip of up to [`STRIP`] rows of the horizontal pass.
///
/// `rows` holds `nrows = out.len() / base.len()` consecutive input rows of
/// `w_in` samples. Output `x` of row `r` is the sum over taps `j`
/// (ascending, from `0.0`) of `weights[x * taps + j] * rows[r][pmap[base[x]
/// + j]]`, stored through `store`. `strip` (`pmap.len() * STRIP`) and `sums`
/// (`STRIP * base.len()`) are scratch.
///
/// Panics if the slices are inconsistent (out of bounds).
pub(crate) fn horizontal_strip<S, T, F>(
    isa: Isa,
    plan: &HorizontalPlan<'_>,
    rows: &[S],
    strip: &mut [f64],
    sums: &mut [f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { horizontal_strip_avx2(plan, rows, strip, sums, out, store) };
        return;
    }
    let _ = isa;
    horizontal_strip_body(plan, rows, strip, sums, out, store);
}

/// [`horizontal_strip_body`] compiled for AVX2 (no FMA).
///
/// # Safety
///
/// The CPU must support AVX2. All other requirements are checked (the body
/// is safe code).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_strip_avx2<S, T, F>(
    plan: &HorizontalPlan<'_>,
    rows: &[S],
    strip: &mut [f64],
    sums: &mut [f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    let w_out = plan.base.len();
    let strip = gather_strip(plan, rows, strip, out.len() / w_out);
    let sums = &mut sums[..STRIP * w_out];
    // Four outputs at a time with intrinsics; each output's sums are the
    // portable body's (from 0.0, taps ascending, multiply then add, no FMA),
    // so the bits match. The generic loop compiled here spent most of its
    // time scattering every output's 8 row sums with scalar stores; a 4x4
    // transpose per half-strip stores them as vectors instead.
    let quads = w_out / 4 * 4;
    accumulate_quads_avx2(plan, strip, sums, quads);
    accumulate(plan, strip, sums, quads..w_out);
    map_body(&sums[..out.len()], out, store);
}

/// Outputs `0..quads` (a multiple of 4) of [`accumulate`], four at a time.
///
/// # Safety
///
/// The CPU must support AVX2. Everything else is checked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_quads_avx2(
    plan: &HorizontalPlan<'_>,
    strip: &[f64],
    sums: &mut [f64],
    quads: usize,
) {
    use std::arch::x86_64::*;
    let (taps, w_out) = (plan.taps, plan.base.len());
    assert!(quads % 4 == 0 && quads <= w_out && sums.len() >= STRIP * w_out);
    assert!(plan.weights.len() >= w_out * taps);
    assert!(plan.base[..quads]
        .iter()
        .all(|&b| (b + taps) * STRIP <= strip.len()));
    let sp = sums.as_mut_ptr();
    for x in (0..quads).step_by(4) {
        let mut lo = [_mm256_setzero_pd(); 4];
        let mut hi = [_mm256_setzero_pd(); 4];
        for l in 0..4 {
            // SAFETY: (base[x + l] + taps) * STRIP <= strip.len() and
            // (x + l + 1) * taps <= weights.len() (asserted).
            let ws = plan.weights.as_ptr().add((x + l) * taps);
            let cells = strip.as_ptr().add(plan.base[x + l] * STRIP);
            for j in 0..taps {
                let wt = _mm256_set1_pd(*ws.add(j));
                let cell = cells.add(j * STRIP);
                lo[l] = _mm256_add_pd(lo[l], _mm256_mul_pd(wt, _mm256_loadu_pd(cell)));
                hi[l] = _mm256_add_pd(hi[l], _mm256_mul_pd(wt, _mm256_loadu_pd(cell.add(4))));
            }
        }
        // lo[l] holds rows 0..4 of output x + l (hi: rows 4..8); after the
        // transpose, vector i holds outputs x..x+4 of row i.
        for (half, v) in [lo, hi].iter().enumerate() {
            let t0 = _mm256_unpacklo_pd(v[0], v[1]);
            let t1 = _mm256_unpackhi_pd(v[0], v[1]);
            let t2 = _mm256_unpacklo_pd(v[2], v[3]);
            let t3 = _mm256_unpackhi_pd(v[2], v[3]);
            let rows = [
                _mm256_permute2f128_pd(t0, t2, 0x20),
                _mm256_permute2f128_pd(t1, t3, 0x20),
                _mm256_permute2f128_pd(t0, t2, 0x31),
                _mm256_permute2f128_pd(t1, t3, 0x31),
            ];
            for (i, row) in rows.iter().enumerate() {
                // SAFETY: row 4 half + i < STRIP and x + 4 <= w_out, so
                // inside sums[..STRIP * w_out] (asserted).
                _mm256_storeu_pd(sp.add((4 * half + i) * w_out + x), *row);
            }
        }
    }
}

/// 32-bit x86 has no quad kernel: the portable loop.
#[cfg(target_arch = "x86")]
unsafe fn accumulate_quads_avx2(
    plan: &HorizontalPlan<'_>,
    strip: &[f64],
    sums: &mut [f64],
    quads: usize,
) {
    accumulate(plan, strip, sums, 0..quads);
}

#[inline(always)]
fn horizontal_strip_body<S, T, F>(
    plan: &HorizontalPlan<'_>,
    rows: &[S],
    strip: &mut [f64],
    sums: &mut [f64],
    out: &mut [T],
    store: &F,
) where
    S: Sample,
    F: Fn(f64) -> T,
{
    let w_out = plan.base.len();
    let strip = gather_strip(plan, rows, strip, out.len() / w_out);
    accumulate(plan, strip, sums, 0..w_out);
    map_body(&sums[..out.len()], out, store);
}

/// Fills the strip, `strip[p * STRIP + r]` = row `r` at padded position
/// `p` (zeros for rows `nrows..STRIP`), and returns it.
#[inline(always)]
fn gather_strip<'s, S: Sample>(
    plan: &HorizontalPlan<'_>,
    rows: &[S],
    strip: &'s mut [f64],
    nrows: usize,
) -> &'s [f64] {
    let w_in = plan.w_in;
    let strip = &mut strip[..plan.pmap.len() * STRIP];
    for r in 0..STRIP {
        if r < nrows {
            let row = &rows[r * w_in..(r + 1) * w_in];
            for (cell, &ix) in strip.chunks_exact_mut(STRIP).zip(plan.pmap) {
                cell[r] = row[ix].to_f64();
            }
        } else {
            for cell in strip.chunks_exact_mut(STRIP) {
                cell[r] = 0.0;
            }
        }
    }
    strip
}

/// `sums[r * w_out + x]` = sum over taps `j` (ascending, from `0.0`) of
/// `weights[x * taps + j] * strip[(base[x] + j) * STRIP + r]`, for the
/// outputs `x` in `xs`.
#[inline(always)]
fn accumulate(
    plan: &HorizontalPlan<'_>,
    strip: &[f64],
    sums: &mut [f64],
    xs: std::ops::Range<usize>,
) {
    let (taps, w_out) = (plan.taps, plan.base.len());
    let sums = &mut sums[..STRIP * w_out];
    for x in xs {
        let (ws, b) = (&plan.weights[x * taps..(x + 1) * taps], plan.base[x]);
        let s = &strip[b * STRIP..(b + taps) * STRIP];
        let mut acc = [0.0f64; STRIP];
        for (&wt, cell) in ws.iter().zip(s.chunks_exact(STRIP)) {
            let cell: &[f64; STRIP] = cell.try_into().expect("chunk of STRIP");
            for r in 0..STRIP {
                acc[r] += wt * cell[r];
            }
        }
        for (r, &a) in acc.iter().enumerate() {
            sums[r * w_out + x] = a;
        }
    }
}

/// `dst[i] = fallback(src[i])` where `fallback(v)` must be
/// `round_half_away(v * m)` saturated to `[0, m]` (NaN → 0) computed
/// exactly, for `m` = 255 or 65535: the conversion of an 8/16-bit image's
/// `[0, 1]` samples to the integer units MATLAB works in.
///
/// With AVX2 + FMA this runs 8 lanes in `f32` and still gives the exact
/// result for every `f32` input: the product `p = v * m` is rounded, but
/// `fma(v, m, -p)` recovers its error `e` exactly, and rounding `p` instead
/// of `v * m` can only go wrong on a tie (`p = k + 0.5` exactly; rounding
/// is monotonic and `k + 0.5` is representable), where the sign of `e`
/// says which side the exact product is on. (A 24-bit sample times a
/// 16-bit `m` is exact in `f64`, which is how `fallback` computes it.)
pub(crate) fn quantize<F: Fn(f32) -> f32>(
    isa: Isa,
    src: &[f32],
    dst: &mut [f32],
    m: f32,
    fallback: &F,
) {
    assert_eq!(src.len(), dst.len());
    let head = src.len() - src.len() % 8;
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() && m < (1 << 23) as f32 {
        // SAFETY: AVX2 and FMA are present (checked by `use_avx2_fma`).
        unsafe { quantize_avx2_fma(&src[..head], &mut dst[..head], m) };
        map_body(&src[head..], &mut dst[head..], fallback);
        return;
    }
    let _ = (isa, head);
    super::map(isa, src, dst, fallback);
}

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths are equal multiples of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_avx2_fma(src: &[f32], dst: &mut [f32], m: f32) {
    use std::arch::x86_64::*;
    let mv = _mm256_set1_ps(m);
    let (zero, half, one) = (
        _mm256_setzero_ps(),
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(1.0),
    );
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        let v = _mm256_loadu_ps(s.as_ptr());
        let p = _mm256_mul_ps(v, mv);
        let e = _mm256_fmsub_ps(v, mv, p);
        let fl = _mm256_floor_ps(p);
        // Exact for |p| < 2^23; above, p is an integer and frac is 0.
        let frac = _mm256_sub_ps(p, fl);
        let up = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(frac, half),
            _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_EQ_OQ>(frac, half),
                _mm256_cmp_ps::<_CMP_GE_OQ>(e, zero),
            ),
        );
        let r = _mm256_add_ps(fl, _mm256_and_ps(up, one));
        // max(r, 0) returns its second operand, 0, when r is NaN.
        let r = _mm256_min_ps(_mm256_max_ps(r, zero), mv);
        _mm256_storeu_ps(d.as_mut_ptr(), r);
    }
}
