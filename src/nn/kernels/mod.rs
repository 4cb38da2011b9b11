//! CPU compute kernels for the NN core: the only module of `nn` with `unsafe`.
//!
//! The convolution kernels lower a 2-D convolution to matrix products
//! (im2col + GEMM, the formulation of Chellapilla et al., 2006, used by Caffe
//! and PyTorch's CPU path). The GEMM is the `gemm` crate's, called
//! single-threaded; parallelism comes from rayon over *(batch item, band of
//! output rows)* tasks, each with its own thread-local im2col scratch buffer
//! sized to stay in L2 cache, so that the packed panels, the im2col band and
//! the output band all stay hot.
//!
//! 3x3 and 5x5 stride-1 layers (forward and input gradient) large enough
//! for it use Winograd F(2x2, 3x3) / F(2x2, 5x5) instead ([`winograd`]),
//! with its own micro-kernel; the 3x3 ones also for the weight gradient.
//!
//! Layouts are NCHW, contiguous, `f32`. Weights are `[C_out, C_in / groups,
//! k_h, k_w]` as in PyTorch. The safe functions here check slice lengths
//! against the [`ConvGeom`] with `assert!` (they are crate-internal: the
//! public API validates shapes and returns errors before calling them).

use rayon::prelude::*;
use std::cell::RefCell;

mod direct;
mod winograd;

/// Target number of output pixels per im2col band (rounded to whole output
/// rows). A 3x3 conv with 64 input channels has K = 576: a 256-pixel band is
/// 576 KB, about one Zen 3 L2 (512 KB). Tuned with `NN_BREAKDOWN=1 cargo
/// bench --bench nn` (single-thread CPU time): 128..512 are within noise on
/// the 256x256 conv and SRCNN's layers, whole images are 1.6x slower on the
/// 256x256 conv, and bands under ~64 pixels lose 30-50%.
pub(crate) const BAND_PIXELS: usize = 256;

