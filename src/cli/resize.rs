//! `srkit resize`: MATLAB `imresize` from the command line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::resample::{self, Border, Kernel, ResizeOptions, ResizeTarget};

use super::{check_output_size, parse_scale, OutputArgs};

/// Resize an image with MATLAB `imresize` semantics.
///
/// Output size is ceil(input * scale) or the explicit --size. Downscaling is
/// antialiased (kernel widened by 1/scale) unless --no-antialias. 8-bit and
/// 16-bit images are rounded between the two separable passes, as MATLAB does.
#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// Input image (PNG, JPEG, BMP, TIFF, WebP).
    input: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Scale factor (e.g. 2, 0.25, 1.5).
    #[arg(short, long, value_parser = parse_scale, allow_hyphen_values = true, conflicts_with = "size", required_unless_present = "size")]
    scale: Option<f64>,

    /// Explicit output size, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH")]
    size: Option<String>,

    /// Interpolation kernel: nearest, bilinear, bicubic, lanczos2, lanczos3, box.
    #[arg(short, long, default_value = "bicubic")]
    method: String,

    /// The cubic kernel's parameter a (Keys); -0.5 is MATLAB's bicubic.
    #[arg(long, default_value_t = -0.5, allow_hyphen_values = true)]
    cubic_a: f64,

    /// Do not antialias when downscaling.
    #[arg(long)]
    no_antialias: bool,

    /// Out-of-image taps: replicate (MATLAB's results) or symmetric (mirror).
    #[arg(long, default_value = "replicate", value_parser = ["replicate", "symmetric"])]
    border: String,
}

pub fn run(a: ResizeArgs) -> Result<()> {
    a.out.check(&[&a.input])?;
    let mut kernel: Kernel = a.method.parse()?;
    if let Kernel::Cubic { .. } = kernel {
        if !a.cubic_a.is_finite() {
            bail!("--cubic-a must be finite");
        }
        kernel = Kernel::Cubic { a: a.cubic_a };
    }
    let target = match (&a.size, a.scale) {
        (Some(s), _) => parse_size(s)?,
        (None, Some(s)) => ResizeTarget::Scale(s),
        (None, None) => bail!("give --scale or --size"),
    };
    let img = srkit::io::read_image(&a.input, &a.out.read_options())?;
    let (w, h) = resample::output_size(img.width(), img.height(), target)?;
    check_output_size(w, h, a.out.max_pixels)?;
    let opts = ResizeOptions {
        kernel,
        antialias: !a.no_antialias,
        border: if a.border == "symmetric" {
            Border::Symmetric
        } else {
            Border::Replicate
        },
        ..ResizeOptions::default()
    };
    let out = resample::resize(&img, target, &opts)
        .with_context(|| format!("resizing {}", a.input.display()))?;
    a.out.write(&out)
}

/// Parses `WIDTHxHEIGHT`.
fn parse_size(s: &str) -> Result<ResizeTarget> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--size '{s}' is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| -> Result<usize> {
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("--size '{s}': '{v}' is not a positive integer"))?;
        if n == 0 {
            bail!("--size '{s}' has a zero dimension");
        }
        Ok(n)
    };
    Ok(ResizeTarget::Size {
        width: parse(w)?,
        height: parse(h)?,
    })
}
