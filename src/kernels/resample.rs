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
//!
//! The 8-bit passes (`*_u8`, AVX2 + FMA only) are the exception that
//! proves it: they sum in `f32` with FMA, but only to decide which integer
//! a sum rounds to, and hand every sum that the `f32` error bound cannot
//! place to the exact `f64` loop above; their bytes equal the `f64` path's
//! rounded output (same tests). The 8-bit horizontal pass of a
//! whole-factor enlargement also sums along each row rather than across a
//! strip of rows ([`Polyphase`]): the same `f32` sums in another loop order.

use std::mem::MaybeUninit;

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
    w_in: usize,
    /// Input column of every padded position (the border rule applied).
    pmap: &'a [usize],
    /// First padded position of each output's taps.
    base: &'a [usize],
    /// Taps per output.
    taps: usize,
    /// Weights, `base.len() * taps`.
    weights: &'a [f64],
    /// Padded positions `p` whose columns run consecutively:
    /// `pmap[p] = pmap[start] + (p - start)` (the interior, away from the
    /// border rule).
    consecutive: std::ops::Range<usize>,
}

impl<'a> HorizontalPlan<'a> {
    /// Checks, once per pass, what the strip kernels rely on for every
    /// strip: each output's taps lie within the padded positions, each
    /// padded position maps into the row, the weights cover every output,
    /// and the consecutive run is one.
    ///
    /// Panics if not.
    pub(crate) fn new(
        w_in: usize,
        pmap: &'a [usize],
        base: &'a [usize],
        taps: usize,
        weights: &'a [f64],
        consecutive: std::ops::Range<usize>,
    ) -> Self {
        assert!(pmap.iter().all(|&ix| ix < w_in));
        assert!(base.iter().all(|&b| b + taps <= pmap.len()));
        assert_eq!(weights.len(), base.len() * taps);
        assert!(consecutive.end <= pmap.len());
        assert!(consecutive
            .clone()
            .all(|p| pmap[p] == pmap[consecutive.start] + (p - consecutive.start)));
        HorizontalPlan {
            w_in,
            pmap,
            base,
            taps,
            weights,
            consecutive,
        }
    }
}

/// The periodic interior of an 8-bit horizontal pass that enlarges by a
/// whole factor: there, output `first + period * k + p` reads the input
/// columns `col0 + offs[p] + k + j` (taps `j`) with the same `f32` weights
/// for every `k`, so eight consecutive `k` of one phase `p` read eight
/// consecutive bytes per tap, like a vertical pass: no transposition, and
/// the weights are broadcast once per block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polyphase {
    /// Outputs per input column (2, 3 or 4).
    period: usize,
    /// First output of the run.
    first: usize,
    /// Blocks of 8 periods in the run.
    blocks: usize,
    /// Whole periods in the run (the blocks' and up to 7 more).
    periods: usize,
    /// Input column of output `first`'s first tap.
    col0: usize,
    /// Phase `p`'s first tap column, relative to `col0`.
    offs: [usize; 4],
}

/// Phases of [`Polyphase`] handled (a whole-factor upscale by 2, 3 or 4).
const POLYPHASE_PERIODS: std::ops::RangeInclusive<usize> = 2..=4;

/// Tap counts with a [`Polyphase`] kernel: linear, cubic, Lanczos3.
const POLYPHASE_TAPS: [usize; 3] = [2, 4, 6];

impl Polyphase {
    /// Finds the longest run of outputs whose taps all lie in the plan's
    /// consecutive columns and repeat with a period of 2, 3 or 4 outputs per
    /// input column, with bit-identical `f32` weights (`weights32`, the
    /// plan's weights rounded): the sums there are the very `f32` values the
    /// strip path computes. `None` when there is no such run of at least 8
    /// periods (downscales, non-integer factors, narrow images) or the kernel
    /// has other than 2, 4 or 6 taps (no instance of the run's kernel).
    pub(crate) fn find(plan: &HorizontalPlan<'_>, weights32: &[f32]) -> Option<Polyphase> {
        let (taps, base, run) = (plan.taps, plan.base, &plan.consecutive);
        assert_eq!(weights32.len(), base.len() * taps);
        let inside = |x: usize| base[x] >= run.start && base[x] + taps <= run.end;
        let row = |x: usize| &weights32[x * taps..(x + 1) * taps];
        if !POLYPHASE_TAPS.contains(&taps) {
            return None;
        }
        let first = (0..base.len()).find(|&x| inside(x))?;
        let last = (first..base.len()).take_while(|&x| inside(x)).last()? + 1;
        POLYPHASE_PERIODS.clone().find_map(|period| {
            // Outputs x and x + period: one column apart, same weights.
            let repeats = |x: usize| base[x + period] == base[x] + 1 && row(x + period) == row(x);
            let end = (first..last.saturating_sub(period))
                .take_while(|&x| repeats(x))
                .last()?
                + period
                + 1;
            let blocks = (end - first) / period / 8;
            let offs: [usize; 4] =
                std::array::from_fn(|p| base[first + p.min(period - 1)] - base[first]);
            (blocks > 0).then(|| Polyphase {
                period,
                first,
                blocks,
                periods: (end - first) / period,
                col0: plan.pmap[base[first]],
                offs,
            })
        })
    }

    /// Outputs per input column.
    #[cfg(test)]
    pub(crate) fn period(&self) -> usize {
        self.period
    }

    /// Outputs the run covers.
    pub(crate) fn outputs(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.blocks * 8 * self.period
    }
}

impl HorizontalPlan<'_> {
    /// Padded positions of a strip.
    pub(crate) fn padded_len(&self) -> usize {
        self.pmap.len()
    }

    /// Outputs per row.
    pub(crate) fn out_len(&self) -> usize {
        self.base.len()
    }

    /// Input samples per row.
    pub(crate) fn in_len(&self) -> usize {
        self.w_in
    }
}

/// One strip of up to [`STRIP`] rows of the horizontal pass.
///
/// `rows` holds `nrows = out.len() / base.len()` consecutive input rows of
/// `w_in` samples. Output `x` of row `r` is the sum over taps `j`
/// (ascending, from `0.0`) of
/// `weights[x * taps + j] * rows[r][pmap[base[x] + j]]`, stored through
/// `store`. `strip` (`pmap.len() * STRIP`) and `sums` (`STRIP * base.len()`)
/// are scratch.
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
    // The plan guarantees base[x] + taps <= pmap.len() and the weights'
    // length (checked once, in `HorizontalPlan::new`).
    assert!(strip.len() >= plan.pmap.len() * STRIP);
    let sp = sums.as_mut_ptr();
    for x in (0..quads).step_by(4) {
        let mut lo = [_mm256_setzero_pd(); 4];
        let mut hi = [_mm256_setzero_pd(); 4];
        for l in 0..4 {
            // SAFETY: (base[x + l] + taps) * STRIP <= pmap.len() * STRIP
            // <= strip.len() and (x + l + 1) * taps <= weights.len() (the
            // plan's invariants and the assert above).
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
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        let r = quantize8(_mm256_loadu_ps(s.as_ptr()), mv);
        _mm256_storeu_ps(d.as_mut_ptr(), r);
    }
}

/// [`quantize`]'s 8 lanes: `round_half_away(v * m)` saturated to `[0, m]`
/// (NaN → 0), exactly.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize8(
    v: std::arch::x86_64::__m256,
    mv: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let (zero, half, one) = (
        _mm256_setzero_ps(),
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(1.0),
    );
    {
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
        _mm256_min_ps(_mm256_max_ps(r, zero), mv)
    }
}

/// `dst[i] = fallback(src[i])`, where `fallback` must be [`quantize`]'s
/// for `m = 255` (returning the integer as a byte): an 8-bit image's `[0,
/// 1]` samples as the bytes [`horizontal_strip_u8`] and
/// [`vertical_rows_u8`] work on.
pub(crate) fn quantize_u8<F: Fn(f32) -> u8>(isa: Isa, src: &[f32], dst: &mut [u8], fallback: &F) {
    assert_eq!(src.len(), dst.len());
    let head = src.len() - src.len() % 32;
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked by `use_avx2_fma`).
        unsafe { quantize_u8_avx2_fma(&src[..head], &mut dst[..head]) };
        map_body(&src[head..], &mut dst[head..], fallback);
        return;
    }
    let _ = (isa, head);
    map_body(src, dst, fallback);
}

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths are equal multiples of
/// 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_u8_avx2_fma(src: &[f32], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let mv = _mm256_set1_ps(255.0);
    for (s, d) in src.chunks_exact(32).zip(dst.chunks_exact_mut(32)) {
        let q: [__m256i; 4] = std::array::from_fn(|v| {
            _mm256_cvtps_epi32(quantize8(_mm256_loadu_ps(s.as_ptr().add(8 * v)), mv))
        });
        let bytes = narrow4x8(q[0], q[1], q[2], q[3]);
        for (c, b) in d.chunks_exact_mut(8).zip(bytes) {
            c.copy_from_slice(&b.to_le_bytes());
        }
    }
}

/// `dst[i] = (src[i] as f64 / 255.0) as f32`: bytes back to an 8-bit
/// image's canonical `[0, 1]` samples.
pub(crate) fn expand_u8(isa: Isa, src: &[u8], dst: &mut [MaybeUninit<f32>]) {
    assert_eq!(src.len(), dst.len());
    let head = src.len() - src.len() % 8;
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked by `use_avx2_fma`).
        unsafe { expand_u8_avx2_fma(&src[..head], &mut dst[..head]) };
        map_body(&src[head..], &mut dst[head..], &expand_one);
        return;
    }
    let _ = (isa, head);
    map_body(src, dst, &expand_one);
}