/// Fully resolved geometry of one 2-D convolution (all sizes in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical zero padding (each side).
    pub ph: usize,
    /// Horizontal zero padding (each side).
    pub pw: usize,
    /// Channel groups.
    pub groups: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvGeom {
    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }
    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups
    }
    /// Rows of the im2col matrix of one group (`C_in/g * k_h * k_w`).
    pub fn k(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    /// Whether the convolution is a plain 1x1 (no im2col needed).
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    fn x_len(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }
    fn y_len(&self) -> usize {
        self.n * self.cout * self.oh * self.ow
    }
    fn w_len(&self) -> usize {
        self.cout * self.k()
    }
    /// Output-row bands `(n, oy0, oy1)`, at least `min_rows` rows each.
    fn tasks(&self, min_rows: usize) -> Vec<(usize, usize, usize)> {
        let rows = (BAND_PIXELS / self.ow.max(1)).max(min_rows).max(1);
        let mut t = Vec::new();
        for n in 0..self.n {
            let mut y0 = 0;
            while y0 < self.oh {
                let y1 = (y0 + rows).min(self.oh);
                t.push((n, y0, y1));
                y0 = y1;
            }
        }
        t
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer grown to at least `len`.
/// Contents are unspecified. Not re-entrant (kernels never nest it).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// A raw pointer that rayon tasks may share. Every use documents why the
/// regions the tasks write are disjoint.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only dereferenced through `gemm_raw` / the band
// writers below, whose callers guarantee that concurrent tasks touch disjoint
// elements; the pointee outlives the rayon scope (it is a `&mut` borrowed by
// the enclosing function).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// A strided read-only matrix view: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst = (accumulate ? dst : 0) + lhs * rhs` for an `m x k` `lhs` and a
/// `k x n` `rhs`, single-threaded.
///
/// # Safety
/// Every element `(i, j)` of the three views with `i`, `j` inside their
/// dimensions must lie inside one live allocation, `dst` must be valid for
/// writes there, and no other thread may access those `dst` elements during
/// the call; `lhs`/`rhs` must not alias `dst`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.offset(i as isize * dst_rs + j as isize * dst_cs) = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: forwarded from this function's contract. gemm computes
    // dst := alpha*dst + beta*lhs*rhs and reads dst only when read_dst.
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        1.0f32,
        1.0f32,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Writes the im2col matrix of output rows `oy0..oy1` of one image and one
/// group into `col` (`K x (oy1-oy0)*ow`, row `(c*kh + ky)*kw + kx`).
/// `x_img` holds the group's `C_in/g` input planes.
fn im2col(x_img: &[f32], g: &ConvGeom, oy0: usize, oy1: usize, col: &mut [f32]) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let bp = (oy1 - oy0) * ow;
    let mut r = 0;
    for c in 0..g.cin_g() {
        let xc = &x_img[c * h * w..(c + 1) * h * w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[r * bp..(r + 1) * bp];
                r += 1;
                // valid ox: 0 <= ox*sw + kx - pw < w
                let lo = if g.pw > kx {
                    (g.pw - kx).div_ceil(g.sw)
                } else {
                    0
                }
                .min(ow);
                let hi = if w + g.pw > kx {
                    (w + g.pw - kx).div_ceil(g.sw)
                } else {
                    0
                }
                .clamp(lo, ow);
                for oy in oy0..oy1 {
                    let dst = &mut row[(oy - oy0) * ow..(oy - oy0 + 1) * ow];
                    let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                    if iy < 0 || iy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let xrow = &xc[iy as usize * w..(iy as usize + 1) * w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if hi == lo {
                        // Every tap of this row falls in the padding (a
                        // kernel wider than the padded-away part of a
                        // narrow image), and `lo + kx` may be below `pw`.
                        continue;
                    }
                    if g.sw == 1 {
                        // A plain loop, not copy_from_slice: rows are short
                        // (tens of floats) and a memcpy call per row costs
                        // more than the copy.
                        let s = lo + kx - g.pw;
                        for (d, v) in dst[lo..hi].iter_mut().zip(&xrow[s..s + hi - lo]) {
                            *d = *v;
                        }
                    } else {
                        for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = xrow[(ox + lo) * g.sw + kx - g.pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the im2col-layout gradient `col` of output rows `oy0..oy1` back into
/// the group's input planes (the adjoint of [`im2col`]). `dx_img` points at
/// the group's first input plane of one image.
///
/// # Safety
/// `dx_img` must be valid for reads and writes of `C_in/g` planes of `h*w`
/// and no other thread may touch the input rows this band maps to
/// (`oy0*sh - ph ..= (oy1-1)*sh - ph + kh - 1`) during the call.
unsafe fn col2im_raw(col: &[f32], g: &ConvGeom, oy0: usize, oy1: usize, dx_img: *mut f32) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let bp = (oy1 - oy0) * ow;
    let mut r = 0;
    for c in 0..g.cin_g() {
        let xc = dx_img.add(c * h * w);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &col[r * bp..(r + 1) * bp];
                r += 1;
                let lo = if g.pw > kx {
                    (g.pw - kx).div_ceil(g.sw)
                } else {
                    0
                }
                .min(ow);
                let hi = if w + g.pw > kx {
                    (w + g.pw - kx).div_ceil(g.sw)
                } else {
                    0
                }
                .clamp(lo, ow);
                for oy in oy0..oy1 {
                    let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src = &row[(oy - oy0) * ow..(oy - oy0 + 1) * ow];
                    // SAFETY: iy < h, so the row lies inside plane c.
                    let xrow = std::slice::from_raw_parts_mut(xc.add(iy as usize * w), w);
                    if g.sw == 1 {
                        let s = lo + kx - g.pw;
                        for (d, v) in xrow[s..s + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += *v;
                        }
                    } else {
                        for (ox, v) in src[lo..hi].iter().enumerate() {
                            xrow[(ox + lo) * g.sw + kx - g.pw] += *v;
                        }
                    }
                }
            }
        }
    }
}

/// Output channels per group up to which stride-1 convolutions are computed
/// directly (whole-image wide AXPYs and dots) instead of with GEMMs: with so
/// few output rows the GEMM is a GEMV and im2col would dominate (SRCNN's
/// last 5x5 32 -> 1 layer runs 4x faster this way).
const DIRECT_MAX_COUT_G: usize = 2;

impl ConvGeom {
    fn use_direct(&self) -> bool {
        self.cout_g() <= DIRECT_MAX_COUT_G && self.sw == 1 && self.sh == 1
    }
}

/// `dst += a * src`, a loop the compiler vectorises.
#[inline]
fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += a * *s;
    }
}

/// Dot product with 8 partial sums (vectorisable).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// What a forward convolution does to its sums before they are stored: add
/// the bias, and optionally apply ReLU, while the band is still in cache
/// (a separate ReLU is one more pass over a multi-megabyte activation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    /// Per-output-channel bias.
    pub bias: Option<&'a [f32]>,
    /// Clamp negative outputs to zero.
    pub relu: bool,
}

impl<'a> Epilogue<'a> {
    /// Just the bias (the tests' shorthand).
    #[cfg(test)]
    pub(crate) fn bias(bias: Option<&'a [f32]>) -> Self {
        Epilogue { bias, relu: false }
    }

    /// The bias of output channel `co`.
    #[inline]
    fn bias_of(&self, co: usize) -> f32 {
        self.bias.map_or(0.0, |b| b[co])
    }

    /// `dst[i] = act(src[i] + bias[co])`.
    #[inline]
    fn store(&self, co: usize, src: &[f32], dst: &mut [f32]) {
        let bv = self.bias_of(co);
        if self.relu {
            for (d, v) in dst.iter_mut().zip(src) {
                *d = (*v + bv).max(0.0);
            }
        } else {
            for (d, v) in dst.iter_mut().zip(src) {
                *d = *v + bv;
            }
        }
    }

    /// `row[i] = act(row[i] + bias[co])`, in place.
    #[inline]
    fn apply(&self, co: usize, row: &mut [f32]) {
        let bv = self.bias_of(co);
        match (self.relu, bv == 0.0) {
            (false, true) => {}
            (false, false) => row.iter_mut().for_each(|v| *v += bv),
            (true, _) => row.iter_mut().for_each(|v| *v = (*v + bv).max(0.0)),
        }
    }
}

/// Direct stride-1 forward for few output channels, one image per task, on
/// the whole image as one [`TapBand`]: per (input channel, tap), one AXPY
/// over all wide output pixels (long vectorised loops, not per-row ones).
fn direct_forward(x: &[f32], wt: &[f32], epi: Epilogue, g: &ConvGeom, y: &mut [f32]) {
    let (cg, cog, taps, opix) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow);
    let b = g.tap_band(0, g.oh);
    y.par_chunks_mut(g.cout * opix)
        .zip(x.par_chunks(g.cin * g.h * g.w))
        .for_each(|(yi, xi)| {
            with_scratch(cg * b.cs + b.mw, |s| {
                let (xs, yw) = s.split_at_mut(cg * b.cs);
                for (co, yc) in yi.chunks_mut(opix).enumerate() {
                    let gi = co / cog;
                    if co % cog == 0 {
                        load_band(&xi[gi * cg * g.h * g.w..], g, 0, &b, xs);
                    }
                    yw.fill(0.0);
                    for (ci, xc) in xs.chunks_exact(b.cs).enumerate() {
                        let wk = &wt[(co * cg + ci) * taps..][..taps];
                        for (t, wv) in wk.iter().enumerate() {
                            let off = (t / g.kw) * b.wp + t % g.kw;
                            axpy(yw, *wv, &xc[off..off + b.mw]);
                        }
                    }
                    for (oy, yrow) in yc.chunks_exact_mut(g.ow).enumerate() {
                        epi.store(co, &yw[oy * b.wp..][..g.ow], yrow);
                    }
                }
            })
        });
}

/// Copies output channel `dyc` (`oh x ow`) into the wide layout `dyw`
/// (row stride `wp`, zeros past each row's end and in the tail).
fn widen(dyc: &[f32], g: &ConvGeom, b: &TapBand, dyw: &mut [f32]) {
    dyw.fill(0.0);
    for (oy, src) in dyc.chunks_exact(g.ow).enumerate() {
        dyw[oy * b.wp..][..g.ow].copy_from_slice(src);
    }
}

/// Direct stride-1 input gradient for few output channels, one image per
/// task (whole-image wide AXPYs into a padded scratch, then cropped).
fn direct_backward_input(dy: &[f32], wt: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let (cg, cog, taps, opix, plane) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow, g.h * g.w);
    let b = g.tap_band(0, g.oh);
    dx.par_chunks_mut(g.cin * plane)
        .zip(dy.par_chunks(g.cout * opix))
        .for_each(|(dxi, dyi)| {
            with_scratch(cg * b.cs + b.mw, |s| {
                let (dxs, dyw) = s.split_at_mut(cg * b.cs);
                for gi in 0..g.groups {
                    dxs.fill(0.0);
                    for co in gi * cog..(gi + 1) * cog {
                        widen(&dyi[co * opix..][..opix], g, &b, dyw);
                        for (ci, dxc) in dxs.chunks_exact_mut(b.cs).enumerate() {
                            let wk = &wt[(co * cg + ci) * taps..][..taps];
                            for (t, wv) in wk.iter().enumerate() {
                                let off = (t / g.kw) * b.wp + t % g.kw;
                                axpy(&mut dxc[off..off + b.mw], *wv, dyw);
                            }
                        }
                    }
                    for (c, dxc) in dxs.chunks_exact(b.cs).enumerate() {
                        let dplane = &mut dxi[(gi * cg + c) * plane..][..plane];
                        for (iy, drow) in dplane.chunks_exact_mut(g.w).enumerate() {
                            drow.copy_from_slice(&dxc[(iy + g.ph) * b.wp + g.pw..][..g.w]);
                        }
                    }
                }
            })
        });
}

