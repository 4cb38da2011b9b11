//! PSNR and SSIM, computed the way super-resolution papers compute them
//! ([`Convention::Paper`]) or the way scikit-image does
//! ([`Convention::Skimage`]).
//!
//! Both conventions work in `f64` on values in 0..255 units: 8-bit images are
//! read as their integer values `round(255 v)` (what the PNG held), 16-bit and
//! float images as `255 v` without rounding. Before measuring, the planes are
//! selected ([`Channels::Y`]: the MATLAB BT.601 luma of [`crate::color::luma_255`],
//! gray images per [`GrayMode`]; [`Channels::Rgb`]: every colour channel, alpha
//! ignored) and `crop_border` pixels are removed from each side.
//!
//! * **PSNR** (both conventions): `10 log10(255² / MSE)`, the MSE taken over
//!   all selected planes jointly, as BasicSR's `calculate_psnr` and
//!   `skimage.metrics.peak_signal_noise_ratio(data_range=255)` do. Identical
//!   images give `f64::INFINITY` (as both references; no epsilon is added).
//! * **SSIM, paper**: the original MATLAB `ssim_index` of Wang et al. (2004),
//!   as ported by BasicSR's `_ssim`/`calculate_ssim`: an 11x11 normalised
//!   Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid'
//!   filtering (no padding; `cv2.filter2D(...)[5:-5, 5:-5]`), population
//!   statistics (`σ² = E[x²] − μ²`), mean of the SSIM map, averaged over the
//!   planes.
//! * **SSIM, scikit-image**: `structural_similarity(data_range=255)` with its
//!   defaults (`channel_axis=-1` for colour): a 7x7 uniform window, sample
//!   covariance (`N/(N−1)` with N = 49), the SSIM map cropped by
//!   `(7 − 1) / 2 = 3` pixels on each side before averaging, averaged over
//!   channels. scikit-image filters with `scipy.ndimage.uniform_filter(mode=
//!   'reflect')`, but every window that survives the crop lies inside the
//!   image, so the padding never reaches the result and srkit filters 'valid'.
//!
//! The SSIM maps are built with a separable filter (horizontal then vertical)
//! over the four moment maps `x`, `y`, `x² + y²`, `xy` (only the sum of the
//! variances enters SSIM), in `f64`, in tiles processed in parallel with
//! rayon. The result does not depend on the number of threads.
//!
//! Note: BasicSR's NumPy `to_y_channel` converts to `float32` before taking Y;
//! srkit (like MATLAB) stays in `f64`, which moves published PSNRs by at most
//! ~1e-5 dB.

use rayon::prelude::*;

use crate::color::{luma_255, sample_255, GrayMode};
use crate::error::{Error, Result};
use crate::image::Image;

/// Which reference implementation the scores must reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Convention {
    /// MATLAB `ssim_index` / BasicSR `calculate_psnr`, `calculate_ssim`:
    /// 11x11 Gaussian (σ = 1.5) window, 'valid' filtering, population
    /// statistics. What published SR tables report.
    #[default]
    Paper,
    /// scikit-image `peak_signal_noise_ratio` / `structural_similarity` with
    /// `data_range=255` and default options: 7x7 uniform window, sample
    /// covariance, 3-pixel crop of the SSIM map.
    Skimage,
}

/// Which planes are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channels {
    /// The BT.601 luma as MATLAB `rgb2ycbcr` computes it (unrounded), the
    /// usual choice of SR papers (BasicSR `test_y_channel=True`).
    #[default]
    Y,
    /// Each colour channel (R, G, B, or the single gray channel); alpha is
    /// ignored.
    Rgb,
}

/// Options shared by [`psnr`], [`ssim`] and [`psnr_ssim`].
///
/// The default is what most SR papers report: Y channel, paper convention,
/// no crop (set `crop_border` to the scale factor to match BasicSR tables),
/// gray images measured natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MetricOptions {
    /// Pixels removed from each of the four borders before measuring
    /// (BasicSR's `crop_border`, usually the SR scale).
    pub crop_border: usize,
    /// Measure the Y plane or every colour channel.
    pub channels: Channels,
    /// Which reference implementation to reproduce.
    pub convention: Convention,
    /// How gray images are turned into Y when `channels` is [`Channels::Y`].
    pub gray: GrayMode,
}

/// PSNR (dB) and SSIM of one image pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Peak signal-to-noise ratio in dB (`+inf` for identical images).
    pub psnr: f64,
    /// Mean structural similarity, at most 1.
    pub ssim: f64,
}