#[inline(always)]
fn expand_one(k: u8) -> MaybeUninit<f32> {
    MaybeUninit::new((f64::from(k) / 255.0) as f32)
}

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths are equal multiples of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn expand_u8_avx2_fma(src: &[u8], dst: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let (m, inv) = (_mm256_set1_ps(255.0), _mm256_set1_ps(1.0 / 255.0));
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        let k = widen8(s.as_ptr());
        // The quotient rounded once, without a division: q = k * (1/255),
        // its residual k - q * 255 (exact by FMA), one correction step;
        // equal to the f64 quotient rounded to f32 for every byte (tested).
        let q = _mm256_mul_ps(k, inv);
        let residual = _mm256_fnmadd_ps(q, m, k);
        _mm256_storeu_ps(d.as_mut_ptr().cast(), _mm256_fmadd_ps(residual, inv, q));
    }
}

/// A bound on how far an `f32` FMA sum of `taps` products of `f32`-rounded
/// weights with integer samples in `0..=m` can lie from the `f64` sum of the
/// exact weights that MATLAB computes, given `abs_sum = sum |w|` of the
/// weights: `(taps + 1) * 2^-24 * m * abs_sum` covers the weights' rounding
/// and one rounding per fused multiply-add (the `f64` sum's own error is
/// 2^29 times smaller); twice that leaves a margin.
pub(crate) fn screen_delta(taps: usize, m: f64, abs_sum: f64) -> f64 {
    (taps + 2) as f64 * f64::powi(2.0, -23) * m * abs_sum
}

/// Output rows of the 8-bit vertical pass: `out[x]` =
/// `store(sum_j ws[j] * src[offs[j] + x])`, the exact `f64` sum (taps
/// ascending, as [`vertical_row`]) rounded by `store` to `0..=255`,
/// computed 8 lanes at a time in `f32` with FMA (`ws32` = `ws` rounded to
/// `f32`). The bytes are widened to `f32` as each tap reads them: widening
/// each input row once per task into an `f32` buffer instead was slower
/// (x4 downscale 2048² -> 512², best of 30: 7.1 -> 9.6 ms), its stores
/// and 4x larger reads costing more than the conversions they saved.
///
/// Which integer a sum rounds to depends only on which interval `(k - 1/2,
/// k + 1/2)` holds it, so the `f32` sum decides whenever it lies more than
/// `delta` (a bound on its distance from the `f64` sum, see
/// [`screen_delta`]) from every tie `k + 1/2`; the few lanes that do not
/// (common only for kernels whose weights are multiples of 1/4) are
/// recomputed exactly. `store` must be MATLAB's conversion to `uint8`
/// (round half away from zero, saturate). Every element of `out` is
/// written.
///
/// Two consecutive output rows usually share most of their input rows (an
/// x4 downscale's 18 taps advance by 4 rows): `second`, when given, is
/// summed in the same sweep as the first, each shared input vector widened
/// once for both, its taps still in ascending order, so both rows' sums
/// are the very `f32` values the one-row sweep gives. (Four rows per
/// sweep, with a test per row and input row of whether it is one of the
/// row's taps, ran 1.57x slower than pairs.) `ahead` is a hint for a pair:
/// offsets of the input rows the next call will need that these rows do
/// not, to prefetch during this sweep.
///
/// Returns false (doing nothing) unless the CPU has AVX2 and FMA.
pub(crate) fn vertical_rows_u8<F: Fn(f64) -> u8>(
    isa: Isa,
    src: &[u8],
    (first, out): (RowTaps<'_>, &mut [MaybeUninit<u8>]),
    second: Option<(RowTaps<'_>, &mut [MaybeUninit<u8>])>,
    ahead: &[usize],
    delta: f32,
    store: &F,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        let w = out.len();
        let check = |t: &RowTaps<'_>| {
            assert!(t.offs.len() == t.ws.len() && t.ws32.len() == t.ws.len());
            assert!(t.offs.iter().all(|&o| o + w <= src.len()));
        };
        check(&first);
        let Some((next, out2)) = second else {
            // SAFETY: AVX2 and FMA are present; every row read is in
            // bounds (checked).
            unsafe { vertical_row_u8_avx2(src, first, delta, out, store) };
            return true;
        };
        check(&next);
        assert_eq!(out2.len(), w);
        let taps = first.offs.len();
        // The shift `d`: the second row's taps begin at the first's tap d.
        let shift = (0..taps)
            .find(|&d| next.offs.len() == taps && first.offs[d..] == next.offs[..taps - d]);
        // SAFETY: as above, for both rows; `shift` is checked.
        unsafe {
            match shift {
                Some(d) => {
                    vertical_pair_u8_avx2(src, first, next, d, ahead, delta, out, out2, store)
                }
                None => {
                    vertical_row_u8_avx2(src, first, delta, out, store);
                    vertical_row_u8_avx2(src, next, delta, out2, store);
                }
            }
        }
        return true;
    }
    let _ = (isa, src, first, out, second, delta, store);
    false
}

/// One output row's taps in the 8-bit vertical pass: tap `j` reads the
/// input row at offset `offs[j]` with weight `ws[j]` (`ws32[j]` rounded to
/// `f32`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowTaps<'a> {
    /// Offsets of the tap rows in the plane.
    pub offs: &'a [usize],
    /// Exact weights.
    pub ws: &'a [f64],
    /// The weights rounded to `f32`.
    pub ws32: &'a [f32],
}

/// The exact `f64` sum of output `x` of an 8-bit vertical row (the order of
/// [`vertical_row_body`]).
#[inline(always)]
fn vertical_exact_u8(src: &[u8], offs: &[usize], ws: &[f64], x: usize) -> f64 {
    let mut s = 0.0f64;
    for (&wt, &off) in ws.iter().zip(offs) {
        s += wt * f64::from(src[off + x]);
    }
    s
}

/// Rounds `N` vectors of 8 `f32` sums to integers; returns them as `i32`
/// lanes (not yet saturated: [`narrow4x8`] does that) and the mask of
/// lanes within `delta` of a tie (bit `8 * v + lane`). `delta` = 0 says
/// the sums are exact (no rounding error at all), and MATLAB's rounding
/// is applied to them directly, ties included.
///
/// Near-ties are rare (about one sum in a thousand), so the block's
/// largest distance from an integer is tested first and the per-lane masks
/// are made only when it is near a tie: one compare for the block instead
/// of one compare, mask and shift per vector.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn round_u8<const N: usize>(
    p: [std::arch::x86_64::__m256; N],
    delta: f32,
) -> ([std::arch::x86_64::__m256i; N], u64) {
    use std::arch::x86_64::*;
    if delta == 0.0 {
        // Exact sums: MATLAB's round half away from zero is floor(p + 1/2)
        // wherever the result is not saturated to 0 (p + 1/2 is exact too),
        // and no lane needs recomputing: no branch on ties.
        let half = _mm256_set1_ps(0.5);
        let r = p.map(|v| _mm256_floor_ps(_mm256_add_ps(v, half)));
        return (r.map(|v| _mm256_cvtps_epi32(v)), 0);
    }
    // Round to nearest (ties to even, but a lane near a tie is recomputed
    // anyway); |p - r| <= 1/2 is exact, and a lane is decided when it is
    // below 1/2 - delta.
    let r = p.map(|v| _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v));
    let abs = _mm256_set1_ps(-0.0);
    let dist: [__m256; N] =
        std::array::from_fn(|i| _mm256_andnot_ps(abs, _mm256_sub_ps(p[i], r[i])));
    let limit = _mm256_set1_ps(0.5 - delta);
    let far = dist
        .iter()
        .fold(_mm256_setzero_ps(), |m, &d| _mm256_max_ps(m, d));
    let mut near = 0u64;
    if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(far, limit)) != 0 {
        for (i, &d) in dist.iter().enumerate() {
            let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(d, limit));
            near |= (m as u32 as u64) << (8 * i);
        }
    }
    (r.map(|v| _mm256_cvtps_epi32(v)), near)
}

/// Narrows four vectors of 8 `i32` lanes to 8 bytes each, saturating to
/// `0..=255` (MATLAB's `uint8` saturation).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow4x8(
    a: std::arch::x86_64::__m256i,
    b: std::arch::x86_64::__m256i,
    c: std::arch::x86_64::__m256i,
    d: std::arch::x86_64::__m256i,
) -> [u64; 4] {
    use std::arch::x86_64::*;
    // Per 128-bit half: lanes 0..4 (low half) or 4..8 (high half) of a, b,
    // c, d as bytes; then gather each vector's two groups of four.
    let ab = _mm256_packus_epi32(a, b);
    let cd = _mm256_packus_epi32(c, d);
    let bytes = _mm256_packus_epi16(ab, cd);
    let v = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let mut out = [0u64; 4];
    _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
    out
}

/// Loads 8 bytes as 8 `f32` lanes.
///
/// # Safety
/// The CPU must support AVX2; `p` must point at 8 readable bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen8(p: *const u8) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())))
}

/// Vectors of sums per block of the vertical sweeps: enough independent
/// FMAs to hide their latency.
const VBLOCK: usize = 4;

/// How many bytes ahead of the block being summed the pair sweep
/// prefetches its tap rows (512 was no better).
///
/// With many taps (an x4 downscale reads 22 input rows per pair) the rows'
/// next lines are not in L1 when a block reaches them: the pair has swept
/// past all of them before, over the whole width, and at a power-of-two
/// row stride they also compete for the same few L1 sets. Without the
/// prefetch a third of the sweep's samples sat on the first load of a row
/// (perf annotate); with it, x4 downscale 2048² -> 512², 1 thread, best of
/// 30 in alternating runs: median new/old 0.80 (8 pairs) and 0.98 (10
/// pairs, noisier host).
const PREFETCH_AHEAD: usize = 256;

/// Fewest taps for which the pair sweep prefetches: an upscale's few rows
/// stay in L1 from one output row to the next, and the prefetches would
/// only cost issue slots.
const PREFETCH_MIN_TAPS: usize = 8;

