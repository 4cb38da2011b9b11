//! Running a learned model on a whole image: colour handling and tiled
//! inference with bounded memory.
//!
//! **Colour.** A Y-channel model ([`ColorSpace::Y`]: SRCNN, VDSR, FSRCNN)
//! upscales an image as the papers do: the network on the Y channel of
//! BT.601 YCbCr, Cb and Cr kept from bicubic, back to RGB, rounded to the
//! input's bit depth; a grayscale image is its own Y (the convention of
//! [`crate::metrics`]). An RGB model sees the three colour channels; a
//! grayscale image is fed as three equal channels and the result turned
//! back into one with `rgb2gray`'s weights. Alpha is always bicubic.
//!
//! **Input grid.** Networks fed the bicubic-upscaled image
//! ([`NetworkIo::upscale`] = `None`) run on the HR grid; the others run on
//! the LR image and return `scale` times as many pixels.
//!
//! **Tiling.** The input is padded by the network's
//! [`shrink`](NetworkIo::shrink) with edge replication (valid convolutions,
//! SRCNN) and cut into tiles of `tile x tile` input pixels, each read with
//! [`context`](NetworkIo::context) extra pixels on every side where the
//! image has them. At the image border a tile sees exactly what the whole
//! image would (the network's own zero padding), so when the context
//! covers the receptive field ([`NetworkIo::exact_tiling`]) tiled output
//! equals whole-image output up to float summation order, while activations
//! stay bounded by the tile size.

use crate::color;
use crate::error::{Error, Result};
use crate::image::{BitDepth, Image};
use crate::models::{ColorSpace, Model, NetworkIo};
use crate::nn::{Tensor, CPU};
use crate::upscale::{Interpolation, Upscaler};

/// Default tile side in *output* pixels: activations of a 64-channel layer
/// on a 512 x 512 tile are 67 MB. Networks that upscale internally get
/// `DEFAULT_TILE / scale` input pixels, so their full-resolution layers stay
/// at this size.
pub const DEFAULT_TILE: usize = 512;

/// Called after each tile with (tiles done, tiles in all).
pub type TileProgress = dyn Fn(usize, usize) + Send + Sync;

/// Applies `net` to `channels` planes of `width x height` (planar, `[C, H,
/// W]`) tile by tile, as the module docs describe; `tile` is in input
/// pixels. Returns the output planes (`[C', H f, W f]`, `f` =
/// [`NetworkIo::factor`]) and their channel count.
#[allow(clippy::too_many_arguments)]
pub fn run_tiled(
    planes: &[f32],
    channels: usize,
    width: usize,
    height: usize,
    io: &NetworkIo,
    tile: usize,
    net: &dyn Fn(&Tensor) -> Result<Tensor>,
    progress: Option<&TileProgress>,
) -> Result<(Vec<f32>, usize)> {
    if tile == 0 {
        return Err(Error::invalid("tile", "must be at least 1"));
    }
    if width == 0 || height == 0 || planes.len() != channels * width * height {
        return Err(Error::invalid("planes", "length does not match their size"));
    }
    let (s, e, f) = (io.shrink, io.context, io.factor());
    let (pw, ph) = (width + 2 * s, height + 2 * s);
    let padded: std::borrow::Cow<[f32]> = if s == 0 {
        planes.into()
    } else {
        planes
            .chunks_exact(width * height)
            .flat_map(|plane| {
                (0..ph).flat_map(move |py| {
                    let y = py.saturating_sub(s).min(height - 1);
                    (0..pw).map(move |px| plane[y * width + px.saturating_sub(s).min(width - 1)])
                })
            })
            .collect::<Vec<f32>>()
            .into()
    };
    let (ow, oh) = (width * f, height * f);
    let mut out: Vec<f32> = Vec::new();
    let mut out_channels = 0;
    let tiles = height.div_ceil(tile) * width.div_ceil(tile);
    let mut done = 0;
    for ty in (0..height).step_by(tile) {
        let th = tile.min(height - ty);
        for tx in (0..width).step_by(tile) {
            let tw = tile.min(width - tx);
            // The tile's input in padded coordinates: its core plus up to
            // `e` pixels of context each side, plus the `s` pixels valid
            // convolutions consume.
            let (x0, y0) = (tx.saturating_sub(e), ty.saturating_sub(e));
            let x1 = (tx + tw + e).min(width) + 2 * s;
            let y1 = (ty + th + e).min(height) + 2 * s;
            let (iw, ih) = (x1 - x0, y1 - y0);
            // Networks that fold their input need sides that are multiples
            // of `m`: extend the tile by replicating its last row/column
            // and crop the surplus output.
            let m = io.multiple.max(1);
            let (pw_t, ph_t) = (iw.div_ceil(m) * m, ih.div_ceil(m) * m);
            let mut input = Vec::with_capacity(channels * pw_t * ph_t);
            for plane in padded.chunks_exact(pw * ph) {
                for y in y0..y0 + ph_t {
                    let row = &plane[y.min(y1 - 1) * pw..];
                    input.extend_from_slice(&row[x0..x1]);
                    input.extend(std::iter::repeat(row[x1 - 1]).take(pw_t - iw));
                }
            }
            let y = net(&Tensor::new(&[1, channels, ph_t, pw_t], input)?)?;
            let (rw, rh) = ((pw_t - 2 * s) * f, (ph_t - 2 * s) * f);
            let c = match y.shape() {
                &[1, c, h, w] if h == rh && w == rw && c > 0 => c,
                other => {
                    return Err(Error::Model(format!(
                        "network returned {other:?} for a {pw_t}x{ph_t} input tile, expected \
                         [1, C, {rh}, {rw}]"
                    )))
                }
            };
            if out.is_empty() {
                out_channels = c;
                out = vec![0.0; c * ow * oh];
            } else if c != out_channels {
                return Err(Error::Model("network output channels changed".into()));
            }
            let (cx, cy) = ((tx - x0) * f, (ty - y0) * f);
            for (src, dst) in y
                .data()
                .chunks_exact(rw * rh)
                .zip(out.chunks_exact_mut(ow * oh))
            {
                for row in 0..th * f {
                    let from = (cy + row) * rw + cx;
                    let to = (ty * f + row) * ow + tx * f;
                    dst[to..to + tw * f].copy_from_slice(&src[from..from + tw * f]);
                }
            }
            done += 1;
            if let Some(p) = progress {
                p(done, tiles);
            }
        }
    }
    Ok((out, out_channels))
}

