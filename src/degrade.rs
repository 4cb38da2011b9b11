//! Low-resolution image generation: `modcrop` and the BI / BD / DN
//! degradations of the super-resolution literature.
//!
//! The three presets follow the MATLAB scripts of RDN (Zhang et al.,
//! "Residual Dense Network for Image Super-Resolution", CVPR 2018,
//! <https://github.com/yulunzhang/RDN>, `RDN_TrainCode/Prepare_TrainData/
//! Prepare_TrainData_HR_LR_{BI,BD,DN}.m`), which later papers (RCAN, SAN,
//! ...) reuse:
//!
//! * **BI**: `imresize(HR, 1/scale, 'bicubic')` — see [`crate::resample`].
//! * **BD**: `imfilter(HR, fspecial('gaussian', 7, 1.6), 'replicate')`, then
//!   `imresize(blurred, 1/scale, 'nearest')`. RDN's script downsamples with
//!   MATLAB's nearest-neighbour `imresize`, which (no antialiasing for
//!   `'nearest'`) keeps input sample `floor((i + 0.5) * scale)` (0-based)
//!   for output `i`: the pixel at or just after the centre of each
//!   `scale x scale` block (offsets 1, 1, 2 for scales 2, 3, 4), not the
//!   block's top-left pixel. The blurred image is rounded to the input's
//!   integer depth first, as `imfilter` on `uint8` returns `uint8`.
//! * **DN**: BI, then additive Gaussian noise of standard deviation 30 on
//!   the 0..255 scale, rounded and saturated to the input's depth
//!   (`uint8(single(LR) + single(30 * randn(size(LR))))`). srkit draws the
//!   noise from a seeded ChaCha8 generator (Box–Muller), so results are
//!   reproducible but not MATLAB's `randn` stream.

use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::resample::{resize, Kernel, ResizeOptions, ResizeTarget};

/// Side of RDN's BD Gaussian kernel (`fspecial('gaussian', 7, 1.6)`).
pub const BD_KERNEL_SIZE: usize = 7;
/// Standard deviation of RDN's BD Gaussian kernel, in HR pixels.
pub const BD_SIGMA: f64 = 1.6;
/// Standard deviation of RDN's DN noise, measured in range 255.
pub const DN_SIGMA_255: f64 = 30.0;

/// Crops `img` at its top-left corner to the largest size that is a multiple
/// of `scale` in both dimensions (MATLAB `modcrop`, as in the SR papers'
/// evaluation scripts).
///
/// Fails if `scale` is 0 or larger than the image's width or height.
pub fn modcrop(img: &Image, scale: usize) -> Result<Image> {
    if scale == 0 {
        return Err(Error::invalid("scale", "0 (must be at least 1)"));
    }
    let (w, h) = (img.width(), img.height());
    if w < scale || h < scale {
        return Err(Error::invalid(
            "scale",
            format!("{scale} is larger than the {w}x{h} image"),
        ));
    }
    img.crop(0, 0, w - w % scale, h - h % scale)
}

/// A degradation model producing an LR image from an HR one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Degradation {
    /// "BI": MATLAB bicubic downscaling (`imresize(HR, 1/scale)`).
    Bicubic,
    /// "BD": 7x7 Gaussian blur (sigma 1.6), then nearest downsampling.
    BlurDown,
    /// "DN": bicubic downscaling, then Gaussian noise (sigma 30 / 255).
    Noise,
}

impl FromStr for Degradation {
    type Err = Error;

    /// Parses `bi`, `bd` or `dn` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bi" => Ok(Degradation::Bicubic),
            "bd" => Ok(Degradation::BlurDown),
            "dn" => Ok(Degradation::Noise),
            _ => Err(Error::invalid(
                "degradation",
                format!("{s:?} (expected bi, bd or dn)"),
            )),
        }
    }
}