/// Prefetches into L1 the byte at column `x` of each row `offs[j]`, if `x`
/// is inside the rows' `w` columns.
///
/// # Safety
/// The CPU must support AVX2 (the features of its callers); `src` must be
/// the plane the offsets index.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn prefetch_rows(src: *const u8, offs: &[usize], x: usize, w: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    if x < w {
        for &off in offs {
            // A prefetch has no architectural effect; the address is
            // inside the row anyway.
            _mm_prefetch(src.wrapping_add(off + x).cast::<i8>(), _MM_HINT_T0);
        }
    }
}

/// Prefetches into L2, once per 64-byte line (when `x0` starts one),
/// column `x0` of the rows at offsets `ahead`: the rows the next pair of
/// a vertical sweep reads first, fetched one sweep in advance.
///
/// # Safety
/// The CPU must support AVX2 (the features of its callers).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn prefetch_next_pair(src: *const u8, ahead: &[usize], x0: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
    if x0 % 64 == 0 {
        for &off in ahead {
            // A prefetch has no architectural effect, wherever it points.
            _mm_prefetch(src.wrapping_add(off + x0).cast::<i8>(), _MM_HINT_T1);
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `offs[j] + out.len() <= src.len()`
/// for every tap `j`, and `offs`, `ws` and `ws32` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn vertical_row_u8_avx2<F: Fn(f64) -> u8>(
    src: &[u8],
    t: RowTaps<'_>,
    delta: f32,
    out: &mut [MaybeUninit<u8>],
    store: &F,
) {
    use std::arch::x86_64::*;
    const V: usize = VBLOCK;
    let w = out.len();
    let sp = src.as_ptr();
    let mut x0 = 0;
    while x0 + 8 <= w {
        let nv = ((w - x0) / 8).min(V);
        let mut acc = [_mm256_setzero_ps(); V];
        for (&wt, &off) in t.ws32.iter().zip(t.offs) {
            let wv = _mm256_set1_ps(wt);
            let row = sp.add(off + x0);
            for (v, a) in acc.iter_mut().enumerate().take(nv) {
                *a = _mm256_fmadd_ps(wv, widen8(row.add(8 * v)), *a);
            }
        }
        // Lanes of vectors past nv summed nothing: 0, never near a tie.
        store_block_u8(src, t, acc, nv, x0, delta, out, store);
        x0 += 8 * nv;
    }
    for (x, o) in out.iter_mut().enumerate().skip(x0) {
        o.write(store(vertical_exact_u8(src, t.offs, t.ws, x)));
    }
}

/// Two rows in one sweep (see [`vertical_rows_u8`]): `b`'s tap `j` reads
/// `a`'s tap `j + d` row. `ahead` lists input rows the next pair will read
/// first (not read here), prefetched into L2 a pair's sweep in advance:
/// they are the rows that otherwise come from memory on first use (x4
/// downscale 2048² -> 512², median per-pair time ratio with / without over
/// 60 alternating runs, three times: 0.957 / 0.963 / 0.957).
///
/// A block is 32 columns, read as one 32-byte load per tap row and widened
/// by [`widen32_strided`] (masks and shifts instead of one byte-to-`i32`
/// shuffle per 8 columns, which left the shuffle port the bottleneck):
/// vector `k` of a block holds columns `x0 + 4 * i + k`, and
/// [`store_strided_u8`] puts them back in order. The same products are
/// summed in the same order, so the sums are unchanged; x4 downscale, same
/// measure: 0.963 / 0.935 / 0.920, x4 upscale 0.957 / 0.968 / 0.967.
///
/// # Safety
/// As [`vertical_row_u8_avx2`] for both rows, with equal output lengths,
/// `d < taps` and `b.offs[j] == a.offs[j + d]` for `j < taps - d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn vertical_pair_u8_avx2<F: Fn(f64) -> u8>(
    src: &[u8],
    a: RowTaps<'_>,
    b: RowTaps<'_>,
    d: usize,
    ahead: &[usize],
    delta: f32,
    out_a: &mut [MaybeUninit<u8>],
    out_b: &mut [MaybeUninit<u8>],
    store: &F,
) {
    use std::arch::x86_64::*;
    const V: usize = VBLOCK;
    let (w, taps) = (out_a.len(), a.offs.len());
    let sp = src.as_ptr();
    // a's own taps, the shared ones (a's d.., b's ..taps - d), b's own.
    let (a_own_w, a_own_offs) = (&a.ws32[..d], &a.offs[..d]);
    let (shared_wa, shared_wb, shared_offs) = (&a.ws32[d..], &b.ws32[..taps - d], &a.offs[d..]);
    let (b_own_w, b_own_offs) = (&b.ws32[taps - d..], &b.offs[taps - d..]);
    let mut x0 = 0;
    while x0 + 8 * V <= w {
        if taps >= PREFETCH_MIN_TAPS {
            prefetch_rows(sp, a.offs, x0 + PREFETCH_AHEAD, w);
            prefetch_rows(sp, &b.offs[taps - d..], x0 + PREFETCH_AHEAD, w);
        }
        prefetch_next_pair(sp, ahead, x0);
        let (mut acc_a, mut acc_b) = ([_mm256_setzero_ps(); V], [_mm256_setzero_ps(); V]);
        // a's own taps, then the shared ones, then b's own: each row's taps
        // stay in ascending order. Zipped slices, not indices: no bounds
        // checks in the tap loops.
        for (&wt, &off) in a_own_w.iter().zip(a_own_offs) {
            let (wv, x) = (_mm256_set1_ps(wt), widen32_strided(sp.add(off + x0)));
            for (s, x) in acc_a.iter_mut().zip(x) {
                *s = _mm256_fmadd_ps(wv, x, *s);
            }
        }
        for ((&wa, &wb), &off) in shared_wa.iter().zip(shared_wb).zip(shared_offs) {
            let (wa, wb) = (_mm256_set1_ps(wa), _mm256_set1_ps(wb));
            let x = widen32_strided(sp.add(off + x0));
            for v in 0..V {
                acc_a[v] = _mm256_fmadd_ps(wa, x[v], acc_a[v]);
                acc_b[v] = _mm256_fmadd_ps(wb, x[v], acc_b[v]);
            }
        }
        for (&wt, &off) in b_own_w.iter().zip(b_own_offs) {
            let (wv, x) = (_mm256_set1_ps(wt), widen32_strided(sp.add(off + x0)));
            for (s, x) in acc_b.iter_mut().zip(x) {
                *s = _mm256_fmadd_ps(wv, x, *s);
            }
        }
        store_strided_u8(src, a, acc_a, x0, delta, out_a, store);
        store_strided_u8(src, b, acc_b, x0, delta, out_b, store);
        x0 += 8 * V;
    }
    // The ragged end, one row at a time (the same sums).
    if x0 < w {
        vertical_row_u8_avx2(&src[x0..], a, delta, &mut out_a[x0..], store);
        vertical_row_u8_avx2(&src[x0..], b, delta, &mut out_b[x0..], store);
    }
}

/// The taps of one or two output rows of the fixed-point vertical pass
/// ([`vertical_rows_fixed`]): the input rows at offsets `offs`, taken in
/// pairs, pair `k` (rows `offs[2k]`, `offs[2k + 1]`) weighted by `wa[k]`
/// for the first output row and `wb[k]` for the second, each the two
/// rows' `i16` weights packed into one `i32` (the first row's in the low
/// half), as `vpmaddwd` takes them. A row that an output does not read has
/// weight 0 there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedTaps<'a> {
    /// Offsets of the input rows in the plane; an even number.
    pub offs: &'a [usize],
    /// Packed weight pairs of the first output row, one per row pair.
    pub wa: &'a [i32],
    /// Packed weight pairs of the second output row (all 0 when there is
    /// none).
    pub wb: &'a [i32],
}

/// Packs the `i16` weights of two input rows into one `i32` (see
/// [`FixedTaps`]).
pub(crate) fn pack_weights(first: i16, second: i16) -> i32 {
    (u32::from(first as u16) | u32::from(second as u16) << 16) as i32
}

/// The exact integer sum of column `x` with the packed weights `ws`.
#[inline]
fn fixed_sum(src: &[u8], offs: &[usize], ws: &[i32], x: usize) -> i32 {
    offs.chunks_exact(2)
        .zip(ws)
        .map(|(o, &w)| {
            i32::from(w as i16) * i32::from(src[o[0] + x]) + (w >> 16) * i32::from(src[o[1] + x])
        })
        .sum()
}

/// MATLAB's conversion to `uint8` of the exact value `acc / 2^shift`:
/// round half away from zero, saturate (`floor(p + 1/2)` is that wherever
/// the result is not saturated to 0).
#[inline]
fn round_fixed(acc: i32, shift: u32) -> u8 {
    let half = (1i32 << shift) >> 1;
    ((acc + half) >> shift).clamp(0, 255) as u8
}

