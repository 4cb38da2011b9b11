//! `srkit eval`: the benchmark table.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::degrade::Degradation;
use srkit::eval::{self, Dataset, EvalOptions, EvalReport};
use srkit::metrics::{Convention, MetricOptions};

use super::{parse_int_scale, progress_bar, upscale::upscaler_by_name};

/// Benchmark methods on dataset folders and print a table like the papers'.
///
/// For each HR image: crop to a multiple of the scale, degrade (BI by
/// default), upscale with the method, and score on the Y channel with
/// `scale` border pixels cropped. Cells are dataset means of per-image
/// PSNR (dB) / SSIM.
///
/// Example: srkit eval --method bicubic --scale 2,3,4
///   --dataset ../shared/data/Set5 --dataset ../shared/data/Set14
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Methods to evaluate (comma-separated or repeated).
    #[arg(short, long, value_delimiter = ',', default_value = "bicubic")]
    method: Vec<String>,

    /// Scales (comma-separated or repeated).
    #[arg(short, long, value_delimiter = ',', value_parser = parse_int_scale, default_value = "2,3,4")]
    scale: Vec<usize>,

    /// Dataset folders of HR images (repeat for several).
    #[arg(short, long, required = true)]
    dataset: Vec<PathBuf>,

    /// How LR inputs are made: bi, bd or dn.
    #[arg(long, default_value = "bi")]
    degradation: String,

    /// Seed for noisy degradations.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Score with scikit-image's formulas instead of the papers'.
    #[arg(long)]
    skimage: bool,

    /// Also write the results (with per-image scores) to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(json) = &a.json {
        if json.is_dir() {
            bail!("--json {} is a directory", json.display());
        }
    }
    let degradation: Degradation = a.degradation.parse()?;
    let upscalers = a
        .method
        .iter()
        .map(|m| upscaler_by_name(m))
        .collect::<Result<Vec<_>>>()?;
    let datasets = a
        .dataset
        .iter()
        .map(|d| Dataset::from_dir(d).with_context(|| format!("dataset {}", d.display())))
        .collect::<Result<Vec<_>>>()?;
    let opts = EvalOptions {
        degradation,
        seed: a.seed,
        metrics: MetricOptions {
            convention: if a.skimage {
                Convention::Skimage
            } else {
                Convention::Paper
            },
            ..MetricOptions::default()
        },
        ..EvalOptions::default()
    };

    let images: usize = datasets.iter().map(|d| d.images.len()).sum();
    let total = images * a.scale.len() * upscalers.len();
    let bar = progress_bar(total as u64, "eval");
    let mut results = Vec::new();
    for upscaler in &upscalers {
        for &scale in &a.scale {
            for dataset in &datasets {
                bar.set_message(format!("{} x{scale} {}", upscaler.name(), dataset.name));
                let tick = || bar.inc(1);
                let r = eval::evaluate(upscaler.as_ref(), dataset, scale, &opts, &tick)
                    .with_context(|| format!("{} x{scale} on {}", upscaler.name(), dataset.name))?;
                results.push(r);
            }
        }
    }
    bar.finish_and_clear();
    print!("{}", eval::format_table(&results));
    if let Some(path) = &a.json {
        let report = EvalReport { results };
        srkit::io::write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            writeln!(w)
        })?;
    }
    Ok(())
}