/// Produces the LR image of `hr` under `kind` for an integer `scale`.
///
/// `hr` is used as given (call [`modcrop`] first for the papers' protocol);
/// the output is `ceil(size / scale)` and keeps `hr`'s channels and bit
/// depth, rounded to that depth. `seed` drives the DN noise and is ignored
/// by BI and BD.
///
/// Fails if `scale` is 0.
pub fn degrade(hr: &Image, scale: usize, kind: Degradation, seed: u64) -> Result<Image> {
    if scale == 0 {
        return Err(Error::invalid("scale", "0 (must be at least 1)"));
    }
    let inv = ResizeTarget::Scale(1.0 / scale as f64);
    match kind {
        Degradation::Bicubic => resize(hr, inv, &ResizeOptions::default()),
        Degradation::BlurDown => {
            let blurred = gaussian_blur_replicate(hr, BD_KERNEL_SIZE, BD_SIGMA);
            let nearest = ResizeOptions {
                kernel: Kernel::Nearest,
                antialias: false,
                ..ResizeOptions::default()
            };
            resize(&blurred, inv, &nearest)
        }
        Degradation::Noise => {
            let mut lr = resize(hr, inv, &ResizeOptions::default())?;
            add_gaussian_noise(&mut lr, DN_SIGMA_255 / 255.0, seed);
            Ok(lr)
        }
    }
}