/// One or two output rows of the 8-bit vertical pass in exact integer
/// arithmetic, for weight tables whose weights are all integer multiples
/// of `2^-shift` that fit `i16` once scaled (bicubic x2 and x4 enlargements,
/// antialiased x2 and x4 reductions): `out_a[x]` (and `out_b[x]`) is
/// MATLAB's `uint8` of `sum_k w_k * src[offs_k + x] / 2^shift`, the very
/// value the `f64` sum gives, since that sum is exact too. Integer sums
/// need no rounding screen and no conversions to float, and widening takes
/// 6 byte unpacks per 64 products (two rows of 32 columns) where the `f32`
/// sweep splits and converts every byte; `vpmaddwd` does 16 products per
/// instruction against FMA's 8, though Zen 3 issues one per cycle to two
/// FMAs, so the multiplies themselves cost the same.
/// `ahead` is as in [`vertical_rows_u8`]. Every element of the outputs is
/// written.
///
/// Returns false (doing nothing) unless the CPU has AVX2 and FMA (the
/// features the other 8-bit passes need: one test for the whole path).
pub(crate) fn vertical_rows_fixed(
    isa: Isa,
    src: &[u8],
    taps: FixedTaps<'_>,
    shift: u32,
    out_a: &mut [MaybeUninit<u8>],
    out_b: Option<&mut [MaybeUninit<u8>]>,
    ahead: &[usize],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        let w = out_a.len();
        let pairs = taps.offs.len() / 2;
        assert!(taps.offs.len() == 2 * pairs && taps.wa.len() == pairs && taps.wb.len() == pairs);
        assert!(taps.offs.iter().all(|&o| o + w <= src.len()));
        assert!(shift < 31 && out_b.as_ref().map_or(true, |b| b.len() == w));
        // SAFETY: AVX2 and FMA are present; every row read is in bounds
        // (checked).
        unsafe { vertical_fixed_avx2(src, taps, shift, out_a, out_b, ahead) };
        return true;
    }
    let _ = (isa, src, taps, shift, out_a, out_b, ahead);
    false
}

/// # Safety
/// The CPU must support AVX2 and FMA; the bounds [`vertical_rows_fixed`]
/// checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn vertical_fixed_avx2(
    src: &[u8],
    t: FixedTaps<'_>,
    shift: u32,
    out_a: &mut [MaybeUninit<u8>],
    mut out_b: Option<&mut [MaybeUninit<u8>]>,
    ahead: &[usize],
) {
    use std::arch::x86_64::*;
    let w = out_a.len();
    let sp = src.as_ptr();
    let zero = _mm256_setzero_si256();
    let half = _mm256_set1_epi32((1i32 << shift) >> 1);
    let count = _mm_cvtsi32_si128(shift as i32);
    // Rounds, saturates and narrows one row's four vectors of sums, which
    // hold columns 0-3 | 16-19, 4-7 | 20-23, 8-11 | 24-27, 12-15 | 28-31
    // (per 128-bit half): the packs undo the unpacks' order.
    let narrow = |acc: [__m256i; 4]| {
        let r = acc.map(|v| _mm256_sra_epi32(_mm256_add_epi32(v, half), count));
        _mm256_packus_epi16(
            _mm256_packs_epi32(r[0], r[1]),
            _mm256_packs_epi32(r[2], r[3]),
        )
    };
    // Pairs 0..a_only feed only the first row, both_end.. only the second
    // (the rows the two do not share), the rest both.
    let n_pairs = t.wa.len();
    let a_only = t.wb.iter().take_while(|&&w| w == 0).count();
    let both_end = n_pairs - t.wa[a_only..].iter().rev().take_while(|&&w| w == 0).count();
    let mut x0 = 0;
    while w >= 32 && x0 < w {
        // The ragged end as the last 32 columns, some recomputed (the same
        // values).
        x0 = x0.min(w - 32);
        // Without the next pair's prefetch this sweep ran 1.23-1.31x slower
        // (x4 downscale). The f32 sweep's prefetch of its own rows into L1
        // is left out here: without it, 0.96-0.99 of the time.
        prefetch_next_pair(sp, ahead, x0);
        let (mut acc_a, mut acc_b) = ([zero; 4], [zero; 4]);
        let pairs = |r: std::ops::Range<usize>| {
            t.offs[2 * r.start..2 * r.end]
                .chunks_exact(2)
                .zip(&t.wa[r.clone()])
                .zip(&t.wb[r])
        };
        for ((o, &wa), _) in pairs(0..a_only) {
            let x = interleave_rows(sp.add(o[0] + x0), sp.add(o[1] + x0));
            madd_into(&mut acc_a, x, wa);
        }
        for ((o, &wa), &wb) in pairs(a_only..both_end) {
            let x = interleave_rows(sp.add(o[0] + x0), sp.add(o[1] + x0));
            madd_into(&mut acc_a, x, wa);
            madd_into(&mut acc_b, x, wb);
        }
        for ((o, _), &wb) in pairs(both_end..n_pairs) {
            let x = interleave_rows(sp.add(o[0] + x0), sp.add(o[1] + x0));
            madd_into(&mut acc_b, x, wb);
        }
        _mm256_storeu_si256(out_a[x0..x0 + 32].as_mut_ptr().cast(), narrow(acc_a));
        if let Some(out_b) = out_b.as_deref_mut() {
            _mm256_storeu_si256(out_b[x0..x0 + 32].as_mut_ptr().cast(), narrow(acc_b));
        }
        x0 += 32;
    }
    // Rows narrower than a block.
    for x in x0..w {
        out_a[x].write(round_fixed(fixed_sum(src, t.offs, t.wa, x), shift));
        if let Some(out_b) = out_b.as_deref_mut() {
            out_b[x].write(round_fixed(fixed_sum(src, t.offs, t.wb, x), shift));
        }
    }
}

/// Loads 32 bytes of two rows as 16-bit pairs (row 0, row 1) of one
/// column per 32-bit lane, in four vectors: columns 0-3 | 16-19, 4-7 |
/// 20-23, 8-11 | 24-27, 12-15 | 28-31 (per 128-bit half).
///
/// # Safety
/// The CPU must support AVX2; `r0` and `r1` must point at 32 readable
/// bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn interleave_rows(r0: *const u8, r1: *const u8) -> [std::arch::x86_64::__m256i; 4] {
    use std::arch::x86_64::*;
    let (r0, r1) = (_mm256_loadu_si256(r0.cast()), _mm256_loadu_si256(r1.cast()));
    let zero = _mm256_setzero_si256();
    let (lo, hi) = (_mm256_unpacklo_epi8(r0, r1), _mm256_unpackhi_epi8(r0, r1));
    [
        _mm256_unpacklo_epi8(lo, zero),
        _mm256_unpackhi_epi8(lo, zero),
        _mm256_unpacklo_epi8(hi, zero),
        _mm256_unpackhi_epi8(hi, zero),
    ]
}

/// Adds the products of [`interleave_rows`]'s pairs with the packed
/// weights `w` (see [`FixedTaps`]) to `acc`.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn madd_into(
    acc: &mut [std::arch::x86_64::__m256i; 4],
    x: [std::arch::x86_64::__m256i; 4],
    w: i32,
) {
    use std::arch::x86_64::*;
    let wv = _mm256_set1_epi32(w);
    for (s, x) in acc.iter_mut().zip(x) {
        *s = _mm256_add_epi32(*s, _mm256_madd_epi16(x, wv));
    }
}

/// A horizontal pass's fixed-point weights laid out for
/// [`horizontal_strip_fixed`]: every output's first tap sits at a padded
/// position of the same parity (as in reductions by 2 and 4, whose outputs
/// step 2 or 4 positions), so its taps read whole pairs of positions
/// `(parity + 2q, parity + 2q + 1)`, pair cell `q`, and each pair's two
/// weights are packed into one `i32` (see [`pack_weights`]) for
/// `vpmaddwd`.
#[derive(Debug, Clone)]
pub(crate) struct PairedWeights {
    /// Weights are integer multiples of `2^-shift`.
    shift: u32,
    /// The parity of every output's first tap position.
    parity: usize,
    /// Padded positions of a strip.
    positions: usize,
    /// Pair cells of a strip: `(positions - parity) / 2`, rounded up.
    cells: usize,
    /// Cells per output (an odd last tap is paired with weight 0).
    pairs: usize,
    /// Each output's first cell; `first_cell[x] + pairs <= cells`.
    first_cell: Vec<usize>,
    /// `pairs` packed weights per output.
    packed: Vec<i32>,
}

impl PairedWeights {
    /// Pairs the weights of the outputs whose first taps are at padded
    /// positions `base` (of `positions`), `taps` each, weight `j` of output
    /// `x` being `weights[x * taps + j] / 2^shift`; `None` when the first
    /// taps' parities differ (enlargements, odd factors).
    pub(crate) fn new(
        base: &[usize],
        positions: usize,
        taps: usize,
        weights: &[i16],
        shift: u32,
    ) -> Option<PairedWeights> {
        assert_eq!(weights.len(), base.len() * taps);
        assert!(base.iter().all(|&b| b + taps <= positions));
        let parity = base.first().map_or(0, |b| b % 2);
        if base.iter().any(|b| b % 2 != parity) || taps == 0 || shift >= 31 {
            return None;
        }
        let pairs = taps.div_ceil(2);
        let packed = weights
            .chunks_exact(taps)
            .flat_map(|w| {
                (0..pairs)
                    .map(move |k| pack_weights(w[2 * k], w.get(2 * k + 1).copied().unwrap_or(0)))
            })
            .collect();
        // An output's last pair starts at base + 2 * (pairs - 1) <= base +
        // taps - 1 < positions, so it is a cell.
        Some(PairedWeights {
            shift,
            parity,
            positions,
            cells: (positions - parity).div_ceil(2),
            pairs,
            first_cell: base.iter().map(|&b| (b - parity) / 2).collect(),
            packed,
        })
    }

    /// The `i32` scratch [`horizontal_strip_fixed`] takes: [`STRIP`] per
    /// cell.
    pub(crate) fn scratch_len(&self) -> usize {
        self.cells * STRIP
    }
}