/// Direct stride-1 weight gradient for few output channels: per image, one
/// whole-image wide dot per (output channel, input channel, tap), partial
/// sums reduced by [`deterministic_sum`].
fn direct_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    let (cg, cog, taps, opix, plane) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow, g.h * g.w);
    let b = g.tap_band(0, g.oh);
    let images: Vec<usize> = (0..g.n).collect();
    let total = deterministic_sum(&images, dw.len(), |acc, &n| {
        let xi = &x[n * g.cin * plane..][..g.cin * plane];
        let dyi = &dy[n * g.cout * opix..][..g.cout * opix];
        with_scratch(cg * b.cs + b.mw, |s| {
            let (xs, dyw) = s.split_at_mut(cg * b.cs);
            for co in 0..g.cout {
                let gi = co / cog;
                if co % cog == 0 {
                    load_band(&xi[gi * cg * plane..], g, 0, &b, xs);
                }
                widen(&dyi[co * opix..][..opix], g, &b, dyw);
                for (ci, xc) in xs.chunks_exact(b.cs).enumerate() {
                    let a = &mut acc[(co * cg + ci) * taps..][..taps];
                    for (t, av) in a.iter_mut().enumerate() {
                        let off = (t / g.kw) * b.wp + t % g.kw;
                        *av += dot(dyw, &xc[off..off + b.mw]);
                    }
                }
            }
        })
    });
    dw.copy_from_slice(&total);
}

/// Wide output pixels per band of the tap-wise kernels (rounded up to
/// whole rows): a whole SRCNN 21x21 training patch (25 wide rows) is one
/// band, a 256-wide image gets 4-row bands.
const TAP_BAND_PIXELS: usize = 1024;

/// Input channels per group from which stride-1 convolutions use the
/// tap-wise kernels (below that the per-tap GEMMs are too thin).
const TAP_MIN_CIN_G: usize = 8;

/// Geometry of one band of output rows for the tap-wise kernels.
///
/// The band's input rows are copied, zero-padded, into a scratch with row
/// stride `wp = w + 2*pw` and channel stride `cs`; in that layout the input
/// of output pixel `(oy, ox)` for tap `(ky, kx)` sits at `p + ky*wp + kx`
/// with `p = (oy - oy0)*wp + ox`, so each tap is one GEMM on a strided view
/// over "wide" output pixels `p < mw` (the `wp - ow` pixels past each row's
/// end are computed and dropped, or carry zeros in the backward passes).
#[derive(Debug, Clone, Copy)]
struct TapBand {
    /// Padded row stride.
    wp: usize,
    /// Input rows of the band (`rows + kh - 1`).
    r_in: usize,
    /// Wide pixels, rounded up to a multiple of 8 (the GEMM then reads the
    /// views in place instead of packing them).
    mw: usize,
    /// Channel stride of the input scratch (room for the last tap's view).
    cs: usize,
}

impl ConvGeom {
    fn use_taps(&self) -> bool {
        self.sh == 1
            && self.sw == 1
            && self.cin_g() >= TAP_MIN_CIN_G
            && !self.use_direct()
            && !self.is_pointwise()
    }
    fn taps(&self) -> usize {
        self.kh * self.kw
    }
    /// Output-row bands `(n, oy0, oy1)` of the tap-wise kernels.
    fn tap_tasks(&self, min_rows: usize) -> Vec<(usize, usize, usize)> {
        let wp = self.w + 2 * self.pw;
        let rows = TAP_BAND_PIXELS.div_ceil(wp).max(min_rows).max(1);
        let mut t = Vec::new();
        for n in 0..self.n {
            let mut y0 = 0;
            while y0 < self.oh {
                let y1 = (y0 + rows).min(self.oh);
                t.push((n, y0, y1));
                y0 = y1;
            }
        }
        t
    }
    fn tap_band(&self, oy0: usize, oy1: usize) -> TapBand {
        let wp = self.w + 2 * self.pw;
        let r_in = oy1 - oy0 + self.kh - 1;
        let mw = ((oy1 - oy0 - 1) * wp + self.ow).next_multiple_of(8);
        let cs = (r_in * wp).max((self.kh - 1) * wp + self.kw - 1 + mw);
        TapBand { wp, r_in, mw, cs }
    }
}