/// A learned model as an [`Upscaler`].
#[derive(Clone)]
pub struct ModelUpscaler {
    /// The model.
    pub model: Model,
    /// Name in tables (`srcnn-x3`).
    pub name: String,
    /// Tile side in the network's input pixels.
    pub tile: usize,
    /// Told about every finished tile (a progress bar on long runs).
    pub progress: Option<std::sync::Arc<TileProgress>>,
}

impl std::fmt::Debug for ModelUpscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelUpscaler")
            .field("name", &self.name)
            .field("arch", &self.model.meta.arch)
            .field("tile", &self.tile)
            .finish_non_exhaustive()
    }
}

impl ModelUpscaler {
    /// Wraps a model with the default tile size (see [`DEFAULT_TILE`]).
    pub fn new(model: Model, name: impl Into<String>) -> Self {
        let tile = (DEFAULT_TILE / model.network.io().factor()).max(16);
        ModelUpscaler {
            model,
            name: name.into(),
            tile,
            progress: None,
        }
    }

    /// Runs the network on `channels` planes (`[C, H, W]`, values in
    /// `[0, 1]`) of the network's input grid; returns its output planes.
    pub fn run(
        &self,
        planes: &[f32],
        channels: usize,
        width: usize,
        height: usize,
    ) -> Result<Vec<f32>> {
        let m = &self.model;
        let io = m.network.io();
        if channels != io.color.channels() {
            return Err(Error::Model(format!(
                "{} takes {} channel(s), got {channels}",
                self.name,
                io.color.channels()
            )));
        }
        let (out, c) = run_tiled(
            planes,
            channels,
            width,
            height,
            &io,
            self.tile,
            &|x| m.network.infer(&CPU, &m.params, x),
            self.progress.as_deref(),
        )?;
        if c != channels {
            return Err(Error::Model(format!(
                "{} returned {c} channel(s), expected {channels}",
                self.name
            )));
        }
        Ok(out)
    }
}

/// `rgb2gray`'s weights (BT.601 luma, summing to 1).
const GRAY_WEIGHTS: [f32; 3] = [0.298_936, 0.587_043, 0.114_021];

