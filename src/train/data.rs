//! Training data: (input, target) patches made exactly the way the
//! benchmark makes its test inputs.
//!
//! Each HR image is cropped to a multiple of the scale and degraded with the
//! BI model (srkit's MATLAB-exact bicubic downscale, rounded to 8-bit); for
//! networks fed the upscaled image (SRCNN, VDSR) it is bicubic-upscaled
//! back — the same steps [`crate::infer`] and [`crate::eval`] take, so the
//! network trains on the input distribution it is tested on. Inputs and
//! targets are in the network's colour space ([`NetworkIo::color`]): BT.601
//! Y, or RGB (a grayscale image repeated in three channels). This is done
//! once per image (degrading a random crop instead would change the pixels
//! near the crop's edges); random crops, flips and 90° rotations are then
//! drawn per step.
//!
//! Optionally each HR image also enters at smaller sizes
//! ([`prepare_images`]' `downscales`): DRRN's and MemNet's scale
//! augmentation of the 291 set, which shows the network the same scenes
//! with their detail at other frequencies.
//!
//! Sampling is a pure function of `(seed, step)`: the batch of step `k` is
//! drawn from a ChaCha8 stream numbered `k`, so a resumed run draws exactly
//! the batches the uninterrupted run would have, with no RNG state to save.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::color::{self, GrayMode};
use crate::degrade::{self, Degradation};
use crate::error::{Error, Result};
use crate::eval::Dataset;
use crate::image::Image;
use crate::io::{self, ReadOptions};
use crate::models::{ColorSpace, NetworkIo};
use crate::nn::Tensor;
use crate::resample::imresize_bicubic;
use crate::upscale::{Interpolation, Upscaler};

/// One training image: network input and target planes in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct TrainImage {
    /// Width of the input in pixels.
    pub width: usize,
    /// Height of the input in pixels.
    pub height: usize,
    /// Channels of input and target (1 for Y, 3 for RGB).
    pub channels: usize,
    /// Target pixels per input pixel along each axis (1 when the input is
    /// the upscaled image, else the scale).
    pub factor: usize,
    /// Degraded input, planar `[C, H, W]`.
    pub input: Vec<f32>,
    /// Ground truth, planar `[C, H f, W f]`.
    pub target: Vec<f32>,
}

/// The planes a network of colour space `color` sees of `img`.
fn network_planes(img: &Image, color: ColorSpace) -> Result<Vec<f32>> {
    match color {
        ColorSpace::Y => Ok(color::luma_255(img, GrayMode::Native)?
            .into_iter()
            .map(|v| (v / 255.0) as f32)
            .collect()),
        ColorSpace::Rgb if img.color_channels() == 1 => Ok(img.plane(0).repeat(3)),
        ColorSpace::Rgb => Ok(img.without_alpha().into_data()),
    }
}