/// Copies the band's input rows of the group's planes `x_img` into `xs`
/// (the [`TapBand`] layout, zero padding included).
fn load_band(x_img: &[f32], g: &ConvGeom, oy0: usize, b: &TapBand, xs: &mut [f32]) {
    let (h, w, pw) = (g.h, g.w, g.pw);
    for (c, dst) in xs.chunks_exact_mut(b.cs).take(g.cin_g()).enumerate() {
        let src = &x_img[c * h * w..][..h * w];
        let (rows, tail) = dst.split_at_mut(b.r_in * b.wp);
        for (pr, row) in rows.chunks_exact_mut(b.wp).enumerate() {
            match (oy0 + pr).checked_sub(g.ph).filter(|&iy| iy < h) {
                Some(iy) => {
                    row[..pw].fill(0.0);
                    row[pw..pw + w].copy_from_slice(&src[iy * w..][..w]);
                    row[pw + w..].fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
        tail.fill(0.0);
    }
}

/// Weights reordered per tap: `[group][tap][a][b]` from `[C_out, C_in/g,
/// kh, kw]`, with `(a, b) = (co, ci)` if `co_major`, else `(ci, co)`.
fn weights_by_tap(wt: &[f32], g: &ConvGeom, co_major: bool) -> Vec<f32> {
    let (cg, cog, taps) = (g.cin_g(), g.cout_g(), g.taps());
    let mut out = vec![0.0f32; wt.len()];
    for gi in 0..g.groups {
        for co in 0..cog {
            for ci in 0..cg {
                let src = &wt[((gi * cog + co) * cg + ci) * taps..][..taps];
                for (t, v) in src.iter().enumerate() {
                    let ab = if co_major {
                        co * cg + ci
                    } else {
                        ci * cog + co
                    };
                    out[(gi * taps + t) * cog * cg + ab] = *v;
                }
            }
        }
    }
    out
}

/// Output rows per band, at least, of the tap-wise forward for one or two
/// output channels.
const THIN_BAND_ROWS: usize = 24;

/// Tap-wise stride-1 forward: per band, `Y_wide = sum_taps W_tap * X_shift`
/// (one GEMM per tap on a strided view of the band's input, no im2col).
fn taps_forward(x: &[f32], wt: &[f32], epi: Epilogue, g: &ConvGeom, y: &mut [f32]) {
    let (cg, cog, taps, opix) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow);
    // With AVX2 + FMA, one direct kernel over all taps; else a GEMM per tap.
    let direct = direct::available();
    let wtap = if direct {
        (0..g.groups)
            .flat_map(|gi| {
                let w = &wt[gi * cog * cg * taps..][..cog * cg * taps];
                direct::pack_weights(w, cog, cg, taps)
            })
            .collect()
    } else {
        weights_by_tap(wt, g, true)
    };
    let yp = SendPtr(y.as_mut_ptr());
    // A band copies kh - 1 halo rows besides its own; with few output
    // channels that copy, not the arithmetic, is the cost, so their bands
    // are taller.
    let min_rows = if cog <= 2 { THIN_BAND_ROWS } else { 1 };
    let plane = g.h * g.w;
    g.tap_tasks(min_rows).par_iter().for_each(|&(n, oy0, oy1)| {
        let b = g.tap_band(oy0, oy1);
        let offs: Vec<usize> = (0..taps).map(|t| (t / g.kw) * b.wp + t % g.kw).collect();
        let max_off = offs.last().copied().unwrap_or(0);
        // Without padding the input planes already have the band layout
        // (row stride w = wp): the direct kernel reads them in place, with
        // the plane as channel stride, when every read of the band stays
        // inside its own plane (SRCNN's valid convolutions: the copies were
        // 3.6 % of its inference; 5x5 64 -> 32 on 520²: 346 -> 332 ms). Not
        // for one or two output channels, whose tall bands read better from
        // a compact copy (5x5 32 -> 1 on 516²: 12.4 ms copied, 20 in place).
        let in_place =
            direct && cog > 2 && g.ph == 0 && g.pw == 0 && oy0 * g.w + b.mw + max_off <= plane;
        with_scratch(cg * b.cs + cog * b.mw, |s| {
            let (xs, ys) = s.split_at_mut(cg * b.cs);
            for gi in 0..g.groups {
                let x_img = &x[(n * g.cin + gi * cg) * plane..][..cg * plane];
                if in_place {
                    let wg = &wtap[gi * cog.div_ceil(direct::MR) * direct::MR * cg * taps..];
                    let band = &x_img[oy0 * g.w..];
                    direct::product(cog, cg, &offs, wg, band, plane, ys, b.mw);
                } else {
                    load_band(x_img, g, oy0, &b, xs);
                }
                if direct && !in_place {
                    let wg = &wtap[gi * cog.div_ceil(direct::MR) * direct::MR * cg * taps..];
                    direct::product(cog, cg, &offs, wg, xs, b.cs, ys, b.mw);
                }
                for (t, &off) in offs.iter().enumerate().filter(|_| !direct) {
                    let lhs = Mat {
                        ptr: wtap[(gi * taps + t) * cog * cg..].as_ptr(),
                        rs: cg as isize,
                        cs: 1,
                    };
                    let rhs = Mat {
                        ptr: xs[off..].as_ptr(),
                        rs: b.cs as isize,
                        cs: 1,
                    };
                    // SAFETY: ys is cog x mw (row stride mw), private to
                    // this task; lhs is inside `wtap`; the rhs view's last
                    // element, (cg-1)*cs + ky*wp + kx + mw - 1, is inside
                    // `xs` because cs >= (kh-1)*wp + kw-1 + mw.
                    unsafe {
                        gemm_raw(
                            cog,
                            b.mw,
                            cg,
                            ys.as_mut_ptr(),
                            b.mw as isize,
                            1,
                            t > 0,
                            lhs,
                            rhs,
                        )
                    }
                }
                for co in 0..cog {
                    let yrow = &ys[co * b.mw..][..b.mw];
                    for oy in oy0..oy1 {
                        let src = &yrow[(oy - oy0) * b.wp..][..g.ow];
                        // SAFETY: row oy of output channel gi*cog+co of image
                        // n: inside `y`, disjoint between tasks (distinct
                        // (n, band) pairs).
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(
                                yp.get()
                                    .add((n * g.cout + gi * cog + co) * opix + oy * g.ow),
                                g.ow,
                            )
                        };
                        epi.store(gi * cog + co, src, dst);
                    }
                }
            }
        })
    });
}

/// Tap-wise stride-1 input gradient: per band, the transposed taps scatter
/// `W_tap^T * dY_wide` into a zero-padded band of `dx` (no col2im), which
/// is then added to `dx`.
fn taps_backward_input(dy: &[f32], wt: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    let (cg, cog, taps, opix) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow);
    let wtap = weights_by_tap(wt, g, false);
    dx.fill(0.0);
    let dxp = SendPtr(dx.as_mut_ptr());
    // Bands at least kh-1 rows tall: then bands i and i+2 of an image touch
    // disjoint input rows, so even and odd bands run in two phases (and
    // each input row receives its bands' sums in band order).
    let tasks = g.tap_tasks(g.kh - 1);
    for phase in 0..2 {
        let mut idx = 0;
        let mut prev_n = usize::MAX;
        let mine: Vec<_> = tasks
            .iter()
            .filter(|t| {
                if t.0 != prev_n {
                    prev_n = t.0;
                    idx = 0;
                }
                idx += 1;
                (idx - 1) % 2 == phase
            })
            .copied()
            .collect();
        mine.par_iter().for_each(|&(n, oy0, oy1)| {
            let b = g.tap_band(oy0, oy1);
            with_scratch(cg * b.cs + cog * b.mw, |s| {
                let (dxs, dys) = s.split_at_mut(cg * b.cs);
                for gi in 0..g.groups {
                    for (co, row) in dys.chunks_exact_mut(b.mw).enumerate() {
                        row.fill(0.0);
                        let src = &dy[(n * g.cout + gi * cog + co) * opix..][..opix];
                        for oy in oy0..oy1 {
                            row[(oy - oy0) * b.wp..][..g.ow]
                                .copy_from_slice(&src[oy * g.ow..][..g.ow]);
                        }
                    }
                    dxs.fill(0.0);
                    for t in 0..taps {
                        let (ky, kx) = (t / g.kw, t % g.kw);
                        let lhs = Mat {
                            ptr: wtap[(gi * taps + t) * cog * cg..].as_ptr(),
                            rs: cog as isize,
                            cs: 1,
                        };
                        let rhs = Mat {
                            ptr: dys.as_ptr(),
                            rs: b.mw as isize,
                            cs: 1,
                        };
                        // SAFETY: the dst view (cg x mw at ky*wp + kx, row
                        // stride cs) is inside `dxs` as cs >= (kh-1)*wp +
                        // kw-1 + mw, private to this task and disjoint from
                        // `dys`; lhs is inside `wtap`.
                        unsafe {
                            gemm_raw(
                                cg,
                                b.mw,
                                cog,
                                dxs.as_mut_ptr().add(ky * b.wp + kx),
                                b.cs as isize,
                                1,
                                true,
                                lhs,
                                rhs,
                            )
                        }
                    }
                    for c in 0..cg {
                        let plane = (n * g.cin + gi * cg + c) * g.h * g.w;
                        for pr in 0..b.r_in {
                            let Some(iy) = (oy0 + pr).checked_sub(g.ph).filter(|&iy| iy < g.h)
                            else {
                                continue;
                            };
                            let src = &dxs[c * b.cs + pr * b.wp + g.pw..][..g.w];
                            // SAFETY: row iy of input plane c of image n:
                            // inside `dx`; tasks of one phase touch disjoint
                            // input rows (see above).
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(dxp.get().add(plane + iy * g.w), g.w)
                            };
                            for (d, v) in dst.iter_mut().zip(src) {
                                *d += *v;
                            }
                        }
                    }
                }
            })
        });
    }
}

