//! Running a learned model on a whole image: colour handling and tiled
//! inference with bounded memory.
//!
//! A Y-channel model ([`crate::models::ModelMeta::color`] = `"y"`, SRCNN's
//! convention) upscales an image as the papers do: bicubic to the target
//! size, the network on the Y channel of BT.601 YCbCr, Cb and Cr (and alpha)
//! kept from bicubic, back to RGB, rounded to the input's bit depth. A
//! grayscale image is its own Y (the convention of [`crate::metrics`]).
//!
//! **Tiling.** The network's convolutions are valid; the plane is padded by
//! the receptive radius `r` with edge replication, and cut into output
//! tiles of `tile x tile` whose inputs overlap by `2r`. Every output pixel is
//! computed from exactly the inputs whole-image inference would use, so
//! tiled output equals whole-image output (up to float summation order),
//! while activations stay bounded by the tile size.

use crate::color;
use crate::error::{Error, Result};
use crate::image::{BitDepth, Image};
use crate::models::Model;
use crate::nn::{Tensor, CPU};
use crate::upscale::{Interpolation, Upscaler};

/// Default output tile side: activations of a 64-channel layer on a
/// 512 + 16 pixel tile are about 70 MB, and the 2r overlap costs ~6 %.
pub const DEFAULT_TILE: usize = 512;

/// Applies `net` (valid convolutions shrinking by `radius` on each side) to
/// a `width x height` plane, tile by tile, with replicate padding.
pub fn run_tiled(
    plane: &[f32],
    width: usize,
    height: usize,
    radius: usize,
    tile: usize,
    net: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    if tile == 0 {
        return Err(Error::invalid("tile", "must be at least 1"));
    }
    if plane.len() != width * height {
        return Err(Error::invalid("plane", "length does not match its size"));
    }
    let pw = width + 2 * radius;
    let padded: Vec<f32> = (0..height + 2 * radius)
        .flat_map(|py| {
            let y = py.saturating_sub(radius).min(height - 1);
            (0..pw).map(move |px| plane[y * width + px.saturating_sub(radius).min(width - 1)])
        })
        .collect();
    let mut out = vec![0.0f32; width * height];
    for ty in (0..height).step_by(tile) {
        let th = tile.min(height - ty);
        for tx in (0..width).step_by(tile) {
            let tw = tile.min(width - tx);
            let (iw, ih) = (tw + 2 * radius, th + 2 * radius);
            let mut input = Vec::with_capacity(iw * ih);
            for y in ty..ty + ih {
                input.extend_from_slice(&padded[y * pw + tx..y * pw + tx + iw]);
            }
            let y = net(&Tensor::new(&[1, 1, ih, iw], input)?)?;
            if y.shape() != [1, 1, th, tw] {
                return Err(Error::Model(format!(
                    "network returned {:?} for a {tw}x{th} tile",
                    y.shape()
                )));
            }
            for (row, src) in y.data().chunks_exact(tw).enumerate() {
                let start = (ty + row) * width + tx;
                out[start..start + tw].copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// A learned model as an [`Upscaler`].
#[derive(Debug, Clone)]
pub struct ModelUpscaler {
    /// The model.
    pub model: Model,
    /// Name in tables (`srcnn-x3`).
    pub name: String,
    /// Output tile side for inference.
    pub tile: usize,
}

impl ModelUpscaler {
    /// Wraps a model with the default tile size.
    pub fn new(model: Model, name: impl Into<String>) -> Self {
        ModelUpscaler {
            model,
            name: name.into(),
            tile: DEFAULT_TILE,
        }
    }

    /// Runs the network on one `[0, 1]` Y plane of the upscaled size.
    pub fn enhance_luma(&self, y: &[f32], width: usize, height: usize) -> Result<Vec<f32>> {
        let m = &self.model;
        run_tiled(
            y,
            width,
            height,
            m.network.receptive_radius(),
            self.tile,
            &|x| m.network.infer(&CPU, &m.params, x),
        )
    }
}

impl Upscaler for ModelUpscaler {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn supports_scale(&self, scale: usize) -> bool {
        self.model.supports_scale(scale)
    }

    fn upscale(&self, lr: &Image, scale: usize) -> Result<Image> {
        if !self.supports_scale(scale) {
            return Err(Error::invalid(
                "scale",
                format!(
                    "model {} is trained for x{:?}, not x{scale}",
                    self.name, self.model.meta.scales
                ),
            ));
        }
        let depth = lr.depth();
        let bicubic = Interpolation::bicubic().upscale(lr, scale)?;
        let (w, h) = (bicubic.width(), bicubic.height());
        let alpha = bicubic
            .has_alpha()
            .then(|| bicubic.plane(bicubic.channels() - 1).to_vec());
        let mut out = if bicubic.color_channels() == 1 {
            let y = self.enhance_luma(bicubic.plane(0), w, h)?;
            Image::from_planes(w, h, BitDepth::F32, &[&y])?
        } else {
            let mut ycc = color::rgb_to_ycbcr(&bicubic.without_alpha())?;
            let y = self.enhance_luma(ycc.plane(0), w, h)?;
            ycc.plane_mut(0).copy_from_slice(&y);
            color::ycbcr_to_rgb(&ycc)?.without_alpha()
        };
        if let Some(a) = alpha {
            let planes: Vec<&[f32]> = out.planes().chain(std::iter::once(a.as_slice())).collect();
            out = Image::from_planes(w, h, BitDepth::F32, &planes)?;
        }
        out.set_depth(depth);
        out.quantize();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::SrcnnConfig;

    fn model() -> Model {
        Model::new(
            "srcnn",
            serde_json::to_value(SrcnnConfig::default()).unwrap(),
            vec![2],
            3,
        )
        .unwrap()
    }

    #[test]
    fn tiled_equals_whole_image() {
        let m = ModelUpscaler::new(model(), "t");
        let (w, h) = (61, 47);
        let plane: Vec<f32> = (0..w * h)
            .map(|i| ((i * 37 % 101) as f32 / 100.0).sin().abs())
            .collect();
        let whole = {
            let mut u = m.clone();
            u.tile = usize::MAX / 4;
            u.enhance_luma(&plane, w, h).unwrap()
        };
        for tile in [1, 7, 16, 30] {
            let mut u = m.clone();
            u.tile = tile;
            let tiled = u.enhance_luma(&plane, w, h).unwrap();
            let max = whole
                .iter()
                .zip(&tiled)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(max <= 1e-5, "tile {tile}: max abs diff {max}");
        }
    }

    #[test]
    fn colour_alpha_and_depth_are_kept() {
        let m = ModelUpscaler::new(model(), "t");
        let data: Vec<f32> = (0..4 * 9 * 7).map(|i| (i % 13) as f32 / 13.0).collect();
        let lr = Image::from_planar(9, 7, 4, BitDepth::U16, data).unwrap();
        let sr = m.upscale(&lr, 2).unwrap();
        assert_eq!((sr.width(), sr.height(), sr.channels()), (18, 14, 4));
        assert_eq!(sr.depth(), BitDepth::U16);
        let bic = Interpolation::bicubic().upscale(&lr, 2).unwrap();
        assert_eq!(sr.plane(3), bic.plane(3), "alpha is bicubic");
        assert!(m.upscale(&lr, 3).is_err());
    }
}