/// One strip of up to [`STRIP`] rows of the 8-bit horizontal pass in exact
/// integer arithmetic, for tables in fixed point whose outputs' taps start
/// at positions of one parity ([`PairedWeights`]): `out[r][x]` is MATLAB's
/// `uint8` of the exact sum `sum_j w_j * rows[r][pmap[base[x] + j]]`, as
/// [`vertical_rows_fixed`] computes it down the columns. The rows are first
/// laid out as pair cells, cell `q` holding, for each row, positions
/// `(parity + 2q, parity + 2q + 1)` as two `i16` in one 32-bit lane, so
/// that one `vpmaddwd` takes two taps of eight rows; where the `f32` strip
/// spends one widened float per position and one FMA per tap, this spends
/// half a lane and half a multiply. `cells` is scratch of
/// [`PairedWeights::scratch_len`] values.
///
/// Returns false (doing nothing) unless the CPU has AVX2 and FMA.
pub(crate) fn horizontal_strip_fixed(
    isa: Isa,
    plan: &HorizontalPlan<'_>,
    pw: &PairedWeights,
    rows: &[u8],
    cells: &mut [i32],
    out: &mut [MaybeUninit<u8>],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        let w_out = plan.base.len();
        let nrows = out.len() / w_out;
        assert!(nrows <= STRIP && out.len() == nrows * w_out);
        assert!(rows.len() >= nrows * plan.w_in);
        // The weights were paired for this plan's outputs and positions,
        // every output's cells within them (checked when they were).
        assert!(pw.first_cell.len() == w_out && pw.positions == plan.pmap.len());
        assert!(cells.len() >= pw.scratch_len());
        // SAFETY: AVX2 and FMA are present; the bounds are asserted above
        // (and the plan's own when it was made).
        unsafe {
            match pw.pairs {
                4 => horizontal_fixed_avx2::<4>(plan, pw, rows, cells, out),
                8 => horizontal_fixed_avx2::<8>(plan, pw, rows, cells, out),
                _ => horizontal_fixed_avx2::<0>(plan, pw, rows, cells, out),
            }
        }
        return true;
    }
    let _ = (isa, plan, pw, rows, cells, out);
    false
}

/// The exact sum of output `x`, row `r`, from the pair cells of
/// [`horizontal_strip_fixed`].
#[inline]
fn paired_sum(pw: &PairedWeights, cells: &[i32], q0: usize, x: usize, r: usize) -> i32 {
    let ws = &pw.packed[x * pw.pairs..(x + 1) * pw.pairs];
    ws.iter()
        .enumerate()
        .map(|(k, &w)| {
            let c = cells[(q0 + k) * STRIP + r];
            i32::from(w as i16) * i32::from(c as i16) + (w >> 16) * (c >> 16)
        })
        .sum()
}

/// # Safety
/// The CPU must support AVX2 and FMA, and the bounds that
/// [`horizontal_strip_fixed`] asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn horizontal_fixed_avx2<const PAIRS: usize>(
    plan: &HorizontalPlan<'_>,
    pw: &PairedWeights,
    rows: &[u8],
    cells: &mut [i32],
    out: &mut [MaybeUninit<u8>],
) {
    use std::arch::x86_64::*;
    let (w_in, w_out) = (plan.w_in, plan.base.len());
    // PAIRS = 0: the pair count known only at run time.
    let pairs = if PAIRS == 0 { pw.pairs } else { PAIRS };
    let nrows = out.len() / w_out;
    let (plen, par, n_cells) = (plan.pmap.len(), pw.parity, pw.cells);
    // Cells whose two positions lie in the consecutive run, 8 at a time:
    // 16 bytes of each row widened to 8 pairs and transposed (the 32-bit
    // lanes move as wholes, so the float shuffles carry them unchanged).
    let run = &plan.consecutive;
    let first = (run.start.max(par) - par).div_ceil(2);
    let groups = (run.end.saturating_sub(par) / 2).saturating_sub(first) / 8;
    let rp = rows.as_ptr();
    for g in 0..groups {
        let q = first + 8 * g;
        // In bounds: positions par + 2q .. par + 2q + 16 lie in the run, so
        // these 16 columns do in each row r < nrows.
        let ix = plan.pmap[par + 2 * q];
        let v: [__m256; 8] = std::array::from_fn(|r| {
            if r < nrows {
                let b = _mm_loadu_si128(rp.add(r * w_in + ix).cast());
                _mm256_castsi256_ps(_mm256_cvtepu8_epi16(b))
            } else {
                _mm256_setzero_ps()
            }
        });
        for (k, cell) in transpose8(v).iter().enumerate() {
            _mm256_storeu_ps(cells.as_mut_ptr().add((q + k) * STRIP).cast(), *cell);
        }
    }
    // The other cells (the border's, and the run's ragged ends) one lane at
    // a time; a position past the last pads with 0 (its weight is 0).
    let sample = |r: usize, p: usize| {
        if p < plen {
            i32::from(rows[r * w_in + plan.pmap[p]])
        } else {
            0
        }
    };
    for q in (0..first).chain(first + 8 * groups..n_cells) {
        let p = par + 2 * q;
        for (r, c) in cells[q * STRIP..(q + 1) * STRIP].iter_mut().enumerate() {
            *c = if r < nrows {
                sample(r, p) | sample(r, p + 1) << 16
            } else {
                0
            };
        }
    }
    let cells: &[i32] = cells;
    let cp = cells.as_ptr();
    let wp = pw.packed.as_ptr();
    let q0 = |x: usize| pw.first_cell[x];
    let half = _mm256_set1_epi32((1i32 << pw.shift) >> 1);
    let count = _mm_cvtsi32_si128(pw.shift as i32);
    // Within each 128-bit half, moves byte 4 * l + r to 4 * r + l (a 4x4
    // transpose of outputs l and rows r).
    let order = _mm256_setr_epi8(
        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10,
        14, 3, 7, 11, 15,
    );
    // Blocks of 8 outputs; a ragged end as the last 8 (some summed twice, to
    // the same bytes).
    let blocks = (w_out >= 8).then(|| {
        (0..w_out - 7)
            .step_by(8)
            .chain((w_out % 8 != 0).then_some(w_out - 8))
    });
    for x in blocks.into_iter().flatten() {
        // acc[l]: rows 0..8 of output x + l.
        let mut acc = [_mm256_setzero_si256(); 8];
        let cl: [*const i32; 8] = std::array::from_fn(|l| cp.add(q0(x + l) * STRIP));
        let wl: [*const i32; 8] = std::array::from_fn(|l| wp.add((x + l) * pairs));
        // Pairs outermost: eight independent sums advance together.
        for k in 0..pairs {
            for (l, a) in acc.iter_mut().enumerate() {
                let c = _mm256_loadu_si256(cl[l].add(k * STRIP).cast());
                let w = _mm256_set1_epi32(*wl[l].add(k));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(c, w));
            }
        }
        let v = acc.map(|a| _mm256_sra_epi32(_mm256_add_epi32(a, half), count));
        // Saturating packs give, per 128-bit half h, the bytes of outputs
        // 0-3 (and 4-7) of rows 4h..4h+4 at 4 * l + r; the shuffle makes
        // them row-major and the unpacks join the two output halves.
        let lo = _mm256_packus_epi16(
            _mm256_packs_epi32(v[0], v[1]),
            _mm256_packs_epi32(v[2], v[3]),
        );
        let hi = _mm256_packus_epi16(
            _mm256_packs_epi32(v[4], v[5]),
            _mm256_packs_epi32(v[6], v[7]),
        );
        let (lo, hi) = (
            _mm256_shuffle_epi8(lo, order),
            _mm256_shuffle_epi8(hi, order),
        );
        // Rows 0, 1, 4, 5 and then 2, 3, 6, 7, 8 bytes (outputs x..x+8) each.
        let mut bytes = [0u64; 8];
        _mm256_storeu_si256(bytes.as_mut_ptr().cast(), _mm256_unpacklo_epi32(lo, hi));
        _mm256_storeu_si256(
            bytes.as_mut_ptr().add(4).cast(),
            _mm256_unpackhi_epi32(lo, hi),
        );
        for (r, &slot) in [0, 1, 4, 5, 2, 3, 6, 7].iter().enumerate().take(nrows) {
            store8(&mut out[r * w_out + x..r * w_out + x + 8], bytes[slot]);
        }
    }
    // Rows narrower than a block.
    if w_out < 8 {
        for x in 0..w_out {
            for r in 0..nrows {
                let s = paired_sum(pw, cells, q0(x), x, r);
                out[r * w_out + x].write(round_fixed(s, pw.shift));
            }
        }
    }
}

/// A whole-factor enlargement's [`Polyphase`] run with its weights in
/// fixed point, for [`polyphase_rows_fixed`]: bicubic x2 and x4 and linear
/// x2, whose weights are multiples of `2^-shift` that fit `i16`.
#[derive(Debug, Clone)]
pub(crate) struct FixedPhases {
    run: Polyphase,
    taps: usize,
    /// Weights are integer multiples of `2^-shift`.
    shift: u32,
    /// The whole table, `taps` per output (the outputs outside the run are
    /// summed from it one by one).
    weights: Vec<i16>,
    /// Phase `p`'s weights in packed pairs (see [`pack_weights`]).
    packed: [[i32; 2]; 4],
}

impl FixedPhases {
    /// The run of `plan` with the fixed-point `weights` (`taps` per output,
    /// each `/ 2^shift`), if there is one that [`polyphase_rows_fixed`] has
    /// an instance for: 2 or 4 phases of 2 or 4 taps, phases starting at
    /// most one column apart (so it is for whole-factor enlargements), at
    /// least 16 periods long.
    pub(crate) fn new(plan: &HorizontalPlan<'_>, weights: &[i16], shift: u32) -> Option<Self> {
        let taps = plan.taps;
        assert_eq!(weights.len(), plan.base.len() * taps);
        // Equal integers are equal floats: the run's phases repeat exactly.
        let as_f32: Vec<f32> = weights.iter().map(|&w| f32::from(w)).collect();
        let run = Polyphase::find(plan, &as_f32)?;
        let supported = matches!(run.period, 2 | 4)
            && matches!(taps, 2 | 4)
            && run.offs[..run.period].iter().all(|&o| o <= 1)
            && run.periods >= 16
            && shift < 31;
        let packed = std::array::from_fn(|p| {
            std::array::from_fn(|m| {
                let w = |j: usize| {
                    if p < run.period && j < taps {
                        weights[(run.first + p) * taps + j]
                    } else {
                        0
                    }
                };
                pack_weights(w(2 * m), w(2 * m + 1))
            })
        });
        supported.then(|| FixedPhases {
            run,
            taps,
            shift,
            weights: weights.to_vec(),
            packed,
        })
    }
}