/// Tap-wise stride-1 weight gradient: per band, `dW_tap += dY_wide *
/// X_shift^T` (one GEMM per tap, no im2col), partials summed in a fixed
/// order by [`deterministic_sum`].
fn taps_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    let (cg, cog, taps, opix) = (g.cin_g(), g.cout_g(), g.taps(), g.oh * g.ow);
    let tasks = g.tap_tasks(1);
    // Accumulated as [group][tap][ci][co].
    let total = deterministic_sum(&tasks, dw.len(), |acc, &(n, oy0, oy1)| {
        let b = g.tap_band(oy0, oy1);
        with_scratch(cg * b.cs + cog * b.mw, |s| {
            let (xs, dyt) = s.split_at_mut(cg * b.cs);
            for gi in 0..g.groups {
                let x_img = &x[(n * g.cin + gi * cg) * g.h * g.w..][..cg * g.h * g.w];
                load_band(x_img, g, oy0, &b, xs);
                // dY band transposed: dyt[p * cog + co], zero off the rows.
                dyt.fill(0.0);
                for co in 0..cog {
                    let src = &dy[(n * g.cout + gi * cog + co) * opix..][..opix];
                    for oy in oy0..oy1 {
                        let p0 = (oy - oy0) * b.wp;
                        for (ox, v) in src[oy * g.ow..][..g.ow].iter().enumerate() {
                            dyt[(p0 + ox) * cog + co] = *v;
                        }
                    }
                }
                for t in 0..taps {
                    let (ky, kx) = (t / g.kw, t % g.kw);
                    let lhs = Mat {
                        ptr: dyt.as_ptr(),
                        rs: 1,
                        cs: cog as isize,
                    };
                    let rhs = Mat {
                        ptr: xs[ky * b.wp + kx..].as_ptr(),
                        rs: 1,
                        cs: b.cs as isize,
                    };
                    let dst = acc[(gi * taps + t) * cg * cog..][..cg * cog].as_mut_ptr();
                    // SAFETY: dst is this fold's private accumulator (cog x
                    // cg, column stride cog); lhs is `dyt` (cog x mw); the rhs
                    // view (mw x cg) is inside `xs` as cs >= (kh-1)*wp + kw-1
                    // + mw.
                    unsafe { gemm_raw(cog, cg, b.mw, dst, 1, cog as isize, true, lhs, rhs) }
                }
            }
        })
    });
    for gi in 0..g.groups {
        for t in 0..taps {
            for ci in 0..cg {
                for co in 0..cog {
                    dw[((gi * cog + co) * cg + ci) * taps + t] =
                        total[((gi * taps + t) * cg + ci) * cog + co];
                }
            }
        }
    }
}

