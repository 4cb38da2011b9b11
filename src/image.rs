//! The in-memory image every stage of srkit works on.
//!
//! An [`Image`] is **planar** `f32`: all of channel 0, then all of channel 1,
//! and so on, each plane row-major. Sample values are nominally in `[0, 1]`
//! whatever the file's bit depth (8-bit `v` is stored as `v / 255`), so models
//! and metrics see one range. The [`BitDepth`] the image came from is kept, so
//! that resampling can reproduce MATLAB's per-type rounding and writers know
//! what to quantise to.
//!
//! Channel layouts follow the file: 1 = gray, 2 = gray + alpha, 3 = RGB,
//! 4 = RGBA. Alpha, when present, is always the last plane.

use crate::error::{Error, Result};

/// Default cap on the number of pixels of any image srkit creates (256 Mpx).
pub const DEFAULT_MAX_PIXELS: u64 = 256 * 1024 * 1024;

/// The sample type an image was decoded from, or will be encoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitDepth {
    /// 8-bit unsigned integers, 0..=255.
    U8,
    /// 16-bit unsigned integers, 0..=65535.
    U16,
    /// Floating point, no quantisation.
    F32,
}

impl BitDepth {
    /// The integer value that maps to 1.0, or `None` for float images.
    pub fn max_value(self) -> Option<f64> {
        match self {
            BitDepth::U8 => Some(255.0),
            BitDepth::U16 => Some(65535.0),
            BitDepth::F32 => None,
        }
    }

    /// Rounds a nominal `[0, 1]` sample to this depth's grid (clamping to the
    /// range), the way MATLAB converts double results back to an integer
    /// class: round half away from zero, saturate. Float passes through.
    #[inline]
    pub fn quantize(self, v: f64) -> f64 {
        match self.max_value() {
            Some(m) => (v * m).round().clamp(0.0, m) / m,
            None => v,
        }
    }
}

/// A planar `f32` image with values nominally in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    width: usize,
    height: usize,
    channels: usize,
    depth: BitDepth,
    data: Vec<f32>,
}