/// Rows of an 8-bit whole-factor enlargement's horizontal pass in exact
/// integer arithmetic: `rows` holds `out.len() / w_out` rows of `w_in`
/// bytes; output `x` is MATLAB's `uint8` of the exact sum
/// `sum_j w_j * row[pmap[base[x] + j]]`, as [`vertical_rows_fixed`] makes
/// it. In the run, 16 consecutive `k` of a phase read 16 consecutive
/// columns per tap, so each tap pair's columns are widened and interleaved
/// once for all phases and one `vpmaddwd` takes two taps of 8 outputs (the
/// `f32` run spends one FMA per tap of 8, and a rounding screen); the few
/// outputs at the borders are summed one by one.
///
/// Returns false (doing nothing) unless the CPU has AVX2 and FMA.
pub(crate) fn polyphase_rows_fixed(
    isa: Isa,
    plan: &HorizontalPlan<'_>,
    phases: &FixedPhases,
    rows: &[u8],
    out: &mut [MaybeUninit<u8>],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        let (w_in, w_out, taps) = (plan.w_in, plan.base.len(), plan.taps);
        let nrows = out.len() / w_out;
        assert!(out.len() == nrows * w_out && rows.len() >= nrows * w_in);
        assert!(phases.taps == taps && phases.weights.len() == w_out * taps);
        let run = &phases.run;
        // All the run's whole periods, not only its blocks of 8.
        let outputs = run.first..run.first + run.period * run.periods;
        assert!(outputs.end <= w_out);
        // Columns col0 .. col0 + n are read (the run's taps, within the row).
        let n = run.periods + run.offs.iter().max().map_or(0, |&o| o) + taps - 1;
        assert!(run.col0 + n <= w_in);
        let shift = phases.shift;
        for r in 0..nrows {
            let row = &rows[r * w_in..(r + 1) * w_in];
            let orow = &mut out[r * w_out..(r + 1) * w_out];
            let run_cols = &row[run.col0..run.col0 + n];
            // SAFETY: AVX2 and FMA are present; the run's columns lie in
            // the row and its outputs in `orow` (asserted).
            unsafe {
                match (run.period, taps) {
                    (2, 2) => phases_fixed_avx2::<2, 2>(phases, run_cols, orow),
                    (2, 4) => phases_fixed_avx2::<2, 4>(phases, run_cols, orow),
                    (4, 2) => phases_fixed_avx2::<4, 2>(phases, run_cols, orow),
                    _ => phases_fixed_avx2::<4, 4>(phases, run_cols, orow),
                }
            }
            // The border outputs after the run, which has brought the row
            // into cache: summed first, they waited for its first load.
            for x in (0..run.first).chain(outputs.end..w_out) {
                let ws = &phases.weights[x * taps..(x + 1) * taps];
                let sum: i32 = ws
                    .iter()
                    .enumerate()
                    .map(|(j, &w)| i32::from(w) * i32::from(row[plan.pmap[plan.base[x] + j]]))
                    .sum();
                orow[x].write(round_fixed(sum, shift));
            }
        }
        return true;
    }
    let _ = (isa, plan, phases, rows, out);
    false
}

/// The run of [`polyphase_rows_fixed`] on one row, `row` starting at the
/// run's first column: 16 periods at a time (a ragged end as the last 16,
/// some outputs written twice with the same bytes).
///
/// # Safety
/// The CPU must support AVX2; `row` must hold the run's columns and `orow`
/// its outputs, and `(P, TAPS)` must be the run's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn phases_fixed_avx2<const P: usize, const TAPS: usize>(
    phases: &FixedPhases,
    row: &[u8],
    orow: &mut [MaybeUninit<u8>],
) {
    use std::arch::x86_64::*;
    let run = &phases.run;
    let k_len = run.periods;
    let half = _mm256_set1_epi32((1i32 << phases.shift) >> 1);
    let count = _mm_cvtsi32_si128(phases.shift as i32);
    let wv: [[__m256i; 2]; P] =
        std::array::from_fn(|p| phases.packed[p].map(|w| _mm256_set1_epi32(w)));
    let offs: [usize; P] = std::array::from_fn(|p| run.offs[p]);
    // The last column offset a tap pair reads.
    let top = offs.iter().max().map_or(0, |&o| o) + TAPS - 1;
    debug_assert!(k_len + top <= row.len());
    let rp = row.as_ptr();
    let mut kb = 0;
    while kb < k_len {
        kb = kb.min(k_len - 16);
        // x[s]: columns kb + s .. kb + s + 16 widened to i16 (in the row:
        // kb + top + 16 <= k_len + top, its length).
        let x: [__m256i; 5] = std::array::from_fn(|s| {
            if s <= top {
                _mm256_cvtepu8_epi16(_mm_loadu_si128(rp.add(kb + s).cast()))
            } else {
                _mm256_setzero_si256()
            }
        });
        // pairs[s]: columns (kb + s + k, kb + s + k + 1) per 32-bit lane, for
        // k = 0-3 | 8-11 and 4-7 | 12-15 (the unpacks work per 128-bit half).
        let pairs: [[__m256i; 2]; 4] = std::array::from_fn(|s| {
            [
                _mm256_unpacklo_epi16(x[s], x[s + 1]),
                _mm256_unpackhi_epi16(x[s], x[s + 1]),
            ]
        });
        // v[p]: phase p's 16 outputs as i16, k = 0-7 | 8-15.
        let v: [__m256i; P] = std::array::from_fn(|p| {
            let mut acc = [_mm256_setzero_si256(); 2];
            for m in 0..TAPS / 2 {
                let pr = pairs[offs[p] + 2 * m];
                for (a, c) in acc.iter_mut().zip(pr) {
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(c, wv[p][m]));
                }
            }
            let r = acc.map(|a| _mm256_sra_epi32(_mm256_add_epi32(a, half), count));
            _mm256_packs_epi32(r[0], r[1])
        });
        // Output P * k + p of the block is phase p's k-th: interleave the
        // phases, narrow with saturation, and put the 128-bit halves in order.
        let x0 = run.first + P * kb;
        let dst = orow[x0..x0 + 16 * P].as_mut_ptr().cast::<__m256i>();
        if P == 2 {
            let lo = _mm256_unpacklo_epi16(v[0], v[1]);
            let hi = _mm256_unpackhi_epi16(v[0], v[1]);
            _mm256_storeu_si256(dst, _mm256_packus_epi16(lo, hi));
        } else {
            let a_lo = _mm256_unpacklo_epi16(v[0], v[1]);
            let a_hi = _mm256_unpackhi_epi16(v[0], v[1]);
            let b_lo = _mm256_unpacklo_epi16(v[2], v[3]);
            let b_hi = _mm256_unpackhi_epi16(v[2], v[3]);
            let d0 = _mm256_packus_epi16(
                _mm256_unpacklo_epi32(a_lo, b_lo),
                _mm256_unpackhi_epi32(a_lo, b_lo),
            );
            let d1 = _mm256_packus_epi16(
                _mm256_unpacklo_epi32(a_hi, b_hi),
                _mm256_unpackhi_epi32(a_hi, b_hi),
            );
            _mm256_storeu_si256(dst, _mm256_permute2x128_si256::<0x20>(d0, d1));
            _mm256_storeu_si256(dst.add(1), _mm256_permute2x128_si256::<0x31>(d0, d1));
        }
        kb += 16;
    }
}

/// Loads 32 bytes as four vectors of 8 `f32` lanes, vector `k` holding
/// bytes `4 * i + k`: each 32-bit lane's bytes taken apart by shifts and a
/// mask, which run on more ports than byte-to-`i32` shuffles.
///
/// # Safety
/// The CPU must support AVX2; `p` must point at 32 readable bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn widen32_strided(p: *const u8) -> [std::arch::x86_64::__m256; VBLOCK] {
    use std::arch::x86_64::*;
    let v = _mm256_loadu_si256(p.cast());
    let byte = _mm256_set1_epi32(0xFF);
    [
        _mm256_cvtepi32_ps(_mm256_and_si256(v, byte)),
        _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32::<8>(v), byte)),
        _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32::<16>(v), byte)),
        _mm256_cvtepi32_ps(_mm256_srli_epi32::<24>(v)),
    ]
}

/// [`store_block_u8`] for a block in the lane order of
/// [`widen32_strided`]: rounds the 32 sums for outputs `x0..x0 + 32`,
/// saturates them to `0..=255` and shifts each vector back into its byte
/// of the 32-bit lanes, which puts the bytes in column order; lanes near a
/// tie are recomputed exactly.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x0 + 32 <= out.len()`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_strided_u8<F: Fn(f64) -> u8>(
    src: &[u8],
    t: RowTaps<'_>,
    acc: [std::arch::x86_64::__m256; VBLOCK],
    x0: usize,
    delta: f32,
    out: &mut [MaybeUninit<u8>],
    store: &F,
) {
    use std::arch::x86_64::*;
    let (q, near) = round_u8(acc, delta);
    let (zero, max) = (_mm256_setzero_si256(), _mm256_set1_epi32(255));
    let c = q.map(|v| _mm256_min_epi32(_mm256_max_epi32(v, zero), max));
    let bytes = _mm256_or_si256(
        _mm256_or_si256(c[0], _mm256_slli_epi32::<8>(c[1])),
        _mm256_or_si256(_mm256_slli_epi32::<16>(c[2]), _mm256_slli_epi32::<24>(c[3])),
    );
    let dst = &mut out[x0..x0 + 32];
    _mm256_storeu_si256(dst.as_mut_ptr().cast(), bytes);
    for bit in set_bits(near) {
        // Bit 8 * k + i of the mask is lane i of vector k: column 4 * i + k.
        let x = x0 + 4 * (bit % 8) + bit / 8;
        out[x].write(store(vertical_exact_u8(src, t.offs, t.ws, x)));
    }
}