/// Sums per-item partial results in an order fixed by the problem's shape
/// (never by rayon's work stealing), so training is bit-reproducible: the
/// same seed gives the same weights, and a resumed run equals an
/// uninterrupted one. Items are split into at most `PARTS` contiguous
/// chunks, each accumulated sequentially, and the chunk sums are added in
/// index order.
fn deterministic_sum<T: Sync>(
    items: &[T],
    len: usize,
    f: impl Fn(&mut [f32], &T) + Sync,
) -> Vec<f32> {
    const PARTS: usize = 8;
    let chunk = items.len().div_ceil(PARTS).max(1);
    let partials: Vec<Vec<f32>> = items
        .par_chunks(chunk)
        .map(|c| {
            let mut acc = vec![0.0f32; len];
            for it in c {
                f(&mut acc, it);
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f32; len];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += *v);
    }
    total
}

/// Convolution forward: `y = conv(x, w) + b`, then the epilogue's ReLU if
/// asked. `y` is fully overwritten.
pub(crate) fn conv2d_forward(x: &[f32], wt: &[f32], epi: Epilogue, g: &ConvGeom, y: &mut [f32]) {
    assert!(x.len() == g.x_len() && wt.len() == g.w_len() && y.len() == g.y_len());
    if let Some(b) = epi.bias {
        assert_eq!(b.len(), g.cout);
    }
    if winograd::applies(g) {
        return winograd::forward(x, wt, epi, g, y);
    }
    conv2d_forward_gemm(x, wt, epi, g, y)
}

/// [`conv2d_forward`] without Winograd: the direct, tap-wise or im2col
/// kernels (the reference the Winograd path is tested and benchmarked
/// against). `y` is fully overwritten.
pub(crate) fn conv2d_forward_gemm(
    x: &[f32],
    wt: &[f32],
    epi: Epilogue,
    g: &ConvGeom,
    y: &mut [f32],
) {
    assert!(x.len() == g.x_len() && wt.len() == g.w_len() && y.len() == g.y_len());
    if let Some(b) = epi.bias {
        assert_eq!(b.len(), g.cout);
    }
    // The AVX2+FMA direct kernel serves every stride-1 layer, also those
    // too thin for GEMMs: SRCNN's 9x9 1 -> 64 first layer (im2col would
    // write 81 floats per pixel) and its 5x5 32 -> 1 last one (AXPYs).
    if g.use_taps() || (direct::available() && g.sh == 1 && g.sw == 1 && !g.is_pointwise()) {
        return taps_forward(x, wt, epi, g, y);
    }
    if g.use_direct() {
        return direct_forward(x, wt, epi, g, y);
    }
    im2col_forward(x, wt, epi, g, y)
}

/// The im2col + GEMM forward (any geometry).
fn im2col_forward(x: &[f32], wt: &[f32], epi: Epilogue, g: &ConvGeom, y: &mut [f32]) {
    let (k, cg, cog, opix) = (g.k(), g.cin_g(), g.cout_g(), g.oh * g.ow);
    let yp = SendPtr(y.as_mut_ptr());
    let tasks = g.tasks(1);
    tasks.par_iter().for_each(|&(n, oy0, oy1)| {
        let bp = (oy1 - oy0) * g.ow;
        let scratch_len = if g.is_pointwise() { 0 } else { k * bp };
        with_scratch(scratch_len, |col| {
            for gi in 0..g.groups {
                let x_img = &x[(n * g.cin + gi * cg) * g.h * g.w..][..cg * g.h * g.w];
                let rhs = if g.is_pointwise() {
                    Mat {
                        ptr: x_img[oy0 * g.ow..].as_ptr(),
                        rs: (g.h * g.w) as isize,
                        cs: 1,
                    }
                } else {
                    im2col(x_img, g, oy0, oy1, col);
                    Mat {
                        ptr: col.as_ptr(),
                        rs: bp as isize,
                        cs: 1,
                    }
                };
                let lhs = Mat {
                    ptr: wt[gi * cog * k..].as_ptr(),
                    rs: k as isize,
                    cs: 1,
                };
                let off = (n * g.cout + gi * cog) * opix + oy0 * g.ow;
                // SAFETY: dst rows are output channels gi*cog.. of image n,
                // columns oy0*ow..oy1*ow: inside `y` (length checked above)
                // and disjoint between tasks (distinct (n, band) pairs).
                // lhs/rhs index inside `wt` and `x`/`col` by construction.
                unsafe {
                    let dst = yp.get().add(off);
                    gemm_raw(cog, bp, k, dst, opix as isize, 1, false, lhs, rhs);
                    for co in 0..cog {
                        let row = std::slice::from_raw_parts_mut(dst.add(co * opix), bp);
                        epi.apply(gi * cog + co, row);
                    }
                }
            }
        })
    });
}

/// Convolution backward w.r.t. the input: `dx = conv^T(dy, w)`. `dx` is fully
/// overwritten.
pub(crate) fn conv2d_backward_input(dy: &[f32], wt: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    assert!(dx.len() == g.x_len() && wt.len() == g.w_len() && dy.len() == g.y_len());
    if let Some(gt) = g.transposed() {
        if winograd::applies(&gt) {
            return winograd::forward(dy, &flip_transpose(wt, g), Epilogue::default(), &gt, dx);
        }
    }
    if g.use_direct() {
        return direct_backward_input(dy, wt, g, dx);
    }
    if g.use_taps() {
        return taps_backward_input(dy, wt, g, dx);
    }
    im2col_backward_input(dy, wt, g, dx)
}

