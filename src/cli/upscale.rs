//! `srkit upscale`: the main job.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use srkit::resample::Kernel;
use srkit::upscale::{Interpolation, Upscaler};

use super::{check_output_size, parse_int_scale, OutputArgs};

/// Upscale an image.
///
/// `--method` picks the upscaler: an interpolation kernel (bicubic, bilinear,
/// nearest, lanczos2, lanczos3, box). Alpha is upscaled with the same method
/// and kept; 16-bit input gives 16-bit output.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Input image (PNG, JPEG, BMP, TIFF, WebP).
    input: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Upscaling factor (integer).
    #[arg(short, long, default_value_t = 4, value_parser = parse_int_scale, allow_hyphen_values = true)]
    scale: usize,

    /// Upscaling method.
    #[arg(short, long, default_value = "bicubic")]
    method: String,
}

/// Resolves a `--method` name to an upscaler.
pub fn upscaler_by_name(name: &str) -> Result<Box<dyn Upscaler>> {
    let kernel: Kernel = name
        .parse()
        .with_context(|| format!("unknown method '{name}'"))?;
    Ok(Box::new(Interpolation { kernel }))
}

pub fn run(a: UpscaleArgs) -> Result<()> {
    a.out.check(&[&a.input])?;
    let upscaler = upscaler_by_name(&a.method)?;
    let lr = srkit::io::read_image(&a.input, &a.out.read_options())?;
    check_output_size(lr.width() * a.scale, lr.height() * a.scale, a.out.max_pixels)?;
    let sr = upscaler
        .upscale(&lr, a.scale)
        .with_context(|| format!("upscaling {}", a.input.display()))?;
    a.out.write(&sr)
}