impl Image {
    /// Creates an image from planar data (`channels` planes of `width * height`).
    ///
    /// Fails if a dimension or the channel count (1..=4) is invalid, or if
    /// `data.len()` does not match.
    pub fn from_planar(
        width: usize,
        height: usize,
        channels: usize,
        depth: BitDepth,
        data: Vec<f32>,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(
                "image size",
                format!("{width}x{height} has no pixels"),
            ));
        }
        if !(1..=4).contains(&channels) {
            return Err(Error::invalid(
                "channels",
                format!("{channels} (expected 1 to 4)"),
            ));
        }
        let expected = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(channels))
            .ok_or_else(|| Error::invalid("image size", format!("{width}x{height} overflows")))?;
        if data.len() != expected {
            return Err(Error::invalid(
                "image data",
                format!(
                    "{} samples for {width}x{height}x{channels} (expected {expected})",
                    data.len()
                ),
            ));
        }
        Ok(Image {
            width,
            height,
            channels,
            depth,
            data,
        })
    }

    /// A black image of the given shape.
    pub fn zeros(width: usize, height: usize, channels: usize, depth: BitDepth) -> Result<Self> {
        let n = width.saturating_mul(height).saturating_mul(channels);
        Self::from_planar(width, height, channels, depth, vec![0.0; n])
    }

    /// Builds an image by stacking single-channel planes.
    pub fn from_planes(
        width: usize,
        height: usize,
        depth: BitDepth,
        planes: &[&[f32]],
    ) -> Result<Self> {
        let mut data = Vec::with_capacity(width * height * planes.len());
        for p in planes {
            if p.len() != width * height {
                return Err(Error::invalid(
                    "plane",
                    format!("{} samples for {width}x{height}", p.len()),
                ));
            }
            data.extend_from_slice(p);
        }
        Self::from_planar(width, height, planes.len(), depth, data)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of channels (planes), alpha included.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The bit depth the image came from / will be written as.
    pub fn depth(&self) -> BitDepth {
        self.depth
    }

    /// Changes the recorded bit depth (does not touch the samples).
    pub fn set_depth(&mut self, depth: BitDepth) {
        self.depth = depth;
    }

    /// Whether the last plane is alpha (2 or 4 channels).
    pub fn has_alpha(&self) -> bool {
        self.channels == 2 || self.channels == 4
    }

    /// Number of colour channels, alpha excluded (1 or 3).
    pub fn color_channels(&self) -> usize {
        if self.has_alpha() {
            self.channels - 1
        } else {
            self.channels
        }
    }

    /// `width * height`.
    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    /// Shape as `WxHxC`, for messages.
    pub fn shape_string(&self) -> String {
        format!("{}x{}x{}", self.width, self.height, self.channels)
    }

    /// All samples, planar.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All samples, planar, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the image and returns its planar samples.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Channel `c` as a row-major plane.
    ///
    /// # Panics
    /// If `c >= self.channels()` (a programming error, not a user one).
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.pixel_count();
        &self.data[c * n..(c + 1) * n]
    }

    /// Channel `c` as a mutable row-major plane.
    ///
    /// # Panics
    /// If `c >= self.channels()`.
    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.pixel_count();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// Iterator over the planes.
    pub fn planes(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.pixel_count())
    }

    /// Sample at (`x`, `y`) of channel `c`.
    pub fn get(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[c * self.pixel_count() + y * self.width + x]
    }

    /// A copy of the rectangle `[x0, x0 + w) x [y0, y0 + h)`.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Result<Image> {
        if w == 0 || h == 0 || x0 + w > self.width || y0 + h > self.height {
            return Err(Error::invalid(
                "crop",
                format!(
                    "{w}x{h} at ({x0},{y0}) does not fit in {}x{}",
                    self.width, self.height
                ),
            ));
        }
        let mut data = Vec::with_capacity(w * h * self.channels);
        for plane in self.planes() {
            for y in y0..y0 + h {
                data.extend_from_slice(&plane[y * self.width + x0..y * self.width + x0 + w]);
            }
        }
        Image::from_planar(w, h, self.channels, self.depth, data)
    }

    /// The colour planes only (alpha dropped).
    pub fn without_alpha(&self) -> Image {
        if !self.has_alpha() {
            return self.clone();
        }
        let c = self.color_channels();
        Image {
            width: self.width,
            height: self.height,
            channels: c,
            depth: self.depth,
            data: self.data[..c * self.pixel_count()].to_vec(),
        }
    }

    /// Rounds every sample to the image's bit depth (no-op for float).
    pub fn quantize(&mut self) {
        let depth = self.depth;
        if depth == BitDepth::F32 {
            return;
        }
        for v in &mut self.data {
            *v = depth.quantize(f64::from(*v)) as f32;
        }
    }
}

/// Fails with [`Error::TooLarge`] if `width * height` exceeds `limit`.
pub fn check_pixel_limit(
    what: &'static str,
    width: usize,
    height: usize,
    limit: u64,
) -> Result<()> {
    let pixels = (width as u64).saturating_mul(height as u64);
    if pixels > limit {
        return Err(Error::TooLarge {
            what,
            width,
            height,
            pixels,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_u8_rounds_half_away_and_saturates() {
        assert_eq!(BitDepth::U8.quantize(0.5 / 255.0) * 255.0, 1.0);
        assert_eq!(BitDepth::U8.quantize(1.7), 1.0);
        assert_eq!(BitDepth::U8.quantize(-0.2), 0.0);
        assert_eq!(BitDepth::F32.quantize(1.7), 1.7);
    }

    #[test]
    fn crop_and_planes() {
        let data: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
        let img = Image::from_planar(4, 3, 2, BitDepth::F32, data).unwrap();
        let c = img.crop(1, 1, 2, 2).unwrap();
        assert_eq!(c.data(), &[5.0, 6.0, 9.0, 10.0, 17.0, 18.0, 21.0, 22.0]);
        assert!(img.crop(3, 0, 2, 1).is_err());
        assert!(Image::from_planar(0, 3, 1, BitDepth::U8, vec![]).is_err());
        assert!(Image::from_planar(2, 2, 1, BitDepth::U8, vec![0.0; 3]).is_err());
    }
}
