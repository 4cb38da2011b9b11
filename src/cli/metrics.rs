//! `srkit metrics`: PSNR and SSIM of one image pair.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use srkit::color::GrayMode;
use srkit::image::DEFAULT_MAX_PIXELS;
use srkit::io::ReadOptions;
use srkit::metrics::{self, Channels, Convention, MetricOptions};

/// PSNR and SSIM of a test image against a reference.
///
/// The paper convention (default) is the one behind published SR tables:
/// Y channel of BT.601 YCbCr, --crop pixels removed from each border, SSIM
/// with an 11x11 Gaussian window (sigma 1.5). The skimage convention matches
/// scikit-image's peak_signal_noise_ratio / structural_similarity defaults.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Reference (ground-truth) image.
    reference: PathBuf,

    /// Image to score.
    test: PathBuf,

    /// Pixels to crop from each border before measuring (papers: the scale).
    #[arg(long, default_value_t = 0)]
    crop: usize,

    /// Channels to measure.
    #[arg(long, value_enum, default_value_t = ChannelArg::Y)]
    channel: ChannelArg,

    /// Which formulas to follow.
    #[arg(long, value_enum, default_value_t = ConventionArg::Paper)]
    convention: ConventionArg,

    /// Grayscale images: measure their own values as Y (MATLAB scripts), or
    /// expand to RGB first (OpenCV-based scripts).
    #[arg(long, value_enum, default_value_t = GrayArg::Native)]
    gray: GrayArg,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// Largest image (in pixels) to read.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChannelArg {
    Y,
    Rgb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConventionArg {
    Paper,
    Skimage,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GrayArg {
    Native,
    Rgb,
}

pub fn run(a: MetricsArgs) -> Result<()> {
    let read = ReadOptions {
        max_pixels: a.max_pixels,
    };
    let reference = srkit::io::read_image(&a.reference, &read)?;
    let test = srkit::io::read_image(&a.test, &read)?;
    let opts = MetricOptions {
        crop_border: a.crop,
        channels: match a.channel {
            ChannelArg::Y => Channels::Y,
            ChannelArg::Rgb => Channels::Rgb,
        },
        convention: match a.convention {
            ConventionArg::Paper => Convention::Paper,
            ConventionArg::Skimage => Convention::Skimage,
        },
        gray: match a.gray {
            GrayArg::Native => GrayMode::Native,
            GrayArg::Rgb => GrayMode::ExpandToRgb,
        },
    };
    let scores = metrics::psnr_ssim(&reference, &test, &opts).with_context(|| {
        format!(
            "comparing {} with {}",
            a.reference.display(),
            a.test.display()
        )
    })?;
    if a.json {
        let json = serde_json::json!({
            "reference": a.reference,
            "test": a.test,
            "psnr": finite_or_null(scores.psnr),
            "ssim": scores.ssim,
        });
        println!("{json}");
    } else {
        println!("PSNR {:.4} dB", scores.psnr);
        println!("SSIM {:.6}", scores.ssim);
    }
    Ok(())
}

/// JSON has no infinity: identical images (PSNR = +inf) give `null`.
fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}