/// Rounds a block of `nv` (up to [`VBLOCK`]) vectors of vertical sums
/// for outputs `x0..` and stores them into `out`, recomputing exactly the
/// lanes near a tie.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x0 + 8 * nv <= out.len()`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn store_block_u8<F: Fn(f64) -> u8>(
    src: &[u8],
    t: RowTaps<'_>,
    acc: [std::arch::x86_64::__m256; VBLOCK],
    nv: usize,
    x0: usize,
    delta: f32,
    out: &mut [MaybeUninit<u8>],
    store: &F,
) {
    let (q, near) = round_u8(acc, delta);
    let bytes = narrow4x8(q[0], q[1], q[2], q[3]);
    for (v, b) in bytes.iter().enumerate().take(nv) {
        store8(&mut out[x0 + 8 * v..x0 + 8 * v + 8], *b);
    }
    for bit in set_bits(near) {
        let x = x0 + bit;
        out[x].write(store(vertical_exact_u8(src, t.offs, t.ws, x)));
    }
}

/// The positions of the set bits of `mask`, lowest first: the lanes near
/// a tie that a rounding step recomputes.
fn set_bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            bit
        })
    })
}

/// Writes the 8 bytes of `b` (little-endian) into `out`, which must hold
/// exactly 8.
#[inline(always)]
fn store8(out: &mut [MaybeUninit<u8>], b: u64) {
    out.copy_from_slice(&b.to_le_bytes().map(MaybeUninit::new));
}

/// One strip of up to [`STRIP`] rows of the 8-bit horizontal pass (the
/// sums of [`horizontal_strip`], `rows` holding `out.len() / base.len()`
/// rows of `w_in` bytes), rounded in `f32` where that is exact as
/// [`vertical_rows_u8`] explains; `weights32` is `plan.weights` rounded to
/// `f32` and `strip` is `pmap.len() * STRIP` scratch, plus `w_in` more when
/// `poly` (the plan's [`Polyphase::find`]) is given: the outputs of its run
/// are summed along the rows instead.
/// Upscale x4 512² -> 2048², median per-pair time ratio of 60 alternating
/// runs with and without it, three times: 0.82-0.83.
///
/// Returns false (doing nothing) unless the CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
pub(crate) fn horizontal_strip_u8<F: Fn(f64) -> u8>(
    isa: Isa,
    plan: &HorizontalPlan<'_>,
    weights32: &[f32],
    delta: f32,
    rows: &[u8],
    strip: &mut [f32],
    out: &mut [MaybeUninit<u8>],
    poly: Option<&Polyphase>,
    store: &F,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        // The plan's own bounds were checked when it was made.
        let (w_out, taps) = (plan.base.len(), plan.taps);
        let nrows = out.len() / w_out;
        assert!(nrows <= STRIP && out.len() == nrows * w_out);
        assert!(rows.len() >= nrows * plan.w_in);
        assert_eq!(weights32.len(), w_out * taps);
        let (strip, row_scratch) = strip.split_at_mut(plan.pmap.len() * STRIP);
        if poly.is_some() {
            assert!(row_scratch.len() >= plan.w_in);
        }
        // SAFETY: AVX2 and FMA are present; the bounds are asserted above.
        // Common tap counts get an instance with the tap loop unrolled
        // (bicubic upscaling has 4 taps, linear 2, Lanczos3 6).
        if let Some(pp) = poly {
            // The run's own kernel asserts its columns lie within the row.
            assert!(pp.outputs().end <= w_out);
        }
        unsafe {
            let args = (
                plan,
                weights32,
                delta,
                rows,
                (strip, row_scratch),
                out,
                poly,
                store,
            );
            match taps {
                1 => horizontal_strip_u8_avx2::<F, 1>(args),
                2 => horizontal_strip_u8_avx2::<F, 2>(args),
                3 => horizontal_strip_u8_avx2::<F, 3>(args),
                4 => horizontal_strip_u8_avx2::<F, 4>(args),
                5 => horizontal_strip_u8_avx2::<F, 5>(args),
                6 => horizontal_strip_u8_avx2::<F, 6>(args),
                _ => horizontal_strip_u8_avx2::<F, 0>(args),
            }
        };
        return true;
    }
    let _ = (isa, plan, weights32, delta, rows, strip, out, poly, store);
    false
}

/// The exact `f64` sum of output `x`, row `r`, of a horizontal strip (the
/// order of [`accumulate`]).
#[inline(always)]
fn horizontal_exact_f32(plan: &HorizontalPlan<'_>, strip: &[f32], r: usize, x: usize) -> f64 {
    let taps = plan.taps;
    let (ws, b) = (&plan.weights[x * taps..(x + 1) * taps], plan.base[x]);
    let mut s = 0.0f64;
    for (j, &wt) in ws.iter().enumerate() {
        s += wt * f64::from(strip[(b + j) * STRIP + r]);
    }
    s
}

/// # Safety
/// The CPU must support AVX2 and FMA, and the bounds that
/// [`horizontal_strip_u8`] asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::type_complexity)]
unsafe fn horizontal_strip_u8_avx2<F: Fn(f64) -> u8, const TAPS: usize>(
    (plan, weights32, delta, rows, (strip, row_scratch), out, poly, store): (
        &HorizontalPlan<'_>,
        &[f32],
        f32,
        &[u8],
        (&mut [f32], &mut [f32]),
        &mut [MaybeUninit<u8>],
        Option<&Polyphase>,
        &F,
    ),
) {
    use std::arch::x86_64::*;
    let (w_in, w_out) = (plan.w_in, plan.base.len());
    // TAPS = 0: the tap count known only at run time.
    let taps = if TAPS == 0 { plan.taps } else { TAPS };
    let nrows = out.len() / w_out;
    // Fill the strip: in the consecutive run, 8 positions at a time by
    // widening 8 bytes of each row and transposing; elsewhere one cell at a
    // time.
    let run = plan.consecutive.clone();
    let (run_start, run_end) = (run.start, run.start + (run.end - run.start) / 8 * 8);
    let ix0 = plan.pmap.get(run_start).copied().unwrap_or(0);
    assert!(run_end <= plan.pmap.len() && ix0 + (run_end - run_start) <= w_in);
    let plen = plan.pmap.len();
    // With a polyphase run only the outputs outside it read the strip: the
    // positions their taps reach.
    let inner = poly.map_or(w_out..w_out, Polyphase::outputs);
    let reach = |xs: std::ops::Range<usize>| {
        let lo = xs.clone().map(|x| plan.base[x]).min().unwrap_or(plen);
        let hi = xs.map(|x| plan.base[x] + taps).max().unwrap_or(0);
        lo..hi.max(lo)
    };
    // The outputs the strip path sums: the segments outside the run, each
    // in blocks of 8, a segment shorter than 8 widened to the 8 outputs
    // around it (outputs summed twice get the same bytes: every path sums
    // the same f32 values), so that only rows narrower than 8 go through
    // the scalar exact sum.
    let cover = |seg: std::ops::Range<usize>| {
        if seg.is_empty() || seg.len() >= 8 || w_out < 8 {
            seg
        } else {
            let s = seg.start.min(w_out - 8);
            s..s + 8
        }
    };
    let segments = [cover(0..inner.start), cover(inner.end..w_out)];
    let needed = segments.clone().map(reach);
    let touches = |a: usize, b: usize| needed.iter().any(|n| n.start < b && a < n.end);
    let wanted = |p: usize| touches(p, p + 1);
    for p in (0..run_start).chain(run_end..plen).filter(|&p| wanted(p)) {
        let ix = plan.pmap[p];
        let cell = &mut strip[p * STRIP..(p + 1) * STRIP];
        for (r, c) in cell.iter_mut().enumerate() {
            *c = if r < nrows {
                f32::from(rows[r * w_in + ix])
            } else {
                0.0
            };
        }
    }
    let rp = rows.as_ptr();
    // The run's groups of 8 positions that meet a needed range (a group in
    // both is filled twice, with the same values).
    let groups = needed.iter().flat_map(|n| {
        let lo = run_start + (n.start.max(run_start) - run_start) / 8 * 8;
        (lo..n.end.min(run_end)).step_by(8)
    });
    for p in groups {
        let ix = ix0 + (p - run_start);
        let v: [__m256; 8] = std::array::from_fn(|r| {
            if r < nrows {
                // In bounds: ix + 8 <= w_in (asserted) in row r < nrows.
                widen8(rp.add(r * w_in + ix))
            } else {
                _mm256_setzero_ps()
            }
        });
        // v[r] holds positions p..p+8 of row r; cells want rows 0..8 of
        // each position.
        for (k, cell) in transpose8(v).iter().enumerate() {
            _mm256_storeu_ps(strip.as_mut_ptr().add((p + k) * STRIP), *cell);
        }
    }
    let strip: &[f32] = strip;
    let sp = strip.as_ptr();
    let wp = weights32.as_ptr();
    // The polyphase run, if any, has its own loop; the strip path takes
    // the outputs before and after it.
    if let Some(pp) = poly {
        let args = (
            pp,
            plan,
            weights32,
            delta,
            rows,
            row_scratch,
            nrows,
            &mut *out,
            store,
        );
        match (pp.period, taps) {
            (2, 2) => polyphase_u8_avx2::<F, 2, 2>(args),
            (3, 2) => polyphase_u8_avx2::<F, 3, 2>(args),
            (4, 2) => polyphase_u8_avx2::<F, 4, 2>(args),
            (2, 4) => polyphase_u8_avx2::<F, 2, 4>(args),
            (3, 4) => polyphase_u8_avx2::<F, 3, 4>(args),
            (4, 4) => polyphase_u8_avx2::<F, 4, 4>(args),
            (2, 6) => polyphase_u8_avx2::<F, 2, 6>(args),
            (3, 6) => polyphase_u8_avx2::<F, 3, 6>(args),
            _ => polyphase_u8_avx2::<F, 4, 6>(args),
        }
    }
    for segment in segments {
        // Blocks of 8 from the start; a ragged end as the last 8 outputs.
        let blocks = (segment.len() >= 8).then(|| {
            (segment.start..segment.end - 7)
                .step_by(8)
                .chain((segment.len() % 8 != 0).then_some(segment.end - 8))
        });
        // Only a row narrower than 8 outputs is left to the scalar sum.
        let scalar_from = if segment.len() >= 8 {
            segment.end
        } else {
            segment.start
        };
        for x in blocks.into_iter().flatten() {
            // acc[l]: rows 0..8 of output x + l.
            let mut acc = [_mm256_setzero_ps(); 8];
            let base = &plan.base[x..x + 8];
            let ws: [*const f32; 8] = std::array::from_fn(|l| wp.add((x + l) * taps));
            let cells: [*const f32; 8] = std::array::from_fn(|l| sp.add(base[l] * STRIP));
            // Taps outermost: the eight outputs' sums are eight independent
            // FMA chains advancing together (one output's taps at a time was a
            // single chain, bound by the FMA latency); each sum still takes its
            // taps in ascending order.
            for j in 0..taps {
                for (l, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(
                        _mm256_set1_ps(*ws[l].add(j)),
                        _mm256_loadu_ps(cells[l].add(j * STRIP)),
                        *a,
                    );
                }
            }
            // After the transpose, t[r] holds outputs x..x+8 of row r.
            let t = transpose8(acc);
            let (q, near) = round_u8(t, delta);
            // bytes[r] = outputs x..x+8 of row r (rows past nrows summed zeros).
            let lo = narrow4x8(q[0], q[1], q[2], q[3]);
            let hi = narrow4x8(q[4], q[5], q[6], q[7]);
            let bytes = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]];
            for (r, b) in bytes.iter().enumerate().take(nrows) {
                store8(&mut out[r * w_out + x..r * w_out + x + 8], *b);
            }
            for bit in set_bits(near) {
                let (r, l) = (bit / 8, bit % 8);
                if r < nrows {
                    out[r * w_out + x + l].write(store(horizontal_exact_f32(
                        plan,
                        strip,
                        r,
                        x + l,
                    )));
                }
            }
        }
        for xx in scalar_from..segment.end {
            for r in 0..nrows {
                out[r * w_out + xx].write(store(horizontal_exact_f32(plan, strip, r, xx)));
            }
        }
    }
}

