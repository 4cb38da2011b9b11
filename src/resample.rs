//! Image resampling with MATLAB `imresize` semantics.
//!
//! The reference is MATLAB's `imresize` (Image Processing Toolbox): its
//! `contributions()` weight tables, its kernels (`cubic`, `triangle`, `box`,
//! `lanczos2`, `lanczos3`), its antialiasing rule, the order in which it
//! resizes the two dimensions, and its per-type rounding. For 8-bit input the
//! default [`resize`] reproduces MATLAB's `imresize(A, 1/s, 'bicubic')`
//! **pixel for pixel** (checked against MATLAB-made Set5 LR files in
//! `tests/matlab_reference.rs`).
//!
//! # What is computed
//!
//! For each axis, with input length `n`, output length `m` and scale `s`
//! (`Scale(s)` uses `s` itself, `Size` uses `m / n`), output sample `x`
//! (1-based) maps to input coordinate
//!
//! ```text
//! u = x / s + 0.5 * (1 - 1 / s)
//! ```
//!
//! and is the weighted sum of the `ceil(w) + 2` input samples from
//! `floor(u - w / 2)` on, with weights `k(u - i)` for kernel `k` of width `w`.
//! When downscaling (`s < 1`) with antialiasing, the kernel is stretched:
//! `h(x) = s * k(s * x)`, `w / s` wide (MATLAB's rule; [`Kernel::Nearest`] is
//! never stretched, as MATLAB's default for `'nearest'`). Each row of weights
//! is normalised to sum to 1, tap columns that are zero for every output are
//! dropped, and taps outside the image are clamped to the edge
//! ([`Border::Replicate`]) or mirrored ([`Border::Symmetric`], MATLAB's
//! current `contributions()` code).
//!
//! Weights and sums are `f64` and every output sample sums its taps in order,
//! as MATLAB's `imresizemex` does. The dimension with the smaller scale is
//! resized first (height first on ties), and for `U8`/`U16` images with
//! [`ResizeOptions::matlab_rounding`] the intermediate image is rounded to
//! the integer grid, because MATLAB keeps the input's integer class between
//! the two passes. Integer inputs are processed in integer units
//! (`round(v * 255)` for 8-bit), so no `1/255` representation error reaches
//! the result.
//!
//! Every plane (alpha included) is resized independently; alpha is not
//! premultiplied (MATLAB does not either).
//!
//! # Performance
//!
//! Weight tables are built once per axis. The vertical pass accumulates
//! weighted input rows into an output row in register-held blocks of
//! columns (vectorises over `x`); the horizontal pass gathers strips of
//! [`STRIP`] rows, interleaved, so that the tap loop vectorises over rows
//! (on bytes, a whole-factor enlargement's interior instead vectorises
//! along each row, one output phase at a time). Rounding and the
//! conversion to the output type are fused into each pass's stores and
//! written branch-free so they vectorise too. The inner loops
//! live in the private `kernels` module, instantiated for baseline x86-64
//! and for AVX2 (chosen at run time; 4-wide `f64`, no FMA). Work planes are
//! `f32` wherever that is exact (a float image's samples; with MATLAB
//! rounding, the integer-valued input and intermediate images), halving the
//! memory traffic, and are kept per thread between calls. Both passes are
//! parallel over rows with rayon (they run in the caller's rayon pool).
//! Every output sample still adds its taps in ascending order in `f64`, with
//! separate multiplications and additions, so none of this changes a single
//! bit of the result.
//!
//! 8-bit images with MATLAB rounding (the benchmark case) take a faster
//! path on CPUs with AVX2 + FMA: both passes run on bytes (a quarter of
//! the memory traffic) and sum in `f32` with FMA, 8 lanes. The rounded
//! result only depends on which interval `(k - 1/2, k + 1/2)` holds the
//! sum, and the `f32` sum is within a proven bound of MATLAB's `f64` sum,
//! so it decides every sample that lies further than that bound from a tie;
//! the rest (about 0.2% for bicubic x4, whose weights are multiples of
//! 1/512) are recomputed in `f64` exactly as above. The output is the same,
//! bit for bit (tested against the `f64` path on every kernel, and against
//! the MATLAB references). [`resize_u8`] offers the same on byte planes.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::str::FromStr;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::kernels::resample::{self as kernels, Sample};
use crate::kernels::{map, Isa};

/// An interpolation kernel, as named by MATLAB's `imresize`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// Nearest neighbour (`'nearest'`, width 1). Never antialiased.
    Nearest,
    /// Triangle / bilinear (`'bilinear'`, width 2).
    Linear,
    /// Keys' cubic convolution with parameter `a` (width 4). MATLAB's
    /// `'bicubic'` is `a = -0.5` ([`Kernel::bicubic`]).
    Cubic {
        /// The Keys parameter; `-0.5` for MATLAB, `-0.75` for OpenCV.
        a: f64,
    },
    /// Lanczos with 2 lobes (`'lanczos2'`, width 4).
    Lanczos2,
    /// Lanczos with 3 lobes (`'lanczos3'`, width 6).
    Lanczos3,
    /// Box (`'box'`, width 1); with antialiasing, area averaging when
    /// downscaling.
    Box,
}

impl Kernel {
    /// MATLAB's `'bicubic'`: Keys' cubic with `a = -0.5`.
    pub fn bicubic() -> Self {
        Kernel::Cubic { a: -0.5 }
    }

    /// The kernel's support width in input samples, as in MATLAB's
    /// `imresize` (nearest 1, linear 2, cubic 4, lanczos2 4, lanczos3 6,
    /// box 1).
    pub fn width(self) -> f64 {
        match self {
            Kernel::Nearest | Kernel::Box => 1.0,
            Kernel::Linear => 2.0,
            Kernel::Cubic { .. } | Kernel::Lanczos2 => 4.0,
            Kernel::Lanczos3 => 6.0,
        }
    }

    /// Evaluates the kernel at `x`, with MATLAB's formulas (same operation
    /// order, so the same `f64` results).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Kernel::Nearest | Kernel::Box => {
                if (-0.5..0.5).contains(&x) {
                    1.0
                } else {
                    0.0
                }
            }
            Kernel::Linear => {
                if (-1.0..0.0).contains(&x) {
                    x + 1.0
                } else if (0.0..=1.0).contains(&x) {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Kernel::Cubic { a } => {
                let ax = x.abs();
                let ax2 = ax * ax;
                let ax3 = ax2 * ax;
                if ax <= 1.0 {
                    (a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0
                } else if ax <= 2.0 {
                    a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a
                } else {
                    0.0
                }
            }
            Kernel::Lanczos2 => lanczos(x, 2.0),
            Kernel::Lanczos3 => lanczos(x, 3.0),
        }
    }
}

/// MATLAB's `lanczos2` / `lanczos3`, `eps`-guarded at 0 as MATLAB does.
fn lanczos(x: f64, lobes: f64) -> f64 {
    if x.abs() >= lobes {
        return 0.0;
    }
    let pi = std::f64::consts::PI;
    ((pi * x).sin() * (pi * x / lobes).sin() + f64::EPSILON)
        / ((pi * pi * x * x / lobes) + f64::EPSILON)
}

impl FromStr for Kernel {
    type Err = Error;

    /// Parses `nearest`, `linear`/`bilinear`/`triangle`, `cubic`/`bicubic`
    /// (MATLAB's `a = -0.5`), `lanczos2`, `lanczos3`, `box`/`area`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nearest" => Ok(Kernel::Nearest),
            "linear" | "bilinear" | "triangle" => Ok(Kernel::Linear),
            "cubic" | "bicubic" => Ok(Kernel::bicubic()),
            "lanczos2" => Ok(Kernel::Lanczos2),
            "lanczos3" => Ok(Kernel::Lanczos3),
            "box" | "area" => Ok(Kernel::Box),
            _ => Err(Error::invalid(
                "kernel",
                format!(
                    "{s:?} (expected nearest, linear, bilinear, cubic, bicubic, lanczos2, \
                     lanczos3, box or area)"
                ),
            )),
        }
    }
}

/// How taps that fall outside the image are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Border {
    /// Clamp to the edge sample. Matches the MATLAB-made reference LR files
    /// (older `imresize` releases clamped indices); the default.
    #[default]
    Replicate,
    /// Mirror, repeating the edge sample (`[.. 2 1 | 1 2 ..]`), as in the
    /// `aux = [1:n, n:-1:1]` rule of current MATLAB `contributions()`.
    Symmetric,
}

impl FromStr for Border {
    type Err = Error;

    /// Parses `replicate` or `symmetric` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "replicate" => Ok(Border::Replicate),
            "symmetric" => Ok(Border::Symmetric),
            _ => Err(Error::invalid(
                "border",
                format!("{s:?} (expected replicate or symmetric)"),
            )),
        }
    }
}

/// Options for [`resize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResizeOptions {
    /// Interpolation kernel.
    pub kernel: Kernel,
    /// Stretch the kernel when downscaling (MATLAB's `'Antialiasing'`,
    /// default true). Ignored for [`Kernel::Nearest`].
    pub antialias: bool,
    /// Edge rule for out-of-image taps.
    pub border: Border,
    /// For `U8`/`U16` images, round (half away from zero, saturating) to the
    /// integer grid between the two 1-D passes, as MATLAB's `imresize` does
    /// on integer classes. Float images are never rounded between passes.
    pub matlab_rounding: bool,
}

impl Default for ResizeOptions {
    /// MATLAB's `imresize` defaults: bicubic, antialiased, replicate edges
    /// (see [`Border::Replicate`]), MATLAB integer rounding.
    fn default() -> Self {
        ResizeOptions {
            kernel: Kernel::bicubic(),
            antialias: true,
            border: Border::Replicate,
            matlab_rounding: true,
        }
    }
}

/// The requested output of [`resize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeTarget {
    /// Scale both axes by this factor: output `ceil(n * s)` samples per axis
    /// (MATLAB's `imresize(A, s)`), coordinates mapped with `s` itself.
    Scale(f64),
    /// An explicit output size; each axis maps with `out / in`
    /// (MATLAB's `imresize(A, [rows cols])`).
    Size {
        /// Output width in pixels.
        width: usize,
        /// Output height in pixels.
        height: usize,
    },
}

/// Largest output dimension accepted (the caller enforces pixel limits).
const MAX_DIM: f64 = u32::MAX as f64;