/// The maximum sample value of the 0..255 scale (`L` / `data_range`).
const PEAK: f64 = 255.0;
/// SSIM stabilising constants (Wang et al. 2004; MATLAB, BasicSR, skimage).
const K1: f64 = 0.01;
const K2: f64 = 0.03;
/// Gaussian window of the paper convention: 11 taps, σ = 1.5.
const GAUSS_TAPS: usize = 11;
const GAUSS_SIGMA: f64 = 1.5;
/// Uniform window of scikit-image's default SSIM.
const UNIFORM_TAPS: usize = 7;

/// Output rows and columns of the SSIM map handled by one parallel task.
const TILE_ROWS: usize = 128;
const TILE_COLS: usize = 512;

/// The planes to measure, in 0..255 units, cropped.
struct Planes {
    width: usize,
    height: usize,
    planes: Vec<Vec<f64>>,
}

fn prepare(img: &Image, opts: &MetricOptions) -> Result<Planes> {
    let planes_full: Vec<Vec<f64>> = match opts.channels {
        Channels::Y => vec![luma_255(img, opts.gray)?],
        Channels::Rgb => (0..img.color_channels())
            .map(|c| {
                img.plane(c)
                    .iter()
                    .map(|&v| sample_255(v, img.depth()))
                    .collect()
            })
            .collect(),
    };
    let b = opts.crop_border;
    let (w, h) = (img.width(), img.height());
    if b == 0 {
        return Ok(Planes {
            width: w,
            height: h,
            planes: planes_full,
        });
    }
    let (cw, ch) = (w - 2 * b, h - 2 * b);
    let planes = planes_full
        .iter()
        .map(|p| {
            let mut out = Vec::with_capacity(cw * ch);
            for row in p.chunks_exact(w).skip(b).take(ch) {
                out.extend_from_slice(&row[b..b + cw]);
            }
            out
        })
        .collect();
    Ok(Planes {
        width: cw,
        height: ch,
        planes,
    })
}

fn prepare_pair(reference: &Image, test: &Image, opts: &MetricOptions) -> Result<(Planes, Planes)> {
    if reference.width() != test.width()
        || reference.height() != test.height()
        || reference.channels() != test.channels()
    {
        return Err(Error::ShapeMismatch {
            left: reference.shape_string(),
            right: test.shape_string(),
        });
    }
    let b = opts.crop_border;
    let (w, h) = (reference.width(), reference.height());
    if b.checked_mul(2).map_or(true, |bb| bb >= w || bb >= h) {
        return Err(Error::invalid(
            "crop_border",
            format!("{b} leaves nothing of a {w}x{h} image"),
        ));
    }
    Ok((prepare(reference, opts)?, prepare(test, opts)?))
}

fn psnr_planes(a: &Planes, b: &Planes) -> f64 {
    let mut sse = 0.0;
    let mut n = 0usize;
    for (pa, pb) in a.planes.iter().zip(&b.planes) {
        sse += pa
            .iter()
            .zip(pb)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>();
        n += pa.len();
    }
    let mse = sse / n as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (PEAK * PEAK / mse).log10()
}

/// The normalised 11-tap Gaussian of MATLAB `fspecial('gaussian', 11, 1.5)` /
/// OpenCV `getGaussianKernel(11, 1.5)` (the 2-D window is its outer product).
fn gaussian_kernel() -> [f64; GAUSS_TAPS] {
    let mut g = [0.0; GAUSS_TAPS];
    let c = (GAUSS_TAPS / 2) as f64;
    for (i, v) in g.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-(d * d) / (2.0 * GAUSS_SIGMA * GAUSS_SIGMA)).exp();
    }
    let s: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= s);
    g
}

fn ssim_planes(a: &Planes, b: &Planes, convention: Convention) -> Result<f64> {
    let taps = match convention {
        Convention::Paper => GAUSS_TAPS,
        Convention::Skimage => UNIFORM_TAPS,
    };
    let (w, h) = (a.width, a.height);
    if w < taps || h < taps {
        return Err(Error::invalid(
            "image size",
            format!("{w}x{h} (after cropping) is smaller than the {taps}x{taps} SSIM window"),
        ));
    }
    let mut total = 0.0;
    for (x, y) in a.planes.iter().zip(&b.planes) {
        total += match convention {
            Convention::Paper => ssim_valid(x, y, w, h, &gaussian_kernel(), 1.0),
            Convention::Skimage => {
                let n = (UNIFORM_TAPS * UNIFORM_TAPS) as f64;
                ssim_valid(
                    x,
                    y,
                    w,
                    h,
                    &[1.0 / UNIFORM_TAPS as f64; UNIFORM_TAPS],
                    n / (n - 1.0),
                )
            }
        };
    }
    Ok(total / a.planes.len() as f64)
}