/// MATLAB `fspecial('gaussian', size, sigma)`: `exp(-(x² + y²) / (2σ²))` on
/// the centred `size x size` grid, values below `eps * max` zeroed, then
/// normalised to sum 1. Row-major.
fn fspecial_gaussian(size: usize, sigma: f64) -> Vec<f64> {
    let half = (size as f64 - 1.0) / 2.0;
    let mut h: Vec<f64> = (0..size * size)
        .map(|i| {
            let x = (i % size) as f64 - half;
            let y = (i / size) as f64 - half;
            (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let max = h.iter().copied().fold(0.0, f64::max);
    for v in &mut h {
        if *v < f64::EPSILON * max {
            *v = 0.0;
        }
    }
    // MATLAB's sum(h(:)) runs down the columns; the kernel is symmetric, so
    // the column-major order is the transposed row-major one.
    let mut sum = 0.0;
    for x in 0..size {
        for y in 0..size {
            sum += h[y * size + x];
        }
    }
    if sum != 0.0 {
        for v in &mut h {
            *v /= sum;
        }
    }
    h
}

/// MATLAB `imfilter(img, fspecial('gaussian', size, sigma), 'replicate')`:
/// 2-D correlation in `f64` with edge-clamped taps, then rounded to the
/// image's depth (integer classes stay integer in `imfilter`).
fn gaussian_blur_replicate(img: &Image, size: usize, sigma: f64) -> Image {
    let k = fspecial_gaussian(size, sigma);
    let half = (size / 2) as isize;
    let (w, h) = (img.width(), img.height());
    let depth = img.depth();
    let unit = depth.max_value().unwrap_or(1.0);
    let mut out = img.clone();
    for c in 0..img.channels() {
        let src: Vec<f64> = img
            .plane(c)
            .iter()
            .map(|&v| {
                let u = f64::from(v) * unit;
                if depth.max_value().is_some() {
                    u.round()
                } else {
                    u
                }
            })
            .collect();
        let dst = out.plane_mut(c);
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for ky in 0..size {
                    let sy = (y as isize + ky as isize - half).clamp(0, h as isize - 1) as usize;
                    for kx in 0..size {
                        let sx =
                            (x as isize + kx as isize - half).clamp(0, w as isize - 1) as usize;
                        acc += k[ky * size + kx] * src[sy * w + sx];
                    }
                }
                dst[y * w + x] = depth.quantize(acc / unit) as f32;
            }
        }
    }
    out
}

/// Adds `N(0, sigma²)` noise (in nominal `[0, 1]` units) to every sample
/// from a ChaCha8 stream seeded with `seed` (Box–Muller, both outputs used,
/// planar order), then rounds and saturates integer depths. Float images are
/// left unclipped.
fn add_gaussian_noise(img: &mut Image, sigma: f64, seed: u64) {
    let depth = img.depth();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut spare: Option<f64> = None;
    for v in img.data_mut() {
        let z = match spare.take() {
            Some(z) => z,
            None => {
                // u1 in (0, 1] keeps ln finite.
                let u1: f64 = 1.0 - rng.gen::<f64>();
                let u2: f64 = rng.gen::<f64>();
                let r = (-2.0 * u1.ln()).sqrt();
                let t = 2.0 * std::f64::consts::PI * u2;
                spare = Some(r * t.sin());
                r * t.cos()
            }
        };
        *v = depth.quantize(f64::from(*v) + sigma * z) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BitDepth;

    fn ramp(w: usize, h: usize, c: usize) -> Image {
        let data = (0..w * h * c)
            .map(|i| ((i * 31 + i / w * 7) % 256) as f32 / 255.0)
            .collect();
        Image::from_planar(w, h, c, BitDepth::U8, data).unwrap()
    }

    #[test]
    fn modcrop_crops_top_left() {
        let img = ramp(10, 7, 3);
        let m = modcrop(&img, 3).unwrap();
        assert_eq!((m.width(), m.height(), m.channels()), (9, 6, 3));
        assert_eq!(m, img.crop(0, 0, 9, 6).unwrap());
        assert_eq!(modcrop(&img, 1).unwrap(), img);
        assert!(modcrop(&img, 0).is_err());
        assert!(modcrop(&img, 8).is_err());
    }

    #[test]
    fn parse_degradation() {
        assert_eq!("bi".parse::<Degradation>().unwrap(), Degradation::Bicubic);
        assert_eq!("BD".parse::<Degradation>().unwrap(), Degradation::BlurDown);
        assert_eq!("dn".parse::<Degradation>().unwrap(), Degradation::Noise);
        assert!("x".parse::<Degradation>().is_err());
    }

    #[test]
    fn bi_is_matlab_bicubic() {
        let hr = ramp(12, 9, 3);
        let lr = degrade(&hr, 3, Degradation::Bicubic, 0).unwrap();
        assert_eq!((lr.width(), lr.height()), (4, 3));
        assert_eq!(
            lr,
            crate::resample::imresize_bicubic(&hr, 1.0 / 3.0).unwrap()
        );
        assert!(degrade(&hr, 0, Degradation::Bicubic, 0).is_err());
    }

    #[test]
    fn gaussian_kernel_matches_fspecial() {
        let k = fspecial_gaussian(7, 1.6);
        let sum: f64 = k.iter().sum();
        assert!((sum - 1.0).abs() < 1e-12);
        // Centre value of MATLAB fspecial('gaussian', 7, 1.6): 0.065556.
        assert!((k[24] - 0.065556).abs() < 1e-6, "{}", k[24]);
        assert_eq!(k[0], k[48]);
        assert_eq!(k[1], k[7]);
    }

    #[test]
    fn bd_blurs_then_picks_matlab_nearest() {
        // Constant image: unchanged by the blur.
        let flat = Image::from_planar(9, 6, 1, BitDepth::U8, vec![100.0 / 255.0; 54]).unwrap();
        let lr = degrade(&flat, 3, Degradation::BlurDown, 0).unwrap();
        assert_eq!((lr.width(), lr.height()), (3, 2));
        assert!(lr.data().iter().all(|&v| v == 100.0 / 255.0));
        // A single bright pixel at (4, 1): blurred then sampled at x in
        // {1, 4, 7}, y in {1, 4} -> the peak lands on LR (1, 0).
        let mut data = vec![0.0f32; 54];
        data[9 + 4] = 1.0;
        let dot = Image::from_planar(9, 6, 1, BitDepth::U8, data).unwrap();
        let lr = degrade(&dot, 3, Degradation::BlurDown, 0).unwrap();
        let blurred = gaussian_blur_replicate(&dot, 7, 1.6);
        assert_eq!(lr.get(1, 0, 0), blurred.get(4, 1, 0));
        assert_eq!(lr.get(0, 1, 0), blurred.get(1, 4, 0));
        let peak = (255.0 * fspecial_gaussian(7, 1.6)[24]).round() / 255.0;
        assert_eq!(lr.get(1, 0, 0), peak as f32);
    }

    #[test]
    fn dn_is_seeded_noise_with_sigma_30() {
        let hr = Image::from_planar(64, 64, 1, BitDepth::U8, vec![128.0 / 255.0; 4096]).unwrap();
        let a = degrade(&hr, 2, Degradation::Noise, 7).unwrap();
        let b = degrade(&hr, 2, Degradation::Noise, 7).unwrap();
        let c = degrade(&hr, 2, Degradation::Noise, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.width(), a.height(), a.depth()), (32, 32, BitDepth::U8));
        let vals: Vec<f64> = a.data().iter().map(|&v| f64::from(v) * 255.0).collect();
        assert!(vals.iter().all(|v| (v - v.round()).abs() < 1e-3));
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - 128.0).abs() < 3.0, "mean {mean}");
        assert!((sd - 30.0).abs() < 3.0, "sd {sd}");
    }
}