/// The output size `(width, height)` of resizing a `width x height` image to
/// `target`, as MATLAB computes it (`ceil(n * s)` per axis for a scale).
///
/// Fails if the scale is not finite and positive, or the target size is
/// empty or absurdly large (over `u32::MAX` per axis).
pub fn output_size(width: usize, height: usize, target: ResizeTarget) -> Result<(usize, usize)> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "size",
            format!("input {width}x{height} has no pixels"),
        ));
    }
    match target {
        ResizeTarget::Scale(s) => {
            if !s.is_finite() || s <= 0.0 {
                return Err(Error::invalid(
                    "scale",
                    format!("{s} (must be finite and > 0)"),
                ));
            }
            let w = (width as f64 * s).ceil();
            let h = (height as f64 * s).ceil();
            if !(w >= 1.0 && h >= 1.0 && w <= MAX_DIM && h <= MAX_DIM) {
                return Err(Error::invalid(
                    "scale",
                    format!("{s} turns {width}x{height} into {w}x{h}"),
                ));
            }
            Ok((w as usize, h as usize))
        }
        ResizeTarget::Size {
            width: w,
            height: h,
        } => {
            if w == 0 || h == 0 {
                return Err(Error::invalid("size", format!("{w}x{h} has no pixels")));
            }
            if w as f64 > MAX_DIM || h as f64 > MAX_DIM {
                return Err(Error::invalid("size", format!("{w}x{h} is too large")));
            }
            Ok((w, h))
        }
    }
}

/// Largest weight table (outputs x taps) [`resize`] builds per axis.
const MAX_TABLE_ENTRIES: usize = 1 << 25;

/// One axis's weight table: output `o` is
/// `sum_j weights[o * taps + j] * in[border(left[o] + j)]`, `j` ascending.
#[derive(Debug, Clone)]
struct AxisWeights {
    /// Input length.
    in_len: usize,
    /// Taps per output (same for all outputs, after MATLAB's clean-up).
    taps: usize,
    /// 0-based index of each output's first tap (may lie outside the input).
    left: Vec<isize>,
    /// Normalised weights, `out_len * taps`.
    weights: Vec<f64>,
}

impl AxisWeights {
    /// MATLAB's `contributions(in_length, out_length, scale, kernel,
    /// kernel_width, antialiasing)`, in `f64` with MATLAB's operation order.
    ///
    /// Fails if the table would exceed [`MAX_TABLE_ENTRIES`] (an absurdly
    /// small antialiased scale makes the stretched kernel millions of taps
    /// wide).
    fn new(
        in_len: usize,
        out_len: usize,
        scale: f64,
        kernel: Kernel,
        antialias: bool,
    ) -> Result<Self> {
        let stretch = scale < 1.0 && antialias && kernel != Kernel::Nearest;
        let kernel_width = if stretch {
            kernel.width() / scale
        } else {
            kernel.width()
        };
        let h = |x: f64| {
            if stretch {
                scale * kernel.eval(scale * x)
            } else {
                kernel.eval(x)
            }
        };
        let p = kernel_width.ceil() + 2.0;
        if p * out_len as f64 > MAX_TABLE_ENTRIES as f64 {
            return Err(Error::invalid(
                "scale",
                format!(
                    "{scale} would need a {p}-tap kernel for {out_len} outputs \
                     (weight table limit {MAX_TABLE_ENTRIES} entries)"
                ),
            ));
        }
        let p = p as usize;
        let mut left = Vec::with_capacity(out_len);
        let mut weights = vec![0.0f64; out_len * p];
        for (o, row) in weights.chunks_exact_mut(p).enumerate() {
            let x = (o + 1) as f64;
            let u = x / scale + 0.5 * (1.0 - 1.0 / scale);
            let l = (u - kernel_width / 2.0).floor();
            let mut sum = 0.0;
            for (j, w) in row.iter_mut().enumerate() {
                *w = h(u - (l + j as f64));
                sum += *w;
            }
            for w in row.iter_mut() {
                *w /= sum;
            }
            // 1-based MATLAB index l -> 0-based l - 1.
            left.push(l as isize - 1);
        }
        // MATLAB drops tap columns that are zero for every output. Interior
        // zero columns add exact zeros, so only the ends need trimming.
        let zero_col = |j: usize| weights.chunks_exact(p).all(|r| r[j] == 0.0);
        let lead = (0..p).take_while(|&j| zero_col(j)).count();
        let trail = if lead == p {
            0
        } else {
            (0..p).rev().take_while(|&j| zero_col(j)).count()
        };
        let taps = (p - lead - trail).max(1);
        let lead = lead.min(p - taps);
        let weights = weights
            .chunks_exact(p)
            .flat_map(|r| r[lead..lead + taps].iter().copied())
            .collect();
        for l in &mut left {
            *l += lead as isize;
        }
        Ok(AxisWeights {
            in_len,
            taps,
            left,
            weights,
        })
    }

    fn out_len(&self) -> usize {
        self.left.len()
    }

    /// The weights rounded to `f32` (for the screened 8-bit passes).
    fn weights_f32(&self) -> Vec<f32> {
        self.weights.iter().map(|&w| w as f32).collect()
    }

    /// The screened passes' bound on `|f32 sum - f64 sum|` over this
    /// table's outputs, for integer samples in `0..=m`: 0 when the `f32`
    /// sums are exact (see [`AxisWeights::f32_sums_exact`]).
    fn screen_delta(&self, m: f64) -> f64 {
        let abs_sum = self.max_abs_sum();
        if self.f32_sums_exact(m, abs_sum) {
            return 0.0;
        }
        kernels::screen_delta(self.taps, m, abs_sum)
    }

    /// The largest `sum |w|` over the outputs.
    fn max_abs_sum(&self) -> f64 {
        self.weights
            .chunks_exact(self.taps)
            .map(|r| r.iter().map(|w| w.abs()).sum::<f64>())
            .fold(0.0, f64::max)
    }

    /// Whether every `f32` sum of integer samples in `0..=m` with these
    /// weights is exact, as it is when every weight is a multiple of one
    /// power of two `2^-e` (dyadic, as the cubic weights of a x2 or x4
    /// enlargement are) and `m * max sum |w| * 2^e < 2^24` (with a bit to
    /// spare): then every
    /// product and partial sum is an integer multiple of `2^-e` below
    /// `2^24 * 2^-e`, which `f32` holds exactly, so each fused multiply-add
    /// is exact and the `f32` sum is MATLAB's `f64` sum itself, exact ties
    /// included.
    fn f32_sums_exact(&self, m: f64, abs_sum: f64) -> bool {
        // One more bit and one more unit leave room for the rounding's
        // own p + 1/2 (see kernels::resample::round_u8).
        self.dyadic_exponent()
            .filter(|&e| e <= 24)
            .is_some_and(|e| (m * abs_sum + 1.0) * f64::powi(2.0, e + 1) <= f64::powi(2.0, 24))
    }

    /// The smallest `e >= 0` with every weight an integer multiple of
    /// `2^-e`, if there is one (subnormal or non-finite weights have none).
    fn dyadic_exponent(&self) -> Option<i32> {
        // w = mantissa * 2^exp, the mantissa's trailing zeros shifted out.
        let of = |w: f64| -> Option<i32> {
            if w == 0.0 {
                return Some(0);
            }
            if !w.is_normal() {
                return None;
            }
            let bits = w.to_bits();
            let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
            let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
            Some((-(exp + mantissa.trailing_zeros() as i32)).max(0))
        };
        self.weights
            .iter()
            .try_fold(0, |e, &w| of(w).map(|we| e.max(we)))
    }

    /// The weights as integers over a common power of two, for the exact
    /// integer 8-bit vertical pass (`kernels::resample::vertical_rows_fixed`):
    /// `Some` when every weight times `2^shift` is an integer that fits
    /// `i16` (as in bicubic x2 and x4 enlargements and antialiased x2 and x4
    /// reductions).
    fn fixed_point(&self) -> Option<FixedWeights> {
        let shift = self.dyadic_exponent().filter(|&e| e <= 15)?;
        let scale = f64::powi(2.0, shift);
        let weights = self
            .weights
            .iter()
            .map(|&w| {
                let v = w * scale;
                (v.abs() <= f64::from(i16::MAX)).then_some(v as i16)
            })
            .collect::<Option<Vec<i16>>>()?;
        // 255 * sum |w| * 2^shift and the rounding's half fit i32 easily
        // (at most taps * 255 * 2^15); refuse absurd tap counts all the same.
        let max_sum: i64 = weights
            .chunks_exact(self.taps)
            .map(|r| r.iter().map(|&w| i64::from(w).abs()).sum::<i64>())
            .max()
            .unwrap_or(0);
        (255 * max_sum + (1 << shift) < i64::from(i32::MAX)).then_some(FixedWeights {
            shift: shift as u32,
            weights,
        })
    }

    /// True when the table copies its input (scale 1 with an interpolating
    /// kernel), so the pass can be skipped.
    fn is_identity(&self) -> bool {
        self.taps == 1
            && self.out_len() == self.in_len
            && self.weights.iter().all(|&w| w == 1.0)
            && self.left.iter().enumerate().all(|(o, &l)| l == o as isize)
    }
}

/// A weight table in fixed point: weight `j` of output `o` is
/// `weights[o * taps + j] / 2^shift`, exactly.
struct FixedWeights {
    shift: u32,
    weights: Vec<i16>,
}

/// Maps a (possibly out-of-range) 0-based index into `0..n`.
#[inline]
fn border_index(i: isize, n: usize, border: Border) -> usize {
    let n = n as isize;
    match border {
        Border::Replicate => i.clamp(0, n - 1) as usize,
        Border::Symmetric => {
            let m = i.rem_euclid(2 * n);
            (if m < n { m } else { 2 * n - 1 - m }) as usize
        }
    }
}

/// Rows interleaved per horizontal-pass strip (the vector width of the tap
/// loop).
pub const STRIP: usize = kernels::STRIP;

/// Output rows per parallel task in the vertical pass.
const ROWS_PER_TASK: usize = 8;

/// Sets `offs[j]` to the offset, in a `w`-wide plane, of output row `y`'s
/// tap `j` (the border rule applied).
fn tap_offsets(tab: &AxisWeights, border: Border, w: usize, y: usize, offs: &mut Vec<usize>) {
    offs.clear();
    offs.extend(
        (0..tab.taps).map(|j| border_index(tab.left[y] + j as isize, tab.in_len, border) * w),
    );
}

/// Runs `row(offs, y, out_row)` for every output row `y` of a vertical
/// pass over a `w`-wide plane, in parallel: `offs[j]` is the offset of tap
/// `j`'s input row (the border rule applied).
fn for_each_vertical_row<T, R>(tab: &AxisWeights, border: Border, w: usize, out: &mut [T], row: R)
where
    T: Send,
    R: Fn(&[usize], usize, &mut [T]) + Sync,
{
    out.par_chunks_mut(w * ROWS_PER_TASK)
        .enumerate()
        .for_each_init(Vec::new, |offs, (blk, oblk)| {
            for (r, orow) in oblk.chunks_exact_mut(w).enumerate() {
                let y = blk * ROWS_PER_TASK + r;
                tap_offsets(tab, border, w, y, offs);
                row(offs, y, orow);
            }
        });
}

