//! `srkit degrade`: make an LR test input from an HR image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use srkit::degrade::{self, Degradation};

use super::{parse_int_scale, OutputArgs};

/// Make a low-resolution image from a high-resolution one.
///
/// The HR image is first cropped to a multiple of the scale (modcrop), then
/// degraded: bi = MATLAB bicubic downscale (the standard benchmark LR),
/// bd = 7x7 Gaussian blur (sigma 1.6) then downscale, dn = bi plus Gaussian
/// noise of level 30 (RDN paper's BD and DN).
#[derive(Debug, Args)]
pub struct DegradeArgs {
    /// High-resolution input image.
    input: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Downscaling factor (integer).
    #[arg(short, long, value_parser = parse_int_scale, allow_hyphen_values = true)]
    scale: usize,

    /// Degradation model: bi, bd or dn.
    #[arg(short, long, default_value = "bi")]
    kind: String,

    /// Seed for the noise of `dn`.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Do not crop the HR image to a multiple of the scale first.
    #[arg(long)]
    no_modcrop: bool,
}

pub fn run(a: DegradeArgs) -> Result<()> {
    a.out.check(&[&a.input])?;
    let kind: Degradation = a.kind.parse()?;
    let hr = srkit::io::read_image(&a.input, &a.out.read_options())?;
    let hr = if a.no_modcrop {
        hr
    } else {
        degrade::modcrop(&hr, a.scale)?
    };
    let lr = degrade::degrade(&hr, a.scale, kind, a.seed)
        .with_context(|| format!("degrading {}", a.input.display()))?;
    a.out.write(&lr)
}