impl Upscaler for ModelUpscaler {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn supports_scale(&self, scale: usize) -> bool {
        self.model.supports_scale(scale)
            && self.model.network.io().upscale.map_or(true, |s| s == scale)
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
        let io = self.model.network.io();
        let depth = lr.depth();
        let (w, h) = (lr.width() * scale, lr.height() * scale);
        let gray = lr.color_channels() == 1;
        // Bicubic is only needed as the network's input grid (SRCNN, VDSR)
        // or for the chroma of a Y network on a colour image; alpha is
        // upscaled on its own below (resampling is per channel).
        let bicubic = if io.upscale.is_none() || (io.color == ColorSpace::Y && !gray) {
            Some(Interpolation::bicubic().upscale(&lr.without_alpha(), scale)?)
        } else {
            None
        };
        // The grid the network reads: the bicubic image or the LR image.
        let input = match &bicubic {
            Some(b) if io.upscale.is_none() => b,
            _ => lr,
        };
        let (iw, ih) = (input.width(), input.height());
        let mut out = match (io.color, &bicubic) {
            (ColorSpace::Y, Some(bicubic)) if !gray => {
                let mut ycc = color::rgb_to_ycbcr(bicubic)?;
                let y = if io.upscale.is_some() {
                    let lr_ycc = color::rgb_to_ycbcr(&input.without_alpha())?;
                    self.run(lr_ycc.plane(0), 1, iw, ih)?
                } else {
                    self.run(ycc.plane(0), 1, w, h)?
                };
                ycc.plane_mut(0).copy_from_slice(&y);
                color::ycbcr_to_rgb(&ycc)?
            }
            // Grayscale: the image is its own Y.
            (ColorSpace::Y, _) => {
                let y = self.run(input.plane(0), 1, iw, ih)?;
                Image::from_planes(w, h, BitDepth::F32, &[&y])?
            }
            (ColorSpace::Rgb, _) => {
                let rgb: Vec<f32> = if gray {
                    input.plane(0).repeat(3)
                } else {
                    input.without_alpha().into_data()
                };
                let sr = self.run(&rgb, 3, iw, ih)?;
                if gray {
                    let n = w * h;
                    let y: Vec<f32> = (0..n)
                        .map(|i| (0..3).map(|c| GRAY_WEIGHTS[c] * sr[c * n + i]).sum())
                        .collect();
                    Image::from_planes(w, h, BitDepth::F32, &[&y])?
                } else {
                    Image::from_planar(w, h, 3, BitDepth::F32, sr)?
                }
            }
        };
        if lr.has_alpha() {
            let alpha = Image::from_planes(
                lr.width(),
                lr.height(),
                depth,
                &[lr.plane(lr.channels() - 1)],
            )?;
            let a = Interpolation::bicubic().upscale(&alpha, scale)?;
            let planes: Vec<&[f32]> = out.planes().chain(std::iter::once(a.plane(0))).collect();
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
            u.run(&plane, 1, w, h).unwrap()
        };
        for tile in [1, 7, 16, 30] {
            let mut u = m.clone();
            u.tile = tile;
            let tiled = u.run(&plane, 1, w, h).unwrap();
            let max = whole
                .iter()
                .zip(&tiled)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(max <= 1e-5, "tile {tile}: max abs diff {max}");
        }
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn tiles_equal_whole_image_for_padded_and_lr_networks() {
        let cases = [
            (
                "vdsr",
                serde_json::json!({"depth": 5, "features": 8, "bias": true}),
                1,
            ),
            (
                "fsrcnn",
                serde_json::json!({"scale": 3, "d": 8, "s": 4, "m": 2}),
                1,
            ),
            (
                "srvgg",
                serde_json::json!({"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8,
                    "num_conv": 3, "upscale": 2, "act_type": "prelu"}),
                3,
            ),
        ];
        for (arch, config, channels) in cases {
            let model = Model::new(arch, config, vec![2], 5).unwrap();
            let u = ModelUpscaler::new(model, arch);
            assert!(u.model.network.io().exact_tiling, "{arch}");
            let (w, h) = (23, 17);
            let planes: Vec<f32> = (0..channels * w * h)
                .map(|i| (i * 53 % 97) as f32 / 96.0)
                .collect();
            let whole = {
                let mut u = u.clone();
                u.tile = 1 << 20;
                u.run(&planes, channels, w, h).unwrap()
            };
            let f = u.model.network.io().factor();
            assert_eq!(whole.len(), channels * w * h * f * f, "{arch}");
            for tile in [1, 4, 10] {
                let mut u = u.clone();
                u.tile = tile;
                let tiled = u.run(&planes, channels, w, h).unwrap();
                let d = max_diff(&whole, &tiled);
                assert!(d <= 1e-5, "{arch} tile {tile}: max abs diff {d}");
            }
        }
    }

    #[test]
    fn rgb_networks_upscale_colour_and_gray_images() {
        let config = serde_json::json!({"num_in_ch": 3, "num_out_ch": 3, "num_feat": 4,
            "num_conv": 1, "upscale": 2, "act_type": "relu"});
        let u = ModelUpscaler::new(Model::new("srvgg", config, vec![2], 1).unwrap(), "s");
        assert!(u.supports_scale(2) && !u.supports_scale(3));
        let rgb = Image::from_planar(5, 4, 3, BitDepth::U8, vec![0.5; 60]).unwrap();
        let sr = u.upscale(&rgb, 2).unwrap();
        assert_eq!((sr.width(), sr.height(), sr.channels()), (10, 8, 3));
        let gray = Image::from_planar(5, 4, 2, BitDepth::U8, vec![0.5; 40]).unwrap();
        let sr = u.upscale(&gray, 2).unwrap();
        assert_eq!((sr.width(), sr.height(), sr.channels()), (10, 8, 2));
        assert!(u.upscale(&gray, 3).is_err());

        // RRDBNet at x2 folds its input by 2: odd sizes and tiles are
        // padded to even ones and the output cropped.
        let config = serde_json::json!({"scale": 2, "num_feat": 4, "num_block": 1,
            "num_grow_ch": 2});
        let mut u = ModelUpscaler::new(Model::new("rrdbnet", config, vec![2], 1).unwrap(), "r");
        assert_eq!(u.model.network.io().multiple, 2);
        for tile in [3, 64] {
            u.tile = tile;
            let sr = u.upscale(&rgb, 2).unwrap();
            assert_eq!((sr.width(), sr.height(), sr.channels()), (10, 8, 3));
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