/// Resizes the height of a `w x tab.in_len` plane into `out`
/// (`w x tab.out_len()`); `store` converts each `f64` sum.
fn pass_vertical<S, T, F>(
    isa: Isa,
    src: &[S],
    w: usize,
    tab: &AxisWeights,
    border: Border,
    out: &mut [T],
    store: F,
) where
    S: Sample,
    T: Copy + Send,
    F: Fn(f64) -> T + Sync,
{
    let taps = tab.taps;
    for_each_vertical_row(tab, border, w, out, |offs, y, orow| {
        let ws = &tab.weights[y * taps..(y + 1) * taps];
        kernels::vertical_row(isa, src, offs, ws, orow, &store);
    });
}

/// Runs `strip_fn(plan, rows, out_strip, scratch)` for every strip of up
/// to [`STRIP`] output rows of a horizontal pass over the plane `src`
/// (`rows`: the strip's input rows, `plan`'s `w_in` samples each), in
/// parallel; `init(padded_len)` makes each worker's `scratch`.
fn for_each_horizontal_strip<S, T, X, I, G>(
    plan: &kernels::HorizontalPlan<'_>,
    src: &[S],
    out: &mut [T],
    init: I,
    strip_fn: G,
) where
    S: Sync,
    T: Send,
    X: Send,
    I: Fn(usize) -> X + Sync + Send,
    G: Fn(&kernels::HorizontalPlan<'_>, &[S], &mut [T], &mut X) + Sync + Send,
{
    let (plen, w_in, w_out) = (plan.padded_len(), plan.in_len(), plan.out_len());
    out.par_chunks_mut(w_out * STRIP).enumerate().for_each_init(
        || init(plen),
        |scratch, (blk, oblk)| {
            let y0 = blk * STRIP;
            let rows = &src[y0 * w_in..(y0 + oblk.len() / w_out) * w_in];
            strip_fn(plan, rows, oblk, scratch)
        },
    );
}

/// Where a horizontal pass's taps read: the padded positions of a strip.
struct StripLayout {
    /// Input column of every padded strip position.
    pmap: Vec<usize>,
    /// First padded position of each output's taps.
    base: Vec<usize>,
    /// The padded positions whose input columns are consecutive (all but
    /// the border's): the one run the border rule leaves intact.
    consecutive: std::ops::Range<usize>,
}

impl StripLayout {
    fn new(tab: &AxisWeights, border: Border) -> StripLayout {
        let pmin = tab.left.iter().copied().min().unwrap_or(0);
        let pmax = tab.left.iter().copied().max().unwrap_or(0) + tab.taps as isize;
        let pmap: Vec<usize> = (pmin..pmax)
            .map(|p| border_index(p, tab.in_len, border))
            .collect();
        let base = tab.left.iter().map(|&l| (l - pmin) as usize).collect();
        let first = (0..pmap.len())
            .find(|&p| pmap[p] as isize == p as isize + pmin)
            .unwrap_or(0);
        let last = (first..pmap.len())
            .take_while(|&p| pmap[p] as isize == p as isize + pmin)
            .last()
            .map_or(first, |p| p + 1);
        StripLayout {
            pmap,
            base,
            consecutive: first..last,
        }
    }

    fn plan<'a>(&'a self, tab: &'a AxisWeights) -> kernels::HorizontalPlan<'a> {
        let (pmap, base) = (&self.pmap, &self.base);
        kernels::HorizontalPlan::new(
            tab.in_len,
            pmap,
            base,
            tab.taps,
            &tab.weights,
            self.consecutive.clone(),
        )
    }
}

/// Resizes the width of a `tab.in_len x h` plane into `out`
/// (`tab.out_len() x h`); `store` converts each `f64` sum.
fn pass_horizontal<S, T, F>(
    isa: Isa,
    src: &[S],
    tab: &AxisWeights,
    border: Border,
    out: &mut [T],
    store: F,
) where
    S: Sample,
    T: Copy + Send,
    F: Fn(f64) -> T + Sync,
{
    let w_out = tab.out_len();
    let layout = StripLayout::new(tab, border);
    for_each_horizontal_strip(
        &layout.plan(tab),
        src,
        out,
        |plen| (vec![0.0f64; plen * STRIP], vec![0.0f64; w_out * STRIP]),
        |plan, rows, oblk, (strip, sums)| {
            kernels::horizontal_strip(isa, plan, rows, strip, sums, oblk, &store);
        },
    );
}

/// One pass of [`resize_u8`]'s 8-bit path, with everything that depends
/// only on its weight table worked out once per resize rather than once
/// per plane (for a small image that work was a tenth of the resize).
struct BytePass<'a> {
    /// Whether the pass resizes the height.
    vertical: bool,
    tab: &'a AxisWeights,
    /// The table in fixed point, when the vertical pass runs in exact
    /// integer arithmetic ([`vertical_pass_fixed`]); the screened `f32`
    /// kernels run otherwise.
    fixed: Option<FixedWeights>,
    /// The table in fixed point with its weights paired, when the
    /// horizontal pass runs in exact integer arithmetic
    /// (`kernels::resample::horizontal_strip_fixed`: x2 and x4 reductions).
    paired: Option<kernels::PairedWeights>,
    /// The table in fixed point with its polyphase run, when the
    /// horizontal pass runs in exact integer arithmetic
    /// (`kernels::resample::polyphase_rows_fixed`: x2 and x4 enlargements).
    phased: Option<kernels::FixedPhases>,
    /// The weights rounded to `f32` (empty with any of the integer passes).
    ws32: Vec<f32>,
    /// The screen's bound, [`AxisWeights::screen_delta`] (0 with any of
    /// the integer passes).
    delta: f64,
    /// A horizontal pass's strip layout and polyphase run.
    layout: Option<(StripLayout, Option<kernels::Polyphase>)>,
}

impl<'a> BytePass<'a> {
    fn new(vertical: bool, tab: &'a AxisWeights, border: Border) -> BytePass<'a> {
        let fixed = tab.fixed_point();
        let strips = (!vertical).then(|| StripLayout::new(tab, border));
        let paired = strips.as_ref().and_then(|layout| {
            let f = fixed.as_ref()?;
            let positions = layout.pmap.len();
            kernels::PairedWeights::new(&layout.base, positions, tab.taps, &f.weights, f.shift)
        });
        let phased = strips.as_ref().and_then(|layout| {
            let f = fixed.as_ref().filter(|_| paired.is_none())?;
            kernels::FixedPhases::new(&layout.plan(tab), &f.weights, f.shift)
        });
        let fixed = fixed.filter(|_| vertical);
        let (ws32, delta) = if fixed.is_some() || paired.is_some() || phased.is_some() {
            (Vec::new(), 0.0)
        } else {
            (tab.weights_f32(), tab.screen_delta(255.0))
        };
        let layout = strips.map(|layout| {
            let poly = (paired.is_none() && phased.is_none())
                .then(|| kernels::Polyphase::find(&layout.plan(tab), &ws32))
                .flatten();
            (layout, poly)
        });
        BytePass {
            vertical,
            tab,
            fixed,
            paired,
            phased,
            ws32,
            delta,
            layout,
        }
    }
}

/// One pass of [`resize_u8`]'s 8-bit path over a plane `src` of width `w`
/// (the vertical pass's) into `out`, writing every element of it: exact
/// integer sums where the table allows ([`vertical_pass_fixed`]; for the
/// horizontal pass `kernels::resample::horizontal_strip_fixed` and
/// `polyphase_rows_fixed`), else
/// MATLAB's `uint8` rounding decided in `f32` where that is exact (see
/// [`kernels::vertical_rows_u8`]). Needs AVX2 + FMA.
fn pass_u8(
    isa: Isa,
    pass: &BytePass<'_>,
    src: &[u8],
    w: usize,
    border: Border,
    out: &mut [MaybeUninit<u8>],
) {
    let store = |v: f64| round_saturate(v, 255.0) as u8;
    let done = |ran: bool| assert!(ran, "the 8-bit kernels need AVX2 + FMA");
    let (tab, ws32, delta) = (pass.tab, &pass.ws32, pass.delta as f32);
    if let Some(fixed) = &pass.fixed {
        return vertical_pass_fixed(isa, src, w, tab, fixed, border, out);
    }
    if pass.vertical {
        fn row_taps<'a>(
            ws: &'a [f64],
            ws32: &'a [f32],
            y: usize,
            offs: &'a [usize],
        ) -> kernels::RowTaps<'a> {
            let taps = offs.len();
            kernels::RowTaps {
                offs,
                ws: &ws[y * taps..(y + 1) * taps],
                ws32: &ws32[y * taps..(y + 1) * taps],
            }
        }
        // Rows go to the kernel in pairs, which share most input rows.
        for_each_row_pair(
            tab,
            border,
            w,
            out,
            || (),
            |_, pair| {
                let second = pair.second.map(|(offs_b, out_b)| {
                    (row_taps(&tab.weights, ws32, pair.y + 1, offs_b), out_b)
                });
                done(kernels::vertical_rows_u8(
                    isa,
                    src,
                    (
                        row_taps(&tab.weights, ws32, pair.y, pair.offs_a),
                        pair.out_a,
                    ),
                    second,
                    pair.ahead,
                    delta,
                    &store,
                ));
            },
        );
    } else if let Some((layout, poly)) = &pass.layout {
        let w_in = tab.in_len;
        let plan = layout.plan(tab);
        if let Some(phases) = &pass.phased {
            return for_each_horizontal_strip(
                &plan,
                src,
                out,
                |_| (),
                |plan, rows, oblk, _| {
                    done(kernels::polyphase_rows_fixed(isa, plan, phases, rows, oblk));
                },
            );
        }
        if let Some(pw) = &pass.paired {
            return for_each_horizontal_strip(
                &plan,
                src,
                out,
                |_| vec![0i32; pw.scratch_len()],
                |plan, rows, oblk, cells| {
                    done(kernels::horizontal_strip_fixed(
                        isa, plan, pw, rows, cells, oblk,
                    ));
                },
            );
        }
        for_each_horizontal_strip(
            &plan,
            src,
            out,
            // The strip, then one row's samples for the polyphase run.
            |plen| vec![0.0f32; plen * STRIP + w_in],
            |plan, rows, oblk, strip| {
                done(kernels::horizontal_strip_u8(
                    isa,
                    plan,
                    ws32,
                    delta,
                    rows,
                    strip,
                    oblk,
                    poly.as_ref(),
                    &store,
                ));
            },
        );
    }
}