/// The outputs of [`Polyphase`] run `pp` for the strip's `nrows` rows,
/// `P` = `pp.period`: each row's columns are widened once into
/// `row_scratch`, then per block of 8 periods phase `p`'s 8 sums take their
/// taps in ascending order, as the strip path's do, so they are the same
/// `f32` values; lanes near a tie are recomputed exactly.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the bounds that
/// [`horizontal_strip_u8`] asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::type_complexity)]
unsafe fn polyphase_u8_avx2<F: Fn(f64) -> u8, const P: usize, const TAPS: usize>(
    (pp, plan, weights32, delta, rows, row_scratch, nrows, out, store): (
        &Polyphase,
        &HorizontalPlan<'_>,
        &[f32],
        f32,
        &[u8],
        &mut [f32],
        usize,
        &mut [MaybeUninit<u8>],
        &F,
    ),
) {
    use std::arch::x86_64::*;
    let (w_in, w_out) = (plan.w_in, plan.base.len());
    assert_eq!(plan.taps, TAPS);
    let offs: [usize; P] = std::array::from_fn(|p| pp.offs[p]);
    // Columns col0 .. col0 + n are read (asserted within the row).
    let n = 8 * pp.blocks + offs.iter().max().map_or(0, |&o| o + TAPS) - 1;
    assert!(pp.col0 + n <= w_in && n <= row_scratch.len());
    let wv: [[__m256; TAPS]; P] = std::array::from_fn(|p| {
        std::array::from_fn(|j| _mm256_set1_ps(weights32[(pp.first + p) * TAPS + j]))
    });
    let exact = |buf: &[f32], x: usize, k: usize, p: usize| {
        let ws = &plan.weights[x * TAPS..(x + 1) * TAPS];
        let mut s = 0.0f64;
        for (j, &wt) in ws.iter().enumerate() {
            s += wt * f64::from(buf[offs[p] + k + j]);
        }
        s
    };
    for r in 0..nrows {
        let row = &rows[r * w_in + pp.col0..r * w_in + pp.col0 + n];
        let buf = &mut row_scratch[..n];
        let mut c = 0;
        while c + 8 <= n {
            _mm256_storeu_ps(buf.as_mut_ptr().add(c), widen8(row.as_ptr().add(c)));
            c += 8;
        }
        for (d, &byte) in buf[c..].iter_mut().zip(&row[c..]) {
            *d = f32::from(byte);
        }
        let buf: &[f32] = buf;
        let bp = buf.as_ptr();
        let orow = &mut out[r * w_out..(r + 1) * w_out];
        for b in 0..pp.blocks {
            let k0 = 8 * b;
            // Taps outermost: the phases' sums are independent FMA chains
            // (j indexes both the weights and the columns).
            let mut acc = [_mm256_setzero_ps(); P];
            #[allow(clippy::needless_range_loop)]
            for j in 0..TAPS {
                for p in 0..P {
                    // In bounds: k0 + offs[p] + j + 8 <= 8 * blocks + span - 1 = n.
                    let v = _mm256_loadu_ps(bp.add(k0 + offs[p] + j));
                    acc[p] = _mm256_fmadd_ps(wv[p][j], v, acc[p]);
                }
            }
            let (q, near) = round_u8(acc, delta);
            let zero = _mm256_setzero_si256();
            let pick = |p: usize| if p < P { q[p] } else { zero };
            let bytes = narrow4x8(pick(0), pick(1), pick(2), pick(3));
            // Output first + P * (k0 + l) + p is byte l of phase p.
            let x0 = pp.first + P * k0;
            let line = interleave_phases::<P>(bytes);
            for (o, &byte) in orow[x0..x0 + 8 * P].iter_mut().zip(&line) {
                o.write(byte);
            }
            for bit in set_bits(near) {
                let (l, p) = (bit % 8, bit / 8);
                let x = x0 + P * l + p;
                orow[x].write(store(exact(buf, x, k0 + l, p)));
            }
        }
    }
}

/// Interleaves `P` phases of 8 bytes each (`phases[p]`, little-endian)
/// into output order: byte `P * l + p` of the result is byte `l` of phase
/// `p` (the first `8 * P` bytes are meaningful).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn interleave_phases<const P: usize>(phases: [u64; 4]) -> [u8; 32] {
    use std::arch::x86_64::*;
    let mut line = [0u8; 32];
    let v = |p: usize| _mm_cvtsi64_si128(phases[p] as i64);
    match P {
        2 => _mm_storeu_si128(line.as_mut_ptr().cast(), _mm_unpacklo_epi8(v(0), v(1))),
        4 => {
            // (0, 2) and (1, 3) byte pairs, then the pairs interleaved.
            let a = _mm_unpacklo_epi8(v(0), v(2));
            let b = _mm_unpacklo_epi8(v(1), v(3));
            _mm_storeu_si128(line.as_mut_ptr().cast(), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128(line.as_mut_ptr().add(16).cast(), _mm_unpackhi_epi8(a, b));
        }
        _ => {
            for l in 0..8 {
                for p in 0..P {
                    line[P * l + p] = (phases[p] >> (8 * l)) as u8;
                }
            }
        }
    }
    line
}

/// Transposes an 8x8 block of `f32` held as 8 row vectors.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8(v: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    // u0 holds column 0 of rows 0..4 in its low half and column 4 in its
    // high half; u1 columns 1 and 5; ...
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes expand to the canonical samples `(k / 255) as f32` and quantize
    /// back to themselves, for every byte, on every instruction-set level;
    /// out-of-range and NaN samples saturate.
    #[test]
    fn bytes_round_trip_through_canonical_samples() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let to_byte = |v: f32| (f64::from(v) * 255.0).round().clamp(0.0, 255.0) as u8;
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx2Fma] {
            let mut samples = vec![MaybeUninit::new(0.0f32); bytes.len()];
            expand_u8(isa, &bytes, &mut samples);
            // SAFETY: expand_u8 wrote every element.
            let samples: Vec<f32> = samples.iter().map(|s| unsafe { s.assume_init() }).collect();
            for (&k, &v) in bytes.iter().zip(&samples) {
                assert_eq!(
                    v.to_bits(),
                    ((f64::from(k) / 255.0) as f32).to_bits(),
                    "{k} {isa:?}"
                );
            }
            let mut back = vec![0u8; samples.len()];
            quantize_u8(isa, &samples, &mut back, &to_byte);
            assert_eq!(back, bytes, "{isa:?}");
            let odd = [-0.5f32, 1.5, f32::NAN, 0.5 / 255.0, 1.0 / 510.0 - 1e-9];
            let mut odd32 = odd.repeat(7);
            odd32.truncate(32);
            let mut q = vec![0u8; 32];
            quantize_u8(isa, &odd32, &mut q, &to_byte);
            let want: Vec<u8> = odd32
                .iter()
                .map(|&v| if v.is_nan() { 0 } else { to_byte(v) })
                .collect();
            assert_eq!(q, want, "{isa:?}");
        }
    }
}
