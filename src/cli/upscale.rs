//! `srkit upscale`: the main job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::infer::{ModelUpscaler, DEFAULT_TILE};
use srkit::models::{builtin, import, Model};
use srkit::resample::Kernel;
use srkit::upscale::{Interpolation, Upscaler};

use super::{check_output_size, parse_int_scale, progress_bar, OutputArgs};

/// Upscale an image.
///
/// With no --model or --method, the best built-in model for the scale is
/// used (see `srkit models`), or bicubic where none exists. --model also
/// takes PyTorch checkpoints (.pth) of the architectures srkit knows, read
/// without Python. Y-channel models (SRCNN, VDSR, FSRCNN) upscale CbCr with
/// bicubic; RGB models see all three channels; alpha is always bicubic.
/// 16-bit input gives 16-bit output.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Input image (PNG, JPEG, BMP, TIFF, WebP).
    input: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Upscaling factor (integer). Default: the model's own scale if it has
    /// only one, else 4.
    #[arg(short, long, value_parser = parse_int_scale, allow_hyphen_values = true)]
    scale: Option<usize>,

    /// A learned model: a built-in name (srcnn-x3), an srkit .safetensors
    /// file, or a PyTorch checkpoint (.pth) of a known architecture.
    #[arg(long, conflicts_with = "method")]
    model: Option<String>,

    /// Architecture of a PyTorch --model, if it is not recognised from its
    /// keys.
    #[arg(long, requires = "model")]
    arch: Option<String>,

    /// An interpolation kernel instead of a model: bicubic, bilinear,
    /// nearest, lanczos2, lanczos3, box.
    #[arg(short, long)]
    method: Option<String>,

    /// Tile side in output pixels for model inference (bounds memory;
    /// output is identical for networks whose receptive field fits the
    /// tile overlap).
    #[arg(long, default_value_t = DEFAULT_TILE)]
    tile: usize,
}

/// How to load a `--model`.
#[derive(Debug, Clone, Default)]
pub struct ModelSource {
    /// Architecture of a PyTorch checkpoint, overriding detection.
    pub arch: Option<String>,
    /// Scale for weights that do not record theirs (FSRCNN).
    pub scale_hint: Option<usize>,
}

/// Whether `path` holds a PyTorch checkpoint rather than an srkit model.
fn is_pytorch(path: &Path) -> Result<bool> {
    let mut head = [0u8; 4];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = std::io::Read::read(&mut f, &mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(import::looks_like_pytorch(&head[..n]))
}

/// Resolves `--model`: a model file (srkit or PyTorch) or a built-in name;
/// `tile` is in output pixels.
pub fn load_model(spec: &str, tile: usize, source: &ModelSource) -> Result<ModelUpscaler> {
    if tile == 0 {
        bail!("--tile must be at least 1");
    }
    let path = Path::new(spec);
    let mut upscaler = if path.exists() || spec.ends_with(".safetensors") || spec.ends_with(".pth")
    {
        let model = if is_pytorch(path)? {
            import::load_pytorch(path, source.arch.as_deref(), source.scale_hint)?
        } else {
            Model::load(path)?
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', "-"))
            .unwrap_or_else(|| spec.to_string());
        ModelUpscaler::new(model, name)
    } else {
        let b = builtin::builtin(spec)?;
        ModelUpscaler::new(b.load()?, b.name)
    };
    upscaler.tile = (tile / upscaler.model.network.io().factor()).max(1);
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
    let source = ModelSource {
        arch: a.arch.clone(),
        scale_hint: a.scale,
    };
    let bar = progress_bar(0, "upscale");
    let with_bar = |mut u: ModelUpscaler| {
        let b = bar.clone();
        u.progress = Some(std::sync::Arc::new(move |done, total| {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }));
        u
    };
    let (upscaler, scale): (Box<dyn Upscaler>, usize) = match (&a.model, &a.method) {
        (Some(m), _) => {
            let u = with_bar(load_model(m, a.tile, &source)?);
            // A model made for one scale needs no --scale.
            let own = match u.model.meta.scales[..] {
                [s] => Some(s),
                _ => None,
            };
            let scale = a.scale.or(own).unwrap_or(4);
            (Box::new(u), scale)
        }
        (None, Some(k)) => (Box::new(interpolation(k)?), a.scale.unwrap_or(4)),
        (None, None) => {
            let scale = a.scale.unwrap_or(4);
            match builtin::default_for_scale(scale) {
                Some(b) => (
                    Box::new(with_bar(load_model(b.name, a.tile, &source)?)),
                    scale,
                ),
                None => (Box::new(Interpolation::bicubic()), scale),
            }
        }
    };
    if !upscaler.supports_scale(scale) {
        bail!("{} cannot upscale x{scale}", upscaler.name());
    }
    let lr = srkit::io::read_image(&a.input, &a.out.read_options())?;
    check_output_size(lr.width() * scale, lr.height() * scale, a.out.max_pixels)?;
    let sr = upscaler
        .upscale(&lr, scale)
        .with_context(|| format!("upscaling {} with {}", a.input.display(), upscaler.name()))?;
    bar.finish_and_clear();
    a.out.write(&sr)
}