/// [`pass_u8`]'s vertical pass for a table in fixed point, in exact
/// integer arithmetic (`kernels::resample::vertical_rows_fixed`), two
/// output rows per sweep over the input rows they read.
fn vertical_pass_fixed(
    isa: Isa,
    src: &[u8],
    w: usize,
    tab: &AxisWeights,
    fixed: &FixedWeights,
    border: Border,
    out: &mut [MaybeUninit<u8>],
) {
    for_each_row_pair(tab, border, w, out, PairTaps::default, |taps, pair| {
        taps.fill(
            fixed,
            tab.taps,
            pair.y,
            pair.offs_a,
            pair.second.as_ref().map(|(offs_b, _)| *offs_b),
        );
        let ran = kernels::vertical_rows_fixed(
            isa,
            src,
            taps.as_taps(),
            fixed.shift,
            pair.out_a,
            pair.second.map(|(_, out_b)| out_b),
            pair.ahead,
        );
        assert!(ran, "the 8-bit kernels need AVX2 + FMA");
    });
}

/// Two consecutive output rows of an 8-bit vertical pass, as
/// [`for_each_row_pair`] hands them out.
struct RowPair<'r> {
    /// The first row.
    y: usize,
    /// Offsets of the first row's tap rows in the input plane.
    offs_a: &'r [usize],
    out_a: &'r mut [MaybeUninit<u8>],
    /// Row `y + 1`'s tap offsets and output, unless `y` is the last row.
    second: Option<(&'r [usize], &'r mut [MaybeUninit<u8>])>,
    /// Offsets of the input rows the next pair reads first, which this one
    /// does not: the kernels prefetch them a whole pair ahead.
    ahead: &'r [usize],
}

/// Runs `pair_fn(scratch, pair)` for every pair of output rows `(y, y + 1)`
/// (`y` even) of a vertical pass over a `w`-wide plane into `out`, in
/// parallel, with per-task `scratch` made by `init`.
fn for_each_row_pair<X, I, G>(
    tab: &AxisWeights,
    border: Border,
    w: usize,
    out: &mut [MaybeUninit<u8>],
    init: I,
    pair_fn: G,
) where
    X: Send,
    I: Fn() -> X + Sync + Send,
    G: Fn(&mut X, RowPair<'_>) + Sync + Send,
{
    out.par_chunks_mut(w * ROWS_PER_TASK)
        .enumerate()
        .for_each_init(
            || (<[Vec<usize>; 3]>::default(), init()),
            |([offs_a, offs_b, ahead], scratch), (blk, oblk)| {
                for (i, rows) in oblk.chunks_mut(2 * w).enumerate() {
                    let y = blk * ROWS_PER_TASK + 2 * i;
                    let (out_a, out_b) = rows.split_at_mut(w);
                    tap_offsets(tab, border, w, y, offs_a);
                    let two = !out_b.is_empty();
                    if two {
                        tap_offsets(tab, border, w, y + 1, offs_b);
                    }
                    ahead.clear();
                    if y + 3 < tab.out_len() {
                        let read = offs_a.iter().chain(offs_b.iter().filter(|_| two));
                        let last = read.copied().max().unwrap_or(0);
                        tap_offsets(tab, border, w, y + 3, ahead);
                        ahead.retain(|&o| o > last);
                    }
                    let pair = RowPair {
                        y,
                        offs_a,
                        out_a,
                        second: two.then_some((&offs_b[..], out_b)),
                        ahead,
                    };
                    pair_fn(scratch, pair);
                }
            },
        );
}

/// The input rows one or two output rows of a fixed-point vertical pass
/// read, each once (see `kernels::resample::FixedTaps`).
#[derive(Default)]
struct PairTaps {
    offs: Vec<usize>,
    wa: Vec<i32>,
    wb: Vec<i32>,
    /// Scratch: the rows' unpacked weights.
    rows_a: Vec<i16>,
    rows_b: Vec<i16>,
}

impl PairTaps {
    /// Sets the taps of output row `y` (its `taps` input rows at `offs_a`)
    /// and, when `offs_b` is given, of row `y + 1`: the second row's taps
    /// usually begin part-way into the first's (an x4 reduction's 18 taps
    /// advance by 4), and the rows they share are listed once, with both
    /// weights.
    fn fill(
        &mut self,
        fixed: &FixedWeights,
        taps: usize,
        y: usize,
        offs_a: &[usize],
        offs_b: Option<&[usize]>,
    ) {
        let ws = |y: usize| &fixed.weights[y * taps..(y + 1) * taps];
        self.offs.clear();
        self.offs.extend_from_slice(offs_a);
        self.rows_a.clear();
        self.rows_a.extend_from_slice(ws(y));
        self.rows_b.clear();
        if let Some(offs_b) = offs_b {
            // Row y + 1's tap j is row y's tap j + d; d = taps when no
            // shift lines them up (nothing shared).
            let d = (0..taps)
                .find(|&d| offs_a[d..] == offs_b[..taps - d])
                .unwrap_or(taps);
            self.offs.extend_from_slice(&offs_b[taps - d..]);
            self.rows_a.resize(taps + d, 0);
            self.rows_b.resize(d, 0);
            self.rows_b.extend_from_slice(ws(y + 1));
        } else {
            self.rows_b.resize(taps, 0);
        }
        // An even number of rows: a last row repeated with weight 0.
        if self.offs.len() % 2 == 1 {
            self.offs.push(self.offs[self.offs.len() - 1]);
            self.rows_a.push(0);
            self.rows_b.push(0);
        }
        let pack = |r: &[i16], packed: &mut Vec<i32>| {
            packed.clear();
            packed.extend(r.chunks_exact(2).map(|p| kernels::pack_weights(p[0], p[1])));
        };
        pack(&self.rows_a, &mut self.wa);
        pack(&self.rows_b, &mut self.wb);
    }

    fn as_taps(&self) -> kernels::FixedTaps<'_> {
        kernels::FixedTaps {
            offs: &self.offs,
            wa: &self.wa,
            wb: &self.wb,
        }
    }
}

/// Rounds half away from zero and saturates to `0..=max` (MATLAB's
/// conversion of a double to an integer class; NaN becomes 0).
///
/// `max` must be below 2^52. Written with plain `f64` arithmetic and selects
/// (no libm `round`, no float-to-int conversion, no data-dependent branch)
/// so that loops over it vectorise: after clamping, `0 <= c < 2^52`, so
/// adding and subtracting 2^52 rounds `c` to an integer exactly, from which
/// the floor and the exact fraction `c - floor` follow.
#[inline]
fn round_saturate(v: f64, max: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    // Selects rather than f64::max/min: same result (NaN -> 0), and they
    // map to single maxpd/minpd instructions.
    let c = if v > 0.0 { v } else { 0.0 };
    let c = if c < max { c } else { max };
    let r = (c + TWO_52) - TWO_52;
    let floor = if r > c { r - 1.0 } else { r };
    floor + if c - floor >= 0.5 { 1.0 } else { 0.0 }
}

/// The two axes' weight tables of one resize, and the order MATLAB runs
/// them in.
struct Axes {
    x: AxisWeights,
    y: AxisWeights,
    /// Whether the height is resized first.
    y_first: bool,
}

impl Axes {
    fn new(in_w: usize, in_h: usize, target: ResizeTarget, opts: &ResizeOptions) -> Result<Axes> {
        if let Kernel::Cubic { a } = opts.kernel {
            if !a.is_finite() {
                return Err(Error::invalid("kernel", format!("cubic a = {a}")));
            }
        }
        let (out_w, out_h) = output_size(in_w, in_h, target)?;
        let (sx, sy) = match target {
            ResizeTarget::Scale(s) => (s, s),
            ResizeTarget::Size { .. } => (out_w as f64 / in_w as f64, out_h as f64 / in_h as f64),
        };
        Ok(Axes {
            x: AxisWeights::new(in_w, out_w, sx, opts.kernel, opts.antialias)?,
            y: AxisWeights::new(in_h, out_h, sy, opts.kernel, opts.antialias)?,
            // MATLAB sorts the scales (stably): height (dim 1) first unless
            // the width's scale is strictly smaller.
            y_first: sy <= sx,
        })
    }

    /// The passes to run, in order, as (vertical, table); identity passes
    /// are skipped.
    fn passes(&self) -> Vec<(bool, &AxisWeights)> {
        let order = if self.y_first {
            [(true, &self.y), (false, &self.x)]
        } else {
            [(false, &self.x), (true, &self.y)]
        };
        order
            .into_iter()
            .filter(|(_, t)| !t.is_identity())
            .collect()
    }
}

/// Resizes `img` to `target` with MATLAB `imresize` semantics (see the
/// [module docs](self)).
///
/// The output keeps the input's channels and [`BitDepth`](crate::BitDepth);
/// `U8`/`U16` outputs are rounded (half away from zero, saturating) to their
/// grid, `F32` outputs are not clamped (cubic and Lanczos kernels overshoot).
///
/// Fails with [`Error::InvalidParameter`] on a non-finite or non-positive
/// scale, an empty target size, or an invalid cubic parameter.
pub fn resize(img: &Image, target: ResizeTarget, opts: &ResizeOptions) -> Result<Image> {
    resize_with(img, target, opts, Isa::detect())
}

