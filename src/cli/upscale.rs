//! `srkit upscale`: the main job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::infer::{ModelUpscaler, DEFAULT_TILE};
use srkit::models::{builtin, Model};
use srkit::resample::Kernel;
use srkit::upscale::{Interpolation, Upscaler};

use super::{check_output_size, parse_int_scale, OutputArgs};

/// Upscale an image.
///
/// With no --model or --method, the best built-in model for the scale is
/// used (see `srkit models`), or bicubic where none exists. Learned models
/// run on the Y channel; colour (CbCr) and alpha are upscaled with bicubic.
/// 16-bit input gives 16-bit output.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Input image (PNG, JPEG, BMP, TIFF, WebP).
    input: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Upscaling factor (integer).
    #[arg(short, long, default_value_t = 4, value_parser = parse_int_scale, allow_hyphen_values = true)]
    scale: usize,

    /// A learned model: a built-in name (srcnn-x3) or a .safetensors file.
    #[arg(long, conflicts_with = "method")]
    model: Option<String>,

    /// An interpolation kernel instead of a model: bicubic, bilinear,
    /// nearest, lanczos2, lanczos3, box.
    #[arg(short, long)]
    method: Option<String>,

    /// Tile side for model inference (bounds memory; output is identical).
    #[arg(long, default_value_t = DEFAULT_TILE)]
    tile: usize,
}

/// Resolves `--model`: a path to a model file, or a built-in name.
pub fn load_model(spec: &str, tile: usize) -> Result<ModelUpscaler> {
    if tile == 0 {
        bail!("--tile must be at least 1");
    }
    let path = Path::new(spec);
    let mut upscaler = if path.exists() || spec.ends_with(".safetensors") {
        let model = Model::load(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', "-"))
            .unwrap_or_else(|| spec.to_string());
        ModelUpscaler::new(model, name)
    } else {
        let b = builtin::builtin(spec)?;
        ModelUpscaler::new(b.load()?, b.name)
    };
    upscaler.tile = tile;
    Ok(upscaler)
}

/// Resolves `--method`: an interpolation kernel.
pub fn interpolation(name: &str) -> Result<Interpolation> {
    let kernel: Kernel = name
        .parse()
        .with_context(|| format!("unknown method '{name}'"))?;
    Ok(Interpolation { kernel })
}

pub fn run(a: UpscaleArgs) -> Result<()> {
    a.out.check(&[&a.input])?;
    let upscaler: Box<dyn Upscaler> = match (&a.model, &a.method) {
        (Some(m), _) => Box::new(load_model(m, a.tile)?),
        (None, Some(k)) => Box::new(interpolation(k)?),
        (None, None) => match builtin::default_for_scale(a.scale) {
            Some(b) => Box::new(load_model(b.name, a.tile)?),
            None => Box::new(Interpolation::bicubic()),
        },
    };
    if !upscaler.supports_scale(a.scale) {
        bail!("{} cannot upscale x{}", upscaler.name(), a.scale);
    }
    let lr = srkit::io::read_image(&a.input, &a.out.read_options())?;
    check_output_size(
        lr.width() * a.scale,
        lr.height() * a.scale,
        a.out.max_pixels,
    )?;
    let sr = upscaler
        .upscale(&lr, a.scale)
        .with_context(|| format!("upscaling {} with {}", a.input.display(), upscaler.name()))?;
    a.out.write(&sr)
}
