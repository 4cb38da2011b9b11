//! The one interface every super-resolution method implements.
//!
//! Evaluation and the `upscale` command only see [`Upscaler`]: a classical
//! interpolation kernel and a learned model are interchangeable behind it,
//! so a new model slots into `srkit eval` and `srkit upscale` without
//! touching either.

use crate::error::{Error, Result};
use crate::image::Image;
use crate::resample::{self, Kernel, ResizeOptions, ResizeTarget};

/// A method that turns a low-resolution image into one `scale` times larger.
pub trait Upscaler: Sync {
    /// The name shown in tables and JSON (`bicubic`, `srcnn-x3`, ...).
    fn name(&self) -> String;

    /// Whether this method can upscale by `scale`.
    fn supports_scale(&self, scale: usize) -> bool;

    /// Upscales `lr` by the integer factor `scale`. The output is exactly
    /// `scale * width` by `scale * height`, with `lr`'s channels and depth.
    fn upscale(&self, lr: &Image, scale: usize) -> Result<Image>;
}

/// Classical interpolation with MATLAB `imresize` semantics.
#[derive(Debug, Clone, Copy)]
pub struct Interpolation {
    /// The interpolation kernel.
    pub kernel: Kernel,
}

impl Interpolation {
    /// Bicubic interpolation (Keys, a = -0.5): the baseline of every SR table.
    pub fn bicubic() -> Self {
        Interpolation {
            kernel: Kernel::bicubic(),
        }
    }
}

impl Upscaler for Interpolation {
    fn name(&self) -> String {
        kernel_name(self.kernel)
    }

    fn supports_scale(&self, scale: usize) -> bool {
        scale >= 1
    }

    fn upscale(&self, lr: &Image, scale: usize) -> Result<Image> {
        if scale == 0 {
            return Err(Error::invalid("scale", "must be at least 1"));
        }
        let opts = ResizeOptions {
            kernel: self.kernel,
            ..ResizeOptions::default()
        };
        resample::resize(lr, ResizeTarget::Scale(scale as f64), &opts)
    }
}

/// The conventional name of a kernel as an upscaling method.
pub fn kernel_name(kernel: Kernel) -> String {
    match kernel {
        Kernel::Nearest => "nearest".into(),
        Kernel::Linear => "bilinear".into(),
        Kernel::Cubic { a: -0.5 } => "bicubic".into(),
        Kernel::Cubic { a } => format!("bicubic(a={a})"),
        Kernel::Lanczos2 => "lanczos2".into(),
        Kernel::Lanczos3 => "lanczos3".into(),
        Kernel::Box => "box".into(),
    }
}