/// [`resize`] with the kernels' instruction-set level chosen by the caller
/// (tests compare the levels bit for bit; an unsupported level falls back to
/// the scalar code).
pub(crate) fn resize_with(
    img: &Image,
    target: ResizeTarget,
    opts: &ResizeOptions,
    isa: Isa,
) -> Result<Image> {
    let (in_w, in_h) = (img.width(), img.height());
    let axes = Axes::new(in_w, in_h, target, opts)?;
    let (out_w, out_h) = (axes.x.out_len(), axes.y.out_len());
    let passes = axes.passes();

    let depth = img.depth();
    let unit = depth.max_value();
    // Work in integer units for integer depths (exact for 8/16-bit data).
    let m = unit.unwrap_or(1.0);
    let round_between = opts.matlab_rounding && unit.is_some();
    // `(k * (1 / m)) as f32 == (k / m) as f32` for every integer `k` in
    // `0..=m` of both integer depths (checked by a unit test), so the
    // multiplication gives the canonical `k / m` samples without a division.
    let inv_m = 1.0 / m;
    let finish = |v: f64| -> f32 {
        if unit.is_some() {
            (round_saturate(v, m) * inv_m) as f32
        } else {
            v as f32
        }
    };
    let plan = PlanePlan {
        isa,
        passes: &passes,
        in_w,
        in_h,
        border: opts.border,
    };

    let n_out = out_w * out_h;
    // The output is left uninitialised until the passes write it: zeroing
    // a fresh multi-megabyte buffer first cost a tenth of an upscale.
    let mut data: Vec<f32> = Vec::with_capacity(n_out * img.channels());
    let out = &mut data.spare_capacity_mut()[..n_out * img.channels()];
    // Work samples are stored as `f32` wherever that is exact: a float
    // image's own samples (`v * 1`), and with MATLAB rounding the integers
    // `0..=65535` of the input and of the intermediate image. Only unrounded
    // integer-depth work keeps `f64` planes.
    if unit.is_none() {
        let [mut mid, spare] = SCRATCH_F64.take();
        for (plane, dst) in img.planes().zip(out.chunks_exact_mut(n_out)) {
            plan.run(plane, &mut mid, |v| v, finish, dst);
        }
        SCRATCH_F64.set(keep([mid, spare]));
    } else if let Some(byte_passes) = (round_between && m == 255.0)
        .then(|| bytes_path(isa, opts, &axes))
        .flatten()
    {
        // 8-bit with MATLAB's rounding: the passes run on bytes, a quarter
        // of the memory traffic, with the same result.
        let [mut src, mut mid, mut res] = SCRATCH_U8.take();
        let to_byte = |v: f32| round_saturate(f64::from(v) * m, m) as u8;
        for (plane, dst) in img.planes().zip(out.chunks_exact_mut(n_out)) {
            src.resize(plane.len(), 0);
            src.par_chunks_mut(CHUNK)
                .zip(plane.par_chunks(CHUNK))
                .for_each(|(d, p)| kernels::quantize_u8(isa, p, d, &to_byte));
            write_all(&mut res, n_out, |out| {
                run_bytes_plane(
                    isa,
                    &byte_passes,
                    (in_w, in_h),
                    opts.border,
                    &src,
                    &mut mid,
                    out,
                )
            });
            dst.par_chunks_mut(CHUNK)
                .zip(res.par_chunks(CHUNK))
                .for_each(|(d, r)| kernels::expand_u8(isa, r, d));
        }
        SCRATCH_U8.set(keep([src, mid, res]));
    } else if round_between {
        let [mut src, mut mid] = SCRATCH_F32.take();
        let to_work = |v: f32| round_saturate(f64::from(v) * m, m) as f32;
        for (plane, dst) in img.planes().zip(out.chunks_exact_mut(n_out)) {
            src.resize(plane.len(), 0.0);
            src.par_chunks_mut(CHUNK)
                .zip(plane.par_chunks(CHUNK))
                .for_each(|(d, p)| kernels::quantize(isa, p, d, m as f32, &to_work));
            plan.run(&src, &mut mid, |v| round_saturate(v, m) as f32, finish, dst);
        }
        SCRATCH_F32.set(keep([src, mid]));
    } else {
        let [mut src, mut mid] = SCRATCH_F64.take();
        let to_work = |v: f32| f64::from(v) * m;
        for (plane, dst) in img.planes().zip(out.chunks_exact_mut(n_out)) {
            src.resize(plane.len(), 0.0);
            src.par_chunks_mut(CHUNK)
                .zip(plane.par_chunks(CHUNK))
                .for_each(|(d, p)| map(isa, p, d, &to_work));
            plan.run(&src, &mut mid, |v| v, finish, dst);
        }
        SCRATCH_F64.set(keep([src, mid]));
    }
    // SAFETY: `PlanePlan::run` wrote every sample of every plane's `dst`,
    // and the planes cover `out`, the first `n_out * channels` elements.
    unsafe { data.set_len(n_out * img.channels()) };
    Image::from_planar(out_w, out_h, img.channels(), depth, data)
}

thread_local! {
    /// Work planes kept between [`resize`] calls on this thread: the page
    /// faults of fresh multi-megabyte buffers cost as much as a pass. Taken
    /// out of the cell while in use, so a re-entrant call (rayon may run
    /// another `resize` on this thread while this one waits) just allocates.
    static SCRATCH_F32: Cell<[Vec<f32>; 2]> = const { Cell::new([Vec::new(), Vec::new()]) };
    /// As [`SCRATCH_F32`], for the 8-bit passes' planes.
    static SCRATCH_U8: Cell<[Vec<u8>; 3]> = const { Cell::new([Vec::new(), Vec::new(), Vec::new()]) };
    /// As [`SCRATCH_F32`], for the `f64` work planes.
    static SCRATCH_F64: Cell<[Vec<f64>; 2]> = const { Cell::new([Vec::new(), Vec::new()]) };
}

/// Largest scratch plane kept for the next call, in bytes.
const MAX_KEPT_BYTES: usize = 64 << 20;

/// The scratch planes worth keeping: each one is freed if over
/// [`MAX_KEPT_BYTES`].
fn keep<T, const N: usize>(planes: [Vec<T>; N]) -> [Vec<T>; N] {
    planes.map(|v| {
        if v.capacity() * std::mem::size_of::<T>() > MAX_KEPT_BYTES {
            Vec::new()
        } else {
            v
        }
    })
}

/// Samples per parallel task in element-wise conversions.
const CHUNK: usize = 1 << 14;

/// The passes of one [`resize`] call, run plane by plane.
struct PlanePlan<'a> {
    isa: Isa,
    passes: &'a [(bool, &'a AxisWeights)],
    in_w: usize,
    in_h: usize,
    border: Border,
}

impl PlanePlan<'_> {
    /// Resizes one plane of work samples `src` into `dst`, writing every
    /// element of it: `inter` stores the intermediate image into `mid`
    /// (reused between planes), `finish` stores the output samples.
    fn run<S, M, I, F>(
        &self,
        src: &[S],
        mid: &mut Vec<M>,
        inter: I,
        finish: F,
        dst: &mut [MaybeUninit<f32>],
    ) where
        S: Sample,
        M: Sample,
        I: Fn(f64) -> M + Sync,
        F: Fn(f64) -> f32 + Sync,
    {
        let (isa, border, in_w, in_h) = (self.isa, self.border, self.in_w, self.in_h);
        // Every kernel stores each element of its output slice exactly once.
        let finish = |v: f64| MaybeUninit::new(finish(v));
        match (self.passes.first(), self.passes.get(1)) {
            (None, _) => dst
                .par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| map(isa, s, d, &|v: S| finish(v.to_f64()))),
            (Some(&(vertical, tab)), None) => {
                if vertical {
                    pass_vertical(isa, src, in_w, tab, border, dst, finish);
                } else {
                    pass_horizontal(isa, src, tab, border, dst, finish);
                }
            }
            (Some(&(v1, t1)), Some(&(v2, t2))) => {
                let (mw, mh) = if v1 {
                    (in_w, t1.out_len())
                } else {
                    (t1.out_len(), in_h)
                };
                mid.resize(mw * mh, M::default());
                if v1 {
                    pass_vertical(isa, src, in_w, t1, border, mid, inter);
                } else {
                    pass_horizontal(isa, src, t1, border, mid, inter);
                }
                if v2 {
                    pass_vertical(isa, mid, mw, t2, border, dst, finish);
                } else {
                    pass_horizontal(isa, mid, t2, border, dst, finish);
                }
            }
        }
    }
}

/// An 8-bit image in planar layout: `channels` planes of `height` rows of
/// `width` samples, plane after plane. The input and output of
/// [`resize_u8`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanarU8 {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Planes.
    pub channels: usize,
    /// `width * height * channels` samples.
    pub data: Vec<u8>,
}

/// Largest [`AxisWeights::screen_delta`] for which [`resize_u8`] takes its
/// `f32` path: beyond it (kernels hundreds of taps wide) too many sums
/// would need the exact recomputation for the path to gain anything.
const MAX_SCREEN_DELTA: f64 = 1.0 / 64.0;

/// [`resize`] for 8-bit images held as bytes, the way image buffers usually
/// come: the same MATLAB `imresize` result, sample for sample, at a quarter
/// of the memory traffic of the `f32` [`Image`] path.
///
/// With [`ResizeOptions::matlab_rounding`] (the default) and a CPU with
/// AVX2 + FMA, both passes run on bytes and round to `uint8` in `f32`,
/// falling back to the exact `f64` sum for the rare samples whose `f32` sum
/// lies too close to a rounding tie to decide (see
/// `kernels::resample::vertical_rows_u8` for why that is exact). Otherwise
/// it converts to an [`Image`] and calls [`resize`].
///
/// Fails as [`resize`] does, and on a `data` length that does not match
/// the dimensions.
pub fn resize_u8(img: &PlanarU8, target: ResizeTarget, opts: &ResizeOptions) -> Result<PlanarU8> {
    resize_u8_with(img, target, opts, Isa::detect())
}

/// [`resize_u8`] at a chosen instruction-set level (tests compare levels).
pub(crate) fn resize_u8_with(
    img: &PlanarU8,
    target: ResizeTarget,
    opts: &ResizeOptions,
    isa: Isa,
) -> Result<PlanarU8> {
    let (in_w, in_h, c) = (img.width, img.height, img.channels);
    if in_w == 0 || in_h == 0 || c == 0 {
        return Err(Error::invalid(
            "image",
            format!("empty: {in_w}x{in_h}, {c} channels"),
        ));
    }
    if in_w.checked_mul(in_h).and_then(|n| n.checked_mul(c)) != Some(img.data.len()) {
        return Err(Error::invalid(
            "image",
            format!(
                "{} bytes for a {in_w}x{in_h} image of {c} channels",
                img.data.len()
            ),
        ));
    }
    let axes = Axes::new(in_w, in_h, target, opts)?;
    let Some(passes) = bytes_path(isa, opts, &axes) else {
        let data = img.data.iter().map(|&v| f32::from(v) / 255.0).collect();
        let out = resize_with(
            &Image::from_planar(in_w, in_h, c, crate::BitDepth::U8, data)?,
            target,
            opts,
            isa,
        )?;
        return Ok(PlanarU8 {
            width: out.width(),
            height: out.height(),
            channels: c,
            // Exact: the samples are canonical `k / 255`.
            data: out
                .data()
                .iter()
                .map(|&v| (v * 255.0).round() as u8)
                .collect(),
        });
    };
    let (out_w, out_h) = (axes.x.out_len(), axes.y.out_len());
    let n_out = out_w * out_h;
    let mut data = Vec::new();
    let [spare, mut mid, res] = SCRATCH_U8.take();
    write_all(&mut data, n_out * c, |out| {
        for (plane, dst) in img
            .data
            .chunks_exact(in_w * in_h)
            .zip(out.chunks_exact_mut(n_out))
        {
            run_bytes_plane(
                isa,
                &passes,
                (in_w, in_h),
                opts.border,
                plane,
                &mut mid,
                dst,
            );
        }
    });
    SCRATCH_U8.set(keep([spare, mid, res]));
    Ok(PlanarU8 {
        width: out_w,
        height: out_h,
        channels: c,
        data,
    })
}