/// `out[i] = sum_k g[k] * a[i + k]` for a symmetric kernel, folded
/// (`g[k] (a[i+k] + a[i+K-1-k])`), over `out.len()` outputs.
#[inline(always)]
fn filter_row<const K: usize>(a: &[f64], g: &[f64; K], out: &mut [f64]) {
    let n = out.len();
    let a = &a[..n + K - 1];
    let mid = K / 2;
    let gm = g[mid];
    for (o, &v) in out.iter_mut().zip(&a[mid..mid + n]) {
        *o = gm * v;
    }
    for k in 0..mid {
        let gk = g[k];
        let lo = &a[k..k + n];
        let hi = &a[K - 1 - k..K - 1 - k + n];
        for ((o, &l), &r) in out.iter_mut().zip(lo).zip(hi) {
            *o += gk * (l + r);
        }
    }
}

/// `out[i] = sum_k g[k] * rows[k][i]` for a symmetric kernel, folded.
#[inline(always)]
fn filter_col<const K: usize>(rows: [&[f64]; K], g: &[f64; K], out: &mut [f64]) {
    let n = out.len();
    let mid = K / 2;
    let gm = g[mid];
    for (o, &v) in out.iter_mut().zip(&rows[mid][..n]) {
        *o = gm * v;
    }
    for k in 0..mid {
        let gk = g[k];
        let lo = &rows[k][..n];
        let hi = &rows[K - 1 - k][..n];
        for ((o, &l), &r) in out.iter_mut().zip(lo).zip(hi) {
            *o += gk * (l + r);
        }
    }
}

/// Sum with four interleaved accumulators (vectorisable, deterministic).
fn sum4(v: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = v.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..4 {
            acc[j] += c[j];
        }
    }
    let tail: f64 = rest.iter().sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Mean of the SSIM map over the 'valid' region of a `K`x`K` separable window
/// `g ⊗ g` (symmetric, normalised); `cov_norm` scales the (co)variances.
fn ssim_valid<const K: usize>(
    x: &[f64],
    y: &[f64],
    w: usize,
    h: usize,
    g: &[f64; K],
    cov_norm: f64,
) -> f64 {
    debug_assert!((0..K).all(|k| g[k] == g[K - 1 - k]));
    let (ow, oh) = (w - K + 1, h - K + 1);
    let c1 = (K1 * PEAK) * (K1 * PEAK);
    let c2 = (K2 * PEAK) * (K2 * PEAK);
    let tiles: Vec<(usize, usize)> = (0..oh)
        .step_by(TILE_ROWS)
        .flat_map(|r| (0..ow).step_by(TILE_COLS).map(move |c| (r, c)))
        .collect();
    let sums: Vec<f64> = tiles
        .par_iter()
        .map(|&(r0, c0)| {
            let r1 = (r0 + TILE_ROWS).min(oh);
            let tw = (c0 + TILE_COLS).min(ow) - c0;
            let iw = tw + K - 1;
            // Ring of the last K horizontally filtered rows, 4 moments each.
            let mut ring = vec![0.0; 4 * K * tw];
            let mut s = vec![0.0; iw];
            let mut p = vec![0.0; iw];
            let mut vert = vec![0.0; 4 * tw];
            let mut map = vec![0.0; tw];
            let mut acc = 0.0;
            for ir in r0..r1 + K - 1 {
                let xr = &x[ir * w + c0..ir * w + c0 + iw];
                let yr = &y[ir * w + c0..ir * w + c0 + iw];
                for (((s, p), &a), &b) in s.iter_mut().zip(p.iter_mut()).zip(xr).zip(yr) {
                    *s = a * a + b * b;
                    *p = a * b;
                }
                let slot = (ir - r0) % K;
                let base = 4 * slot * tw;
                let dst = &mut ring[base..base + 4 * tw];
                let (hx, rest) = dst.split_at_mut(tw);
                let (hy, rest) = rest.split_at_mut(tw);
                let (hs, hp) = rest.split_at_mut(tw);
                filter_row(xr, g, hx);
                filter_row(yr, g, hy);
                filter_row(&s, g, hs);
                filter_row(&p, g, hp);
                if ir < r0 + K - 1 {
                    continue;
                }
                // Output row ir - (K-1) uses input rows ir-K+1 ..= ir.
                let first = ir + 1 - K;
                let (vx, rest) = vert.split_at_mut(tw);
                let (vy, rest) = rest.split_at_mut(tw);
                let (vs, vp) = rest.split_at_mut(tw);
                for (m, v) in [vx, vy, vs, vp].into_iter().enumerate() {
                    let rows: [&[f64]; K] = std::array::from_fn(|k| {
                        let slot = (first + k - r0) % K;
                        let o = (4 * slot + m) * tw;
                        &ring[o..o + tw]
                    });
                    filter_col(rows, g, v);
                }
                let (vx, rest) = vert.split_at(tw);
                let (vy, rest) = rest.split_at(tw);
                let (vs, vp) = rest.split_at(tw);
                for ((((o, &mx), &my), &ms), &mp) in map.iter_mut().zip(vx).zip(vy).zip(vs).zip(vp)
                {
                    let mxy = mx * my;
                    let msq = mx * mx + my * my;
                    let cov = cov_norm * (mp - mxy);
                    let var = cov_norm * (ms - msq);
                    *o = ((2.0 * mxy + c1) * (2.0 * cov + c2)) / ((msq + c1) * (var + c2));
                }
                acc += sum4(&map);
            }
            acc
        })
        .collect();
    sums.iter().sum::<f64>() / (ow * oh) as f64
}