/// Loads and prepares every image of the given folders for `scale` and a
/// network with I/O `io`.
///
/// Each image enters once as it is and once per factor of `downscales`,
/// first bicubic-downscaled by that factor (MATLAB `imresize`, rounded to
/// the image's bit depth, as the augmented sets were written to disk) and
/// then degraded like the others. Factors must lie in (0, 1).
pub fn prepare_images(
    folders: &[PathBuf],
    scale: usize,
    io: &NetworkIo,
    downscales: &[f64],
) -> Result<Vec<TrainImage>> {
    if let Some(bad) = downscales.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
        return Err(Error::invalid(
            "downscale-aug",
            format!("{bad} (factors must lie strictly between 0 and 1)"),
        ));
    }
    let mut paths = Vec::new();
    for f in folders {
        paths.extend(Dataset::from_dir(f)?.images);
    }
    if io.upscale.is_some_and(|s| s != scale) {
        return Err(Error::invalid(
            "scale",
            format!("x{scale} for a network that upscales x{}", io.factor()),
        ));
    }
    // Each file is read once; its downscaled copies are made from that read.
    let per_file = paths
        .par_iter()
        .map(|path| {
            let hr = io::read_image(path, &ReadOptions::default())?.without_alpha();
            let mut prepared = Vec::with_capacity(1 + downscales.len());
            for &f in downscales {
                prepared.push(prepare_image(&imresize_bicubic(&hr, f)?, scale, io)?);
            }
            prepared.insert(0, prepare_image(&hr, scale, io)?);
            Ok(prepared)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(per_file.into_iter().flatten().collect())
}

/// One HR image's network input and target: cut to a multiple of `scale`,
/// BI-degraded, and bicubic-upscaled back for networks fed the upscaled
/// image.
fn prepare_image(hr: &Image, scale: usize, io: &NetworkIo) -> Result<TrainImage> {
    let hr = degrade::modcrop(hr, scale)?;
    let lr = degrade::degrade(&hr, scale, Degradation::Bicubic, 0)?;
    let input = match io.upscale {
        Some(_) => lr,
        None => Interpolation::bicubic().upscale(&lr, scale)?,
    };
    Ok(TrainImage {
        width: input.width(),
        height: input.height(),
        channels: io.color.channels(),
        factor: io.factor(),
        input: network_planes(&input, io.color)?,
        target: network_planes(&hr, io.color)?,
    })
}

/// Draws batches of patches from prepared images.
#[derive(Debug, Clone)]
pub struct PatchSampler {
    images: std::sync::Arc<Vec<TrainImage>>,
    /// Cumulative count of patch positions, to pick images by area.
    cumulative: Vec<u64>,
    /// Input patch side.
    pub patch: usize,
    /// Pixels the network loses on each side (target patch = patch − 2·crop).
    pub crop: usize,
    /// Patches per batch.
    pub batch: usize,
    /// Base seed.
    pub seed: u64,
}

impl PatchSampler {
    /// A sampler of `batch` patches of `patch x patch` input pixels. Images
    /// smaller than a patch are skipped; fails if none is large enough.
    pub fn new(
        images: Vec<TrainImage>,
        patch: usize,
        crop: usize,
        batch: usize,
        seed: u64,
    ) -> Result<Self> {
        if patch <= 2 * crop {
            return Err(Error::invalid(
                "patch",
                format!("{patch} leaves no output after the network's {crop}-pixel border"),
            ));
        }
        if batch == 0 {
            return Err(Error::invalid("batch", "must be at least 1"));
        }
        let mut cumulative = Vec::with_capacity(images.len());
        let mut total = 0u64;
        for im in &images {
            if im.width >= patch && im.height >= patch {
                total += ((im.width - patch + 1) * (im.height - patch + 1)) as u64;
            }
            cumulative.push(total);
        }
        if total == 0 {
            return Err(Error::invalid(
                "patch",
                format!("no training image is at least {patch}x{patch}"),
            ));
        }
        Ok(PatchSampler {
            images: std::sync::Arc::new(images),
            cumulative,
            patch,
            crop,
            batch,
            seed,
        })
    }

    /// Number of prepared images.
    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    /// The batch of step `step`: input `[B, C, P, P]`, target `[B, C, O,
    /// O]` with `O = (P − 2·crop)·f`.
    pub fn batch(&self, step: u64) -> Result<(Tensor, Tensor)> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(step);
        let (p, c) = (self.patch, self.crop);
        let (channels, f) = self
            .images
            .first()
            .map_or((1, 1), |im| (im.channels, im.factor));
        let o = (p - 2 * c) * f;
        let mut input = Vec::with_capacity(self.batch * channels * p * p);
        let mut target = Vec::with_capacity(self.batch * channels * o * o);
        let total = *self.cumulative.last().unwrap_or(&0);
        for _ in 0..self.batch {
            let r = rng.gen_range(0..total);
            let idx = self.cumulative.partition_point(|&c| c <= r);
            let im = &self.images[idx];
            let x0 = rng.gen_range(0..=im.width - p);
            let y0 = rng.gen_range(0..=im.height - p);
            let transform = rng.gen_range(0..8u8);
            let (w, h) = (im.width, im.height);
            for plane in im.input.chunks_exact(w * h) {
                push_patch(&mut input, plane, w, x0, y0, p, transform);
            }
            for plane in im.target.chunks_exact(w * h * f * f) {
                push_patch(
                    &mut target,
                    plane,
                    w * f,
                    (x0 + c) * f,
                    (y0 + c) * f,
                    o,
                    transform,
                );
            }
        }
        Ok((
            Tensor::new(&[self.batch, channels, p, p], input)?,
            Tensor::new(&[self.batch, channels, o, o], target)?,
        ))
    }

    /// Starts a background thread that produces the batches of steps
    /// `start..end` in order, a few ahead, so training never waits on data.
    pub fn spawn(&self, start: u64, end: u64) -> Receiver<Result<(Tensor, Tensor)>> {
        let (tx, rx) = sync_channel(4);
        let sampler = self.clone();
        std::thread::spawn(move || {
            for step in start..end {
                if tx.send(sampler.batch(step)).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// Appends the `n x n` square at (`x0`, `y0`) of a row-major plane, under
/// one of the 8 symmetries of the square (`t`: bit 0 = transpose, bit 1 =
/// flip rows, bit 2 = flip columns).
fn push_patch(
    out: &mut Vec<f32>,
    plane: &[f32],
    width: usize,
    x0: usize,
    y0: usize,
    n: usize,
    t: u8,
) {
    for i in 0..n {
        for j in 0..n {
            let (mut r, mut c) = if t & 1 == 1 { (j, i) } else { (i, j) };
            if t & 2 == 2 {
                r = n - 1 - r;
            }
            if t & 4 == 4 {
                c = n - 1 - c;
            }
            out.push(plane[(y0 + r) * width + x0 + c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize) -> TrainImage {
        let target: Vec<f32> = (0..w * h).map(|i| i as f32).collect();
        TrainImage {
            width: w,
            height: h,
            channels: 1,
            factor: 1,
            input: target.iter().map(|v| v + 0.5).collect(),
            target,
        }
    }

    #[test]
    fn batches_are_reproducible_and_aligned() {
        let s = PatchSampler::new(vec![image(40, 30), image(5, 5)], 9, 2, 8, 42).unwrap();
        let (a, ta) = s.batch(17).unwrap();
        let (b, _) = s.batch(17).unwrap();
        let (c, _) = s.batch(18).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ta.shape(), &[8, 1, 5, 5]);
        // The target is the centre of the input under the same transform.
        for k in 0..8 {
            for i in 0..5 {
                for j in 0..5 {
                    let inp = a.data()[k * 81 + (i + 2) * 9 + j + 2];
                    let tgt = ta.data()[k * 25 + i * 5 + j];
                    assert_eq!(inp, tgt + 0.5);
                }
            }
        }
        assert!(PatchSampler::new(vec![image(5, 5)], 9, 2, 8, 0).is_err());
        assert!(PatchSampler::new(vec![image(40, 30)], 4, 2, 8, 0).is_err());
    }

    #[test]
    fn all_eight_symmetries_are_distinct() {
        let im = image(4, 4);
        let mut seen = std::collections::HashSet::new();
        for t in 0..8 {
            let mut v = Vec::new();
            push_patch(&mut v, &im.target, 4, 0, 0, 3, t);
            seen.insert(v.iter().map(|x| *x as i32).collect::<Vec<_>>());
        }
        assert_eq!(seen.len(), 8);
    }
}