/// The passes of `axes` for the 8-bit kernels ([`pass_u8`]), if they can
/// run them: they need AVX2 + FMA, MATLAB's rounding between passes, and
/// weight tables whose `f32` error bound stays within
/// [`MAX_SCREEN_DELTA`].
fn bytes_path<'a>(isa: Isa, opts: &ResizeOptions, axes: &'a Axes) -> Option<Vec<BytePass<'a>>> {
    if !(isa.use_avx2_fma() && opts.matlab_rounding) {
        return None;
    }
    let passes: Vec<BytePass<'_>> = axes
        .passes()
        .into_iter()
        .map(|(vertical, tab)| BytePass::new(vertical, tab, opts.border))
        .collect();
    passes
        .iter()
        .all(|p| p.delta <= MAX_SCREEN_DELTA)
        .then_some(passes)
}

/// Resizes one 8-bit plane of size `in_size` into `dst`, writing every
/// element of it, with the 8-bit passes (`mid` holds the intermediate
/// plane; see [`bytes_path`]).
fn run_bytes_plane(
    isa: Isa,
    passes: &[BytePass<'_>],
    (in_w, in_h): (usize, usize),
    border: Border,
    plane: &[u8],
    mid: &mut Vec<u8>,
    dst: &mut [MaybeUninit<u8>],
) {
    match passes {
        [] => {
            for (d, &s) in dst.iter_mut().zip(plane) {
                d.write(s);
            }
        }
        [p1] => pass_u8(isa, p1, plane, in_w, border, dst),
        [p1, p2] => {
            let t1 = p1.tab;
            let mw = if p1.vertical { in_w } else { t1.out_len() };
            let mh = if p1.vertical { t1.out_len() } else { in_h };
            write_all(mid, mw * mh, |out| {
                pass_u8(isa, p1, plane, in_w, border, out)
            });
            pass_u8(isa, p2, mid, mw, border, dst);
        }
        _ => unreachable!("at most two passes"),
    }
}

/// Makes `v` the `len` elements that `fill` writes, all of them, into its
/// uninitialised spare capacity (zeroing a multi-megabyte plane first cost
/// a tenth of an 8-bit upscale).
fn write_all<T>(v: &mut Vec<T>, len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) {
    v.clear();
    v.reserve(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote every one of the first `len` elements (the
    // contract of every pass called through here).
    unsafe { v.set_len(len) };
}

/// Convenience: MATLAB's `imresize(img, scale, 'bicubic')` with default
/// options.
pub fn imresize_bicubic(img: &Image, scale: f64) -> Result<Image> {
    resize(img, ResizeTarget::Scale(scale), &ResizeOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BitDepth;
    use proptest::prelude::*;

    fn gray_u8(w: usize, h: usize, vals: &[u8]) -> Image {
        let data = vals.iter().map(|&v| f32::from(v) / 255.0).collect();
        Image::from_planar(w, h, 1, BitDepth::U8, data).unwrap()
    }

    fn to_u8(img: &Image) -> Vec<u8> {
        img.data()
            .iter()
            .map(|&v| (v * 255.0).round() as u8)
            .collect()
    }

    const ALL_KERNELS: [Kernel; 6] = [
        Kernel::Nearest,
        Kernel::Linear,
        Kernel::Cubic { a: -0.5 },
        Kernel::Lanczos2,
        Kernel::Lanczos3,
        Kernel::Box,
    ];

    #[test]
    fn fast_rounding_is_round_half_away_saturating() {
        let below_half = 0.5 - f64::EPSILON / 4.0;
        for v in [
            0.0,
            below_half,
            0.5,
            1.5,
            2.5,
            2.4999999999999996,
            127.5,
            254.5,
            255.49,
            255.5,
            1e9,
            -0.4,
            -3.0,
            65534.5,
        ] {
            for m in [255.0, 65535.0] {
                assert_eq!(round_saturate(v, m), v.round().clamp(0.0, m), "{v} {m}");
            }
        }
        assert_eq!(round_saturate(f64::NAN, 255.0), 0.0);
        assert_eq!(round_saturate(f64::INFINITY, 255.0), 255.0);
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * 300.0 - 20.0;
            assert_eq!(round_saturate(v, 255.0), v.round().clamp(0.0, 255.0), "{v}");
        }
    }

    /// The 8-lane f32 conversion to integer units equals the exact f64 one
    /// on canonical samples, on samples next to every half-integer product
    /// (where rounding the f32 product could tie), and on arbitrary bits.
    #[test]
    fn quantize_matches_exact_rounding() {
        for m in [255.0f64, 65535.0] {
            let exact = |v: f32| round_saturate(f64::from(v) * m, m) as f32;
            let mut src = Vec::new();
            for k in 0..=m as u32 {
                let k = f64::from(k);
                src.push((k / m) as f32);
                let near_half = ((k + 0.5) / m) as f32;
                for d in -3i32..=3 {
                    src.push(f32::from_bits(near_half.to_bits().wrapping_add_signed(d)));
                }
            }
            let mut x = 0x9e37_79b9u32;
            for _ in 0..200_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                src.push(f32::from_bits(x));
            }
            src.extend([f32::NAN, f32::INFINITY, -f32::INFINITY, -0.0, 1e30, -1e-30]);
            src.push(0.25); // a length that is not a multiple of 8
            let want: Vec<f32> = src.iter().map(|&v| exact(v)).collect();
            for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx2Fma] {
                let mut got = vec![-1.0f32; src.len()];
                kernels::quantize(isa, &src, &mut got, m as f32, &exact);
                for ((g, w), v) in got.iter().zip(&want).zip(&src) {
                    assert_eq!(g.to_bits(), w.to_bits(), "{isa:?} m {m} v {v:e}");
                }
            }
        }
    }

    #[test]
    fn reciprocal_gives_canonical_samples() {
        for depth in [BitDepth::U8, BitDepth::U16] {
            let m = depth.max_value().unwrap();
            let inv = 1.0 / m;
            for k in 0..=m as u32 {
                let k = f64::from(k);
                assert_eq!((k * inv) as f32, (k / m) as f32, "{k} / {m}");
                assert_eq!((k * inv) as f32, depth.quantize(k / m) as f32);
            }
        }
    }

    #[test]
    fn parse_kernels_and_borders() {
        assert_eq!("bicubic".parse::<Kernel>().unwrap(), Kernel::bicubic());
        assert_eq!("Cubic".parse::<Kernel>().unwrap(), Kernel::bicubic());
        assert_eq!("bilinear".parse::<Kernel>().unwrap(), Kernel::Linear);
        assert_eq!("area".parse::<Kernel>().unwrap(), Kernel::Box);
        assert_eq!("lanczos3".parse::<Kernel>().unwrap(), Kernel::Lanczos3);
        assert!("sinc".parse::<Kernel>().is_err());
        assert_eq!("symmetric".parse::<Border>().unwrap(), Border::Symmetric);
        assert!("wrap".parse::<Border>().is_err());
    }

    #[test]
    fn output_size_follows_matlab_and_validates() {
        assert_eq!(
            output_size(255, 255, ResizeTarget::Scale(1.0 / 3.0)).unwrap(),
            (85, 85)
        );
        assert_eq!(output_size(5, 3, ResizeTarget::Scale(0.5)).unwrap(), (3, 2));
        assert_eq!(
            output_size(10, 10, ResizeTarget::Scale(1e-9)).unwrap(),
            (1, 1)
        );
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(output_size(10, 10, ResizeTarget::Scale(s)).is_err(), "{s}");
        }
        assert!(output_size(10, 10, ResizeTarget::Scale(1e300)).is_err());
        // Valid size, but a 4e9-tap antialiasing kernel: an error, not OOM.
        let tiny = gray_u8(10, 10, &[5; 100]);
        assert!(imresize_bicubic(&tiny, 1e-9).is_err());
        assert_eq!(imresize_bicubic(&tiny, 1e-3).unwrap().width(), 1);
        let zero = ResizeTarget::Size {
            width: 0,
            height: 4,
        };
        assert!(output_size(10, 10, zero).is_err());
        let img = gray_u8(2, 2, &[0, 1, 2, 3]);
        assert!(resize(&img, ResizeTarget::Scale(0.0), &ResizeOptions::default()).is_err());
        assert!(resize(&img, zero, &ResizeOptions::default()).is_err());
        let bad = ResizeOptions {
            kernel: Kernel::Cubic { a: f64::NAN },
            ..Default::default()
        };
        assert!(resize(&img, ResizeTarget::Scale(2.0), &bad).is_err());
    }

    #[test]
    fn identity_is_exact() {
        let vals: Vec<u8> = (0..35).map(|v| (v * 7 % 256) as u8).collect();
        let img = gray_u8(7, 5, &vals);
        for k in ALL_KERNELS {
            let opts = ResizeOptions {
                kernel: k,
                ..Default::default()
            };
            let out = resize(&img, ResizeTarget::Scale(1.0), &opts).unwrap();
            assert_eq!(out, img, "{k:?}");
        }
        let f = Image::from_planar(3, 2, 1, BitDepth::F32, vec![0.1, -0.5, 2.0, 0.3, 0.7, 1.0])
            .unwrap();
        let out = resize(&f, ResizeTarget::Scale(1.0), &ResizeOptions::default()).unwrap();
        assert_eq!(out, f);
    }

    #[test]
    fn constant_stays_constant() {
        let img = Image::from_planar(9, 7, 2, BitDepth::F32, vec![0.3; 9 * 7 * 2]).unwrap();
        for k in ALL_KERNELS {
            for border in [Border::Replicate, Border::Symmetric] {
                for s in [0.3, 0.5, 1.7, 3.0] {
                    let opts = ResizeOptions {
                        kernel: k,
                        border,
                        ..Default::default()
                    };
                    let out = resize(&img, ResizeTarget::Scale(s), &opts).unwrap();
                    for &v in out.data() {
                        assert!((v - 0.3).abs() < 1e-6, "{k:?} {s} {v}");
                    }
                }
            }
        }
        let u8img = gray_u8(5, 4, &[77; 20]);
        let out = imresize_bicubic(&u8img, 1.0 / 3.0).unwrap();
        assert!(to_u8(&out).iter().all(|&v| v == 77));
    }

    /// `imresize(uint8([0 255]), [1 4])` and friends, derived by hand from
    /// MATLAB's `contributions()`: with scale 2 the output samples sit at
    /// u = 0.75, 1.25, 1.75, 2.25 (1-based), i.e. a quarter sample from the
    /// input samples, and the edge taps replicate.
    #[test]
    fn tiny_upscale_matches_hand_derived_matlab() {
        let img = gray_u8(2, 1, &[0, 255]);
        let size = ResizeTarget::Size {
            width: 4,
            height: 1,
        };
        // Bilinear: weights (3/4, 1/4) -> 0, 63.75, 191.25, 255.
        let lin = ResizeOptions {
            kernel: Kernel::Linear,
            ..Default::default()
        };
        assert_eq!(to_u8(&resize(&img, size, &lin).unwrap()), [0, 64, 191, 255]);
        // Bicubic at distance 1/4: weights for taps at -1.25, -0.25, 0.75,
        // 1.75 are -0.0703125, 0.8671875, 0.2265625, -0.0234375. Output 2
        // (u = 1.25) taps [0 0 255 255] -> 255 * (0.2265625 - 0.0234375)
        // = 51.796875 -> 52; output 1 (u = 0.75) has 255 only under the
        // -0.0703125 tap -> -17.9 saturates to 0.
        let cub = ResizeOptions::default();
        assert_eq!(to_u8(&resize(&img, size, &cub).unwrap()), [0, 52, 203, 255]);
        // Nearest: 0 0 255 255.
        let nn = ResizeOptions {
            kernel: Kernel::Nearest,
            ..Default::default()
        };
        assert_eq!(to_u8(&resize(&img, size, &nn).unwrap()), [0, 0, 255, 255]);
        // Float image keeps the cubic overshoot unclamped.
        let f = Image::from_planar(2, 1, 1, BitDepth::F32, vec![0.0, 1.0]).unwrap();
        let out = resize(&f, size, &cub).unwrap();
        assert!((out.data()[0] - (-0.0703125)).abs() < 1e-7);
        assert!((out.data()[1] - 0.203125).abs() < 1e-7);
    }

    #[test]
    fn antialiased_box_downscale_is_area_average() {
        let img = gray_u8(4, 2, &[10, 20, 30, 41, 50, 60, 70, 80]);
        let opts = ResizeOptions {
            kernel: Kernel::Box,
            ..Default::default()
        };
        let out = resize(&img, ResizeTarget::Scale(0.5), &opts).unwrap();
        // Height first (equal scales): (10+50)/2=30, (20+60)/2=40, 50, 60.5->61;
        // then width: (30+40)/2=35, (50+61)/2=55.5->56.
        assert_eq!(to_u8(&out), [35, 56]);
        let no_round = ResizeOptions {
            matlab_rounding: false,
            ..opts
        };
        let out = resize(&img, ResizeTarget::Scale(0.5), &no_round).unwrap();
        // Without intermediate rounding: (30+40)/2 = 35, (50+60.5)/2=55.25.
        assert_eq!(to_u8(&out), [35, 55]);
    }

    #[test]
    fn symmetric_and_replicate_differ_only_near_border() {
        let (w, h) = (40, 30);
        let vals: Vec<u8> = (0..w * h)
            .map(|i| ((i * 37 + (i / w) * 11) % 251) as u8)
            .collect();
        let img = gray_u8(w, h, &vals);
        for s in [0.25, 0.5, 2.0, 3.0] {
            let rep = imresize_bicubic(&img, s).unwrap();
            let sym = resize(
                &img,
                ResizeTarget::Scale(s),
                &ResizeOptions {
                    border: Border::Symmetric,
                    ..Default::default()
                },
            )
            .unwrap();
            let (ow, oh) = (rep.width(), rep.height());
            // Taps reach 2 / s (downscale) or 2 (upscale) input samples.
            let reach_in = if s < 1.0 { 2.0 / s + 1.0 } else { 3.0 };
            let margin = (reach_in * s).ceil() as usize + 1;
            let mut differs = 0;
            for y in 0..oh {
                for x in 0..ow {
                    let d = rep.get(x, y, 0) != sym.get(x, y, 0);
                    let inner = x >= margin && y >= margin && x + margin < ow && y + margin < oh;
                    if inner {
                        assert!(!d, "s={s} differs at ({x},{y})");
                    }
                    differs += usize::from(d);
                }
            }
            assert!(differs > 0, "s={s}: border rules should differ somewhere");
        }
    }

    #[test]
    fn order_is_smaller_scale_first() {
        // With rounding between passes the order is observable: the result
        // must equal the two one-axis resizes done in MATLAB's order.
        let (w, h) = (12, 10);
        let vals: Vec<u8> = (0..w * h).map(|i| ((i * 97 + 13) % 256) as u8).collect();
        let img = gray_u8(w, h, &vals);
        let opts = ResizeOptions::default();
        let size = |width, height| ResizeTarget::Size { width, height };
        // sx = 5/12 > sy = 3/10: height first.
        let out = resize(&img, size(5, 3), &opts).unwrap();
        let a = resize(
            &resize(&img, size(12, 3), &opts).unwrap(),
            size(5, 3),
            &opts,
        )
        .unwrap();
        assert_eq!(out, a);
        // sx = 3/12 < sy = 5/10: width first.
        let out = resize(&img, size(3, 5), &opts).unwrap();
        let b = resize(
            &resize(&img, size(3, 10), &opts).unwrap(),
            size(3, 5),
            &opts,
        )
        .unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn keeps_depth_and_channels() {
        let img = Image::from_planar(3, 3, 4, BitDepth::U16, vec![0.5; 36]).unwrap();
        let out = imresize_bicubic(&img, 2.0).unwrap();
        assert_eq!(out.depth(), BitDepth::U16);
        assert_eq!(out.channels(), 4);
        let q = (0.5f64 * 65535.0).round() / 65535.0;
        assert!(out.data().iter().all(|&v| v == q as f32));
    }

    /// Every kernel, both borders, with and without MATLAB's rounding
    /// between passes (antialiasing on).
    fn every_option() -> Vec<ResizeOptions> {
        let mut all = Vec::new();
        for kernel in ALL_KERNELS {
            for border in [Border::Replicate, Border::Symmetric] {
                for matlab_rounding in [true, false] {
                    all.push(ResizeOptions {
                        kernel,
                        border,
                        matlab_rounding,
                        antialias: true,
                    });
                }
            }
        }
        all
    }

    /// The AVX2 kernels (with FMA: the 8-bit passes) and the scalar fallback
    /// give the same bits, on odd sizes (partial register blocks and
    /// strips), every kernel, both borders, up- and downscales, all depths,
    /// with and without rounding.
    #[test]
    fn isa_instances_are_bit_identical() {
        if !Isa::Avx2.is_supported() {
            eprintln!("AVX2 not available: only the scalar instance exists here");
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let sizes = [(1, 1), (3, 7), (37, 29), (67, 41)];
        let targets = [
            ResizeTarget::Scale(0.3),
            ResizeTarget::Scale(1.0 / 3.0),
            ResizeTarget::Scale(2.0),
            ResizeTarget::Scale(3.7),
            ResizeTarget::Size {
                width: 71,
                height: 13,
            },
            ResizeTarget::Size {
                width: 5,
                height: 50,
            },
        ];
        let mut checked = 0;
        for (w, h) in sizes {
            for depth in [BitDepth::U8, BitDepth::U16, BitDepth::F32] {
                let data: Vec<f32> = (0..w * h * 2)
                    .map(|_| {
                        let r = next();
                        match depth.max_value() {
                            Some(m) => ((r % (m as u64 + 1)) as f64 / m) as f32,
                            None => (r % 100_000) as f32 / 70_000.0 - 0.2,
                        }
                    })
                    .collect();
                let img = Image::from_planar(w, h, 2, depth, data).unwrap();
                for opts in every_option() {
                    let (k, border, matlab_rounding) =
                        (opts.kernel, opts.border, opts.matlab_rounding);
                    for target in targets {
                        let a = resize_with(&img, target, &opts, Isa::Scalar).unwrap();
                        let b = resize_with(&img, target, &opts, Isa::Avx2).unwrap();
                        // With FMA, 8-bit MATLAB-rounded resizes run on bytes.
                        let c = resize_with(&img, target, &opts, Isa::Avx2Fma).unwrap();
                        let bits = |i: &Image| -> Vec<u32> {
                            i.data().iter().map(|v| v.to_bits()).collect()
                        };
                        for other in [&b, &c] {
                            assert_eq!(
                                bits(&a),
                                bits(other),
                                "{w}x{h} {depth:?} {k:?} {border:?} {matlab_rounding} {target:?}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 4 * 3 * 6 * 2 * 2 * 6);
    }

    /// The 8-bit passes round without screening exactly where the `f32`
    /// sums are exact: dyadic weights (cubic x2 and x4 enlargements and
    /// antialiased reductions, whose taps sit at odd multiples of 1/8;
    /// linear x2) but not thirds nor Lanczos; the bytes themselves are
    /// checked against the `f64` path by `resize_u8_equals_resize`.
    #[test]
    fn f32_sums_are_exact_for_dyadic_weights_only() {
        let cubic = Kernel::Cubic { a: -0.5 };
        let exact = |n_in: usize, n_out: usize, kernel: Kernel| {
            antialiased_table(n_in, n_out, kernel).screen_delta(255.0) == 0.0
        };
        assert!(exact(64, 128, cubic));
        assert!(exact(64, 256, cubic));
        assert!(exact(64, 128, Kernel::Linear));
        assert!(exact(256, 64, cubic));
        assert!(exact(256, 128, cubic));
        assert!(!exact(64, 192, cubic));
        assert!(!exact(192, 64, cubic));
        assert!(!exact(64, 128, Kernel::Lanczos3));
        // Dyadic but too fine for 8-bit sums in 24 bits: screened.
        assert!(too_fine_cubic_x2().screen_delta(255.0) > 0.0);
    }

    /// The exact integer vertical pass takes the tables whose weights are
    /// multiples of a power of two small enough for `i16` (its bytes are
    /// checked by `resize_u8_equals_resize` on these factors), and no others.
    #[test]
    fn fixed_point_tables_are_the_dyadic_ones() {
        let cubic = Kernel::Cubic { a: -0.5 };
        let fixed = |n_in: usize, n_out: usize, kernel: Kernel| {
            let tab = antialiased_table(n_in, n_out, kernel);
            tab.fixed_point().map(|f| {
                // The integers are the weights, exactly.
                let unit = f64::powi(2.0, f.shift as i32);
                assert!(tab
                    .weights
                    .iter()
                    .zip(&f.weights)
                    .all(|(&w, &q)| w * unit == f64::from(q)));
                f.shift
            })
        };
        for (n_in, n_out, kernel) in [
            (64, 128, cubic),
            (64, 256, cubic),
            (256, 64, cubic),
            (256, 128, cubic),
            (64, 128, Kernel::Linear),
        ] {
            assert!(
                fixed(n_in, n_out, kernel).is_some_and(|s| s <= 15),
                "{n_in} {n_out} {kernel:?}"
            );
        }
        assert_eq!(fixed(64, 192, cubic), None);
        assert_eq!(fixed(192, 64, cubic), None);
        assert_eq!(fixed(64, 128, Kernel::Lanczos3), None);
        // Dyadic, but 2^-20 is too fine for i16.
        assert!(too_fine_cubic_x2().fixed_point().is_none());
    }

    /// The exact integer horizontal pass takes the x2 and x4 reductions in
    /// fixed point, whose outputs' taps all start at positions of one parity,
    /// for both borders; enlargements and x3 go to the `f32` strip (the bytes
    /// of both are checked by `resize_u8_equals_resize`).
    #[test]
    fn paired_horizontal_pass_takes_even_factor_reductions() {
        let cubic = Kernel::Cubic { a: -0.5 };
        for border in [Border::Replicate, Border::Symmetric] {
            let paired = |n_in: usize, scale: f64| integer_horizontal(n_in, scale, cubic, border).0;
            for (n_in, scale) in [(256, 0.25), (256, 0.5), (61, 0.5), (1501, 0.25), (5, 0.25)] {
                assert!(paired(n_in, scale), "{n_in} x{scale} {border:?}");
            }
            for (n_in, scale) in [(64, 2.0), (64, 4.0), (192, 1.0 / 3.0), (64, 3.0)] {
                assert!(!paired(n_in, scale), "{n_in} x{scale} {border:?}");
            }
            // A vertical pass keeps its own fixed-point sweep.
            let tab = antialiased_table(256, 64, cubic);
            let vertical = BytePass::new(true, &tab, border);
            assert!(vertical.paired.is_none() && vertical.fixed.is_some());
        }
    }

    /// The exact integer polyphase pass takes the horizontal x2 and x4
    /// enlargements in fixed point (bicubic, linear) that are long enough,
    /// for both borders; x3, Lanczos3 and reductions do not (the bytes of
    /// every path are checked by `resize_u8_equals_resize`).
    #[test]
    fn fixed_phases_take_dyadic_enlargements() {
        let cubic = Kernel::Cubic { a: -0.5 };
        for border in [Border::Replicate, Border::Symmetric] {
            let phased = |n_in: usize, scale: f64, kernel: Kernel| {
                integer_horizontal(n_in, scale, kernel, border).1
            };
            for (n_in, scale, kernel) in [
                (61, 2.0, cubic),
                (61, 4.0, cubic),
                (512, 4.0, cubic),
                (61, 2.0, Kernel::Linear),
            ] {
                assert!(phased(n_in, scale, kernel), "{n_in} x{scale} {kernel:?}");
            }
            for (n_in, scale, kernel) in [
                (5, 4.0, cubic),
                (61, 3.0, cubic),
                (61, 2.0, Kernel::Lanczos3),
                (256, 0.25, cubic),
            ] {
                assert!(!phased(n_in, scale, kernel), "{n_in} x{scale} {kernel:?}");
            }
        }
    }

    /// Whether the horizontal 8-bit pass of an `n_in`-wide row scaled by
    /// `scale` (output width `ceil(n_in * scale)`, as `ResizeTarget::Scale`
    /// makes it) runs the integer reduction and the integer polyphase kernel.
    fn integer_horizontal(n_in: usize, scale: f64, kernel: Kernel, border: Border) -> (bool, bool) {
        let n_out = (n_in as f64 * scale).ceil() as usize;
        let tab = AxisWeights::new(n_in, n_out, scale, kernel, true).unwrap();
        let pass = BytePass::new(false, &tab, border);
        (pass.paired.is_some(), pass.phased.is_some())
    }

    /// The weight table of an `n_in -> n_out` resize, antialiased.
    fn antialiased_table(n_in: usize, n_out: usize, kernel: Kernel) -> AxisWeights {
        let scale = n_out as f64 / n_in as f64;
        AxisWeights::new(n_in, n_out, scale, kernel, true).unwrap()
    }

    /// A cubic x2 table with one weight moved by 2^-20: still dyadic, but
    /// too fine for either exact path.
    fn too_fine_cubic_x2() -> AxisWeights {
        let mut tab = antialiased_table(64, 128, Kernel::Cubic { a: -0.5 });
        tab.weights[0] += f64::powi(2.0, -20);
        tab
    }

    /// Whole-factor enlargements with 2, 4 or 6 taps per output take the
    /// 8-bit polyphase path over all but a few outputs at each border (its
    /// sums are checked by `resize_u8_equals_resize`); downscales and other
    /// factors do not.
    #[test]
    fn polyphase_run_covers_whole_factor_upscales() {
        let run = |n_in: usize, n_out: usize, kernel: Kernel| {
            let opts = ResizeOptions {
                kernel,
                ..Default::default()
            };
            let scale = n_out as f64 / n_in as f64;
            let tab = AxisWeights::new(n_in, n_out, scale, kernel, opts.antialias).unwrap();
            let layout = StripLayout::new(&tab, Border::Replicate);
            let plan = layout.plan(&tab);
            kernels::Polyphase::find(&plan, &tab.weights_f32()).map(|p| (p.period(), p.outputs()))
        };
        let cubic = Kernel::Cubic { a: -0.5 };
        for (factor, kernel) in [
            (2, cubic),
            (3, cubic),
            (4, cubic),
            (2, Kernel::Linear),
            (3, Kernel::Lanczos3),
        ] {
            let n_in = 512;
            let (period, outputs) = run(n_in, factor * n_in, kernel).unwrap();
            assert_eq!(period, factor, "{factor} {kernel:?}");
            // At most a block of 8 periods plus the border's taps uncovered.
            let uncovered = factor * n_in - outputs.len();
            assert!(
                uncovered <= factor * (8 + 6),
                "{factor} {kernel:?}: {uncovered}"
            );
        }
        assert_eq!(run(512, 128, cubic), None);
        assert_eq!(run(512, 768, cubic), None);
        assert_eq!(run(512, 4096, cubic), None);
    }

    /// `resize_u8` gives `resize`'s samples, on both of its paths (the
    /// screened 8-bit one with AVX2 + FMA, the `Image` one without), for
    /// every kernel (box and linear make exact rounding ties common), both
    /// borders, with and without rounding, up and down, odd sizes.
    #[test]
    fn resize_u8_equals_resize() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let targets = [
            ResizeTarget::Scale(0.25),
            ResizeTarget::Scale(1.0 / 3.0),
            ResizeTarget::Scale(0.5),
            ResizeTarget::Scale(2.0),
            ResizeTarget::Scale(3.0),
            ResizeTarget::Scale(4.0),
            ResizeTarget::Size {
                width: 83,
                height: 17,
            },
            // Width first (its scale is the smaller).
            ResizeTarget::Size {
                width: 20,
                height: 90,
            },
        ];
        // The last size: rows of many vector blocks with a ragged tail,
        // downscaled only (its scalar reference is slow).
        for (w, h) in [(1, 1), (5, 3), (61, 43), (1501, 24)] {
            let targets = if w > 1000 {
                &targets[..2]
            } else {
                &targets[..]
            };
            // Smooth areas make near-ties likelier than noise does.
            let data: Vec<u8> = (0..w * h * 2)
                .map(|i| {
                    let smooth = (i % w * 7 + i / w * 3) % 256;
                    if next() % 4 == 0 {
                        (next() % 256) as u8
                    } else {
                        smooth as u8
                    }
                })
                .collect();
            let bytes = PlanarU8 {
                width: w,
                height: h,
                channels: 2,
                data: data.clone(),
            };
            let f: Vec<f32> = data.iter().map(|&v| f32::from(v) / 255.0).collect();
            let img = Image::from_planar(w, h, 2, BitDepth::U8, f).unwrap();
            for opts in every_option() {
                let (k, border, matlab_rounding) = (opts.kernel, opts.border, opts.matlab_rounding);
                for &target in targets {
                    let want = resize_with(&img, target, &opts, Isa::Scalar).unwrap();
                    let want: Vec<u8> = want
                        .data()
                        .iter()
                        .map(|&v| (v * 255.0).round() as u8)
                        .collect();
                    for isa in [Isa::Scalar, Isa::Avx2Fma] {
                        let got = resize_u8_with(&bytes, target, &opts, isa).unwrap();
                        assert_eq!(
                            got.data, want,
                            "{w}x{h} {k:?} {border:?} {matlab_rounding} {target:?} {isa:?}"
                        );
                    }
                }
            }
        }
        let bad = PlanarU8 {
            width: 4,
            height: 4,
            channels: 1,
            data: vec![0; 15],
        };
        assert!(resize_u8(&bad, ResizeTarget::Scale(2.0), &ResizeOptions::default()).is_err());
        let empty = PlanarU8 {
            width: 0,
            height: 4,
            channels: 1,
            data: vec![],
        };
        assert!(resize_u8(&empty, ResizeTarget::Scale(2.0), &ResizeOptions::default()).is_err());
    }

    proptest! {
        #[test]
        fn size_and_range(
            w in 1usize..24,
            h in 1usize..24,
            c in 1usize..=4,
            s in 0.05f64..5.0,
            seed in any::<u64>(),
            k in 0usize..6,
        ) {
            let n = w * h * c;
            let mut x = seed | 1;
            let vals: Vec<f32> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 256) as f32) / 255.0
                })
                .collect();
            let img = Image::from_planar(w, h, c, BitDepth::U8, vals).unwrap();
            let opts = ResizeOptions { kernel: ALL_KERNELS[k], ..Default::default() };
            let out = resize(&img, ResizeTarget::Scale(s), &opts).unwrap();
            let (ew, eh) = output_size(w, h, ResizeTarget::Scale(s)).unwrap();
            prop_assert_eq!((out.width(), out.height(), out.channels()), (ew, eh, c));
            prop_assert_eq!(ew, (w as f64 * s).ceil() as usize);
            for &v in out.data() {
                prop_assert!((0.0..=1.0).contains(&v));
                let q = v * 255.0;
                prop_assert!((q - q.round()).abs() < 1e-3);
            }
            // Interpolating kernels without overshoot stay within the input range.
            if matches!(ALL_KERNELS[k], Kernel::Nearest | Kernel::Linear | Kernel::Box) {
                let lo = img.data().iter().copied().fold(f32::INFINITY, f32::min);
                let hi = img.data().iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for &v in out.data() {
                    prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6);
                }
            }
        }
    }
}