/// Peak signal-to-noise ratio in dB between `reference` and `test`.
///
/// `10 log10(255² / MSE)` over the planes chosen by `opts` (see the module
/// docs), matching BasicSR `calculate_psnr` ([`Convention::Paper`]) and
/// scikit-image `peak_signal_noise_ratio(data_range=255)`
/// ([`Convention::Skimage`]); both conventions give the same PSNR. Returns
/// `f64::INFINITY` when the planes are identical.
///
/// Fails with [`Error::ShapeMismatch`] if the images differ in size or
/// channel count, and with [`Error::InvalidParameter`] if `crop_border`
/// leaves no pixel.
pub fn psnr(reference: &Image, test: &Image, opts: &MetricOptions) -> Result<f64> {
    let (a, b) = prepare_pair(reference, test, opts)?;
    Ok(psnr_planes(&a, &b))
}

/// Mean structural similarity between `reference` and `test`.
///
/// [`Convention::Paper`] reproduces MATLAB `ssim_index` / BasicSR
/// `calculate_ssim` (11x11 Gaussian σ = 1.5, 'valid' region, population
/// statistics); [`Convention::Skimage`] reproduces scikit-image
/// `structural_similarity(data_range=255)` defaults (7x7 uniform window,
/// sample covariance). With [`Channels::Rgb`] the per-channel scores are
/// averaged. See the module docs.
///
/// Fails with [`Error::ShapeMismatch`] if the images differ in size or
/// channel count, and with [`Error::InvalidParameter`] if `crop_border`
/// leaves no pixel or the cropped image is smaller than the window.
pub fn ssim(reference: &Image, test: &Image, opts: &MetricOptions) -> Result<f64> {
    let (a, b) = prepare_pair(reference, test, opts)?;
    ssim_planes(&a, &b, opts.convention)
}