impl ConvGeom {
    /// For an ungrouped square `k x k` stride-1 convolution with padding
    /// `p <= k - 1`, the convolution that computes its input gradient: from
    /// `dy` (`C_out` planes of `oh x ow`) to `dx` (`C_in` planes of `h x
    /// w`) with the weights of [`flip_transpose`] and padding `k - 1 - p`.
    fn transposed(&self) -> Option<ConvGeom> {
        let ok = self.kh == self.kw
            && self.sh == 1
            && self.sw == 1
            && self.groups == 1
            && self.ph == self.pw
            && self.ph < self.kh;
        ok.then(|| ConvGeom {
            cin: self.cout,
            h: self.oh,
            w: self.ow,
            cout: self.cin,
            ph: self.kh - 1 - self.ph,
            pw: self.kw - 1 - self.pw,
            oh: self.h,
            ow: self.w,
            ..*self
        })
    }
}

/// `[C_out, C_in, k, k]` weights as `[C_in, C_out, k, k]`, rotated by 180
/// degrees: the weights of the convolution [`ConvGeom::transposed`].
fn flip_transpose(wt: &[f32], g: &ConvGeom) -> Vec<f32> {
    let kk = g.kh * g.kw;
    let mut out = vec![0.0f32; wt.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &wt[(co * g.cin + ci) * kk..][..kk];
            let dst = &mut out[(ci * g.cout + co) * kk..][..kk];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

/// The GEMM + col2im input gradient (any geometry).
fn im2col_backward_input(dy: &[f32], wt: &[f32], g: &ConvGeom, dx: &mut [f32]) {
    dx.fill(0.0);
    let (k, cg, cog, opix) = (g.k(), g.cin_g(), g.cout_g(), g.oh * g.ow);
    let dxp = SendPtr(dx.as_mut_ptr());
    // Bands at least ceil(kh/sh) rows tall: then bands i and i+2 of an image
    // touch disjoint input rows, so even and odd bands run in two phases.
    let tasks = g.tasks(g.kh.div_ceil(g.sh));
    for phase in 0..2 {
        let mut idx = 0;
        let mut prev_n = usize::MAX;
        let mine: Vec<_> = tasks
            .iter()
            .filter(|t| {
                if t.0 != prev_n {
                    prev_n = t.0;
                    idx = 0;
                }
                idx += 1;
                (idx - 1) % 2 == phase
            })
            .copied()
            .collect();
        mine.par_iter().for_each(|&(n, oy0, oy1)| {
            let bp = (oy1 - oy0) * g.ow;
            let scratch_len = if g.is_pointwise() { 0 } else { k * bp };
            with_scratch(scratch_len, |col| {
                for gi in 0..g.groups {
                    // lhs = W_g^T (k x cog), rhs = dY band (cog x bp)
                    let lhs = Mat {
                        ptr: wt[gi * cog * k..].as_ptr(),
                        rs: 1,
                        cs: k as isize,
                    };
                    let rhs = Mat {
                        ptr: dy[(n * g.cout + gi * cog) * opix + oy0 * g.ow..].as_ptr(),
                        rs: opix as isize,
                        cs: 1,
                    };
                    let img_off = (n * g.cin + gi * cg) * g.h * g.w;
                    // SAFETY: tasks of one phase write disjoint input rows
                    // (see above), distinct images are disjoint; all indices
                    // lie inside `dx`, `wt`, `dy`, `col` by the length checks.
                    unsafe {
                        if g.is_pointwise() {
                            let dst = dxp.get().add(img_off + oy0 * g.ow);
                            gemm_raw(k, bp, cog, dst, (g.h * g.w) as isize, 1, false, lhs, rhs);
                        } else {
                            gemm_raw(
                                k,
                                bp,
                                cog,
                                col.as_mut_ptr(),
                                bp as isize,
                                1,
                                false,
                                lhs,
                                rhs,
                            );
                            col2im_raw(col, g, oy0, oy1, dxp.get().add(img_off));
                        }
                    }
                }
            })
        });
    }
}

/// Convolution backward w.r.t. the weight: `dw = sum_n dy ⋆ x`. `dw` is
/// fully overwritten. Each rayon split accumulates a private partial `dw`;
/// the partials are summed at the end.
pub(crate) fn conv2d_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    assert!(x.len() == g.x_len() && dw.len() == g.w_len() && dy.len() == g.y_len());
    if winograd::applies_weight(g) {
        return winograd::backward_weight(x, dy, g, dw);
    }
    conv2d_backward_weight_gemm(x, dy, g, dw)
}

/// [`conv2d_backward_weight`] without Winograd: the direct, tap-wise or
/// im2col + GEMM kernels (for comparisons).
pub(crate) fn conv2d_backward_weight_gemm(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    assert!(x.len() == g.x_len() && dw.len() == g.w_len() && dy.len() == g.y_len());
    if g.use_direct() {
        return direct_backward_weight(x, dy, g, dw);
    }
    if g.use_taps() {
        return taps_backward_weight(x, dy, g, dw);
    }
    im2col_backward_weight(x, dy, g, dw)
}

/// The im2col + GEMM weight gradient (any geometry).
fn im2col_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    let (k, cg, cog, opix) = (g.k(), g.cin_g(), g.cout_g(), g.oh * g.ow);
    let wl = g.w_len();
    let tasks = g.tasks(1);
    let total = deterministic_sum(&tasks, wl, |acc, &(n, oy0, oy1)| {
        {
            let bp = (oy1 - oy0) * g.ow;
            let scratch_len = if g.is_pointwise() { 0 } else { k * bp };
            with_scratch(scratch_len, |col| {
                for gi in 0..g.groups {
                    let x_img = &x[(n * g.cin + gi * cg) * g.h * g.w..][..cg * g.h * g.w];
                    // rhs = col^T (bp x k)
                    let rhs = if g.is_pointwise() {
                        Mat {
                            ptr: x_img[oy0 * g.ow..].as_ptr(),
                            rs: 1,
                            cs: (g.h * g.w) as isize,
                        }
                    } else {
                        im2col(x_img, g, oy0, oy1, col);
                        Mat {
                            ptr: col.as_ptr(),
                            rs: 1,
                            cs: bp as isize,
                        }
                    };
                    let lhs = Mat {
                        ptr: dy[(n * g.cout + gi * cog) * opix + oy0 * g.ow..].as_ptr(),
                        rs: opix as isize,
                        cs: 1,
                    };
                    let dst = acc[gi * cog * k..][..cog * k].as_mut_ptr();
                    // SAFETY: dst is this fold's private accumulator slice
                    // (cog x k, row stride k); lhs/rhs stay inside `dy`
                    // and `x`/`col` by the length checks.
                    unsafe { gemm_raw(cog, k, bp, dst, k as isize, 1, true, lhs, rhs) }
                }
            });
        }
    });
    dw.copy_from_slice(&total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_conv(x: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
        let mut y = vec![0.0; g.y_len()];
        let (cg, cog) = (g.cin_g(), g.cout_g());
        for n in 0..g.n {
            for co in 0..g.cout {
                let gi = co / cog;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = 0.0f64;
                        for ci in 0..cg {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                                    let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * g.cin + gi * cg + ci) * g.h + iy as usize)
                                        * g.w
                                        + ix as usize];
                                    let wv = w[((co * cg + ci) * g.kh + ky) * g.kw + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * g.cout + co) * g.oh + oy) * g.ow + ox] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn close(a: &[f32], b: &[f32], what: &str, g: &ConvGeom) {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{what} [{i}]: {x} vs {y} for {g:?}"
            );
        }
    }

    #[test]
    fn tap_kernels_match_im2col() {
        // (n, cin, cout, k, pad, groups, h, w): padding, groups, several
        // bands per image (rows of 300 > TAP_BAND_PIXELS / 3), odd widths.
        for &(n, cin, cout, k, p, groups, h, w) in &[
            (3, 16, 8, 5, 0, 1, 25, 25),
            (2, 8, 5, 3, 1, 1, 9, 300),
            (1, 16, 6, 3, 2, 2, 7, 13),
            (2, 9, 4, 4, 1, 1, 11, 10),
            (1, 8, 3, 1, 1, 1, 6, 7),
            // Two full blocks of the direct kernel's 6 channels and a tail.
            (1, 12, 13, 5, 2, 1, 10, 23),
        ] {
            let oh = h + 2 * p - k + 1;
            let ow = w + 2 * p - k + 1;
            let g = ConvGeom {
                n,
                cin,
                h,
                w,
                cout,
                kh: k,
                kw: k,
                sh: 1,
                sw: 1,
                ph: p,
                pw: p,
                groups,
                oh,
                ow,
            };
            assert!(g.use_taps(), "{g:?}");
            let x: Vec<f32> = (0..g.x_len())
                .map(|i| ((i * 7919 % 101) as f32) / 50.0 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..g.w_len())
                .map(|i| ((i * 104729 % 37) as f32) / 18.0 - 1.0)
                .collect();
            let dy: Vec<f32> = (0..g.y_len())
                .map(|i| ((i * 31 % 23) as f32) / 11.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.25 - 0.5).collect();
            for relu in [false, true] {
                let epi = Epilogue {
                    bias: Some(&bias),
                    relu,
                };
                let (mut a, mut b) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
                taps_forward(&x, &wt, epi, &g, &mut a);
                im2col_forward(&x, &wt, epi, &g, &mut b);
                close(&a, &b, "forward", &g);
            }
            let (mut a, mut b) = (vec![1.0; g.x_len()], vec![2.0; g.x_len()]);
            taps_backward_input(&dy, &wt, &g, &mut a);
            im2col_backward_input(&dy, &wt, &g, &mut b);
            close(&a, &b, "backward input", &g);
            let (mut a, mut b) = (vec![1.0; g.w_len()], vec![2.0; g.w_len()]);
            taps_backward_weight(&x, &dy, &g, &mut a);
            im2col_backward_weight(&x, &dy, &g, &mut b);
            close(&a, &b, "backward weight", &g);
        }
    }

    #[test]
    fn conv_matches_naive() {
        for &(k, s, p, groups, h, w) in &[
            (3, 1, 1, 1, 7, 9),
            (3, 2, 1, 2, 9, 7),
            (5, 1, 2, 1, 6, 5),
            (1, 1, 0, 2, 5, 5),
            (2, 2, 0, 1, 8, 8),
            (3, 1, 0, 1, 40, 37),
        ] {
            // (1, 7) and (6, 1): SRCNN's thin first and last layers.
            for &(cin, cout) in &[(4, 6), (4, 2), (2, 2), (1, 7), (6, 1)] {
                if cin % groups != 0 || cout % groups != 0 {
                    continue;
                }
                let oh = (h + 2 * p - k) / s + 1;
                let ow = (w + 2 * p - k) / s + 1;
                let g = ConvGeom {
                    n: 2,
                    cin,
                    h,
                    w,
                    cout,
                    kh: k,
                    kw: k,
                    sh: s,
                    sw: s,
                    ph: p,
                    pw: p,
                    groups,
                    oh,
                    ow,
                };
                let x: Vec<f32> = (0..g.x_len())
                    .map(|i| ((i * 7919 % 101) as f32) / 50.0 - 1.0)
                    .collect();
                let wt: Vec<f32> = (0..g.w_len())
                    .map(|i| ((i * 104729 % 37) as f32) / 18.0 - 1.0)
                    .collect();
                let r = naive_conv(&x, &wt, &g);
                for relu in [false, true] {
                    let mut y = vec![f32::NAN; g.y_len()];
                    let epi = Epilogue { bias: None, relu };
                    conv2d_forward(&x, &wt, epi, &g, &mut y);
                    for (a, b) in y.iter().zip(&r) {
                        let b = if relu { b.max(0.0) } else { *b };
                        assert!(
                            (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                            "{a} vs {b} for {g:?}, relu {relu}"
                        );
                    }
                }
            }
        }
    }
}