/// [`psnr`] and [`ssim`] together, preparing the planes once.
///
/// Fails as [`ssim`] does.
pub fn psnr_ssim(reference: &Image, test: &Image, opts: &MetricOptions) -> Result<Scores> {
    let (a, b) = prepare_pair(reference, test, opts)?;
    Ok(Scores {
        psnr: psnr_planes(&a, &b),
        ssim: ssim_planes(&a, &b, opts.convention)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BitDepth;

    /// Straightforward 2-D 'valid' SSIM, the BasicSR `_ssim` formula.
    fn naive_ssim(
        x: &[f64],
        y: &[f64],
        w: usize,
        h: usize,
        win: &[f64],
        k: usize,
        cov: f64,
    ) -> f64 {
        let (c1, c2) = ((K1 * PEAK).powi(2), (K2 * PEAK).powi(2));
        let mut total = 0.0;
        for r in 0..=h - k {
            for c in 0..=w - k {
                let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for i in 0..k {
                    for j in 0..k {
                        let wt = win[i] * win[j];
                        let (a, b) = (x[(r + i) * w + c + j], y[(r + i) * w + c + j]);
                        mx += wt * a;
                        my += wt * b;
                        xx += wt * a * a;
                        yy += wt * b * b;
                        xy += wt * a * b;
                    }
                }
                let (vx, vy, vxy) = (
                    cov * (xx - mx * mx),
                    cov * (yy - my * my),
                    cov * (xy - mx * my),
                );
                total += ((2.0 * mx * my + c1) * (2.0 * vxy + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2));
            }
        }
        total / ((w - k + 1) * (h - k + 1)) as f64
    }

    fn pattern(w: usize, h: usize, seed: usize) -> Vec<f64> {
        (0..w * h)
            .map(|i| {
                ((i * 7919 + seed * 104729) % 256) as f64 * 0.5
                    + ((i % w) as f64 * 0.3).sin() * 60.0
                    + 60.0
            })
            .collect()
    }

    #[test]
    fn separable_tiled_matches_naive() {
        // Sizes spanning several tiles, with ragged edges.
        for &(w, h) in &[(23, 17), (530, 140)] {
            let x = pattern(w, h, 1);
            let y = pattern(w, h, 2);
            let g = gaussian_kernel();
            let fast = ssim_valid(&x, &y, w, h, &g, 1.0);
            let slow = naive_ssim(&x, &y, w, h, &g, GAUSS_TAPS, 1.0);
            assert!((fast - slow).abs() < 1e-12, "{w}x{h}: {fast} vs {slow}");
            let u = [1.0 / 7.0; 7];
            let fast = ssim_valid(&x, &y, w, h, &u, 49.0 / 48.0);
            let slow = naive_ssim(&x, &y, w, h, &u, 7, 49.0 / 48.0);
            assert!((fast - slow).abs() < 1e-12, "{w}x{h}: {fast} vs {slow}");
        }
    }

    #[test]
    fn gaussian_kernel_matches_opencv() {
        // cv2.getGaussianKernel(11, 1.5)
        let g = gaussian_kernel();
        assert!((g[5] - 0.266_011_724_861_794_3).abs() < 1e-15);
        assert!((g[0] - 0.001_028_380_084_479_109_7).abs() < 1e-15);
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    fn gray(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Image {
        let data = (0..w * h)
            .map(|i| f32::from(f(i % w, i / w)) / 255.0)
            .collect();
        Image::from_planar(w, h, 1, BitDepth::U8, data).unwrap()
    }

    #[test]
    fn identical_images() {
        let a = gray(20, 20, |x, y| (x * 10 + y * 3) as u8);
        for convention in [Convention::Paper, Convention::Skimage] {
            let opts = MetricOptions {
                convention,
                ..Default::default()
            };
            let s = psnr_ssim(&a, &a, &opts).unwrap();
            assert_eq!(s.psnr, f64::INFINITY);
            assert!((s.ssim - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn psnr_known_value() {
        let a = gray(4, 4, |_, _| 100);
        let b = gray(4, 4, |x, _| if x == 0 { 110 } else { 100 });
        // MSE = 100 * 4 / 16 = 25
        let p = psnr(&a, &b, &MetricOptions::default()).unwrap();
        assert!((p - 10.0 * (255.0f64 * 255.0 / 25.0).log10()).abs() < 1e-12);
    }

    #[test]
    fn errors() {
        let a = gray(20, 20, |x, _| x as u8);
        let b = gray(20, 21, |x, _| x as u8);
        assert!(matches!(
            psnr(&a, &b, &MetricOptions::default()),
            Err(Error::ShapeMismatch { .. })
        ));
        let crop = MetricOptions {
            crop_border: 10,
            ..Default::default()
        };
        assert!(matches!(
            psnr(&a, &a, &crop),
            Err(Error::InvalidParameter {
                name: "crop_border",
                ..
            })
        ));
        let crop = MetricOptions {
            crop_border: 5,
            ..Default::default()
        };
        // 10x10 left: fine for PSNR, too small for the 11x11 window.
        assert!(psnr(&a, &a, &crop).is_ok());
        assert!(ssim(&a, &a, &crop).is_err());
        let sk = MetricOptions {
            convention: Convention::Skimage,
            ..crop
        };
        assert!(ssim(&a, &a, &sk).is_ok());
    }

    #[test]
    fn thread_count_does_not_change_result() {
        let (w, h) = (700, 300);
        let x = pattern(w, h, 3);
        let y = pattern(w, h, 4);
        let g = gaussian_kernel();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let a = one.install(|| ssim_valid(&x, &y, w, h, &g, 1.0));
        let b = two.install(|| ssim_valid(&x, &y, w, h, &g, 1.0));
        assert_eq!(a.to_bits(), b.to_bits());
    }
}
