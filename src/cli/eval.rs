//! `srkit eval`: the benchmark table.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::degrade::Degradation;
use srkit::eval::{self, Dataset, EvalOptions, EvalReport};
use srkit::metrics::{Convention, MetricOptions};

use srkit::models::{BenchmarkScore, Model};
use srkit::upscale::Upscaler;

use super::{parse_int_scale, progress_bar, upscale};

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
    /// Interpolation methods to evaluate (comma-separated or repeated).
    /// Default: bicubic, unless --model is given.
    #[arg(short, long, value_delimiter = ',')]
    method: Vec<String>,

    /// Learned models to evaluate: built-in names, .safetensors files or
    /// PyTorch checkpoints (comma-separated or repeated). They share the
    /// table with --method.
    #[arg(long, value_delimiter = ',')]
    model: Vec<String>,

    /// Architecture of PyTorch --model files not recognised from their keys.
    #[arg(long, requires = "model")]
    arch: Option<String>,

    /// Store the scores in each --model file given as a path (used to make
    /// the built-in models' cards and `srkit models`).
    #[arg(long)]
    record: bool,

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
        super::check_output_file("--json", json, "json")?;
    }
    if a.record {
        if let Some(spec) = a.model.iter().find(|m| !std::path::Path::new(m).is_file()) {
            bail!("--record needs model files, not built-in names ({spec})");
        }
    }
    let degradation: Degradation = a.degradation.parse()?;
    let methods = if a.method.is_empty() && a.model.is_empty() {
        vec!["bicubic".to_string()]
    } else {
        a.method.clone()
    };
    let mut upscalers: Vec<Box<dyn Upscaler>> = Vec::new();
    for m in &methods {
        upscalers.push(Box::new(upscale::interpolation(m)?));
    }
    // Weights that do not record their scale (FSRCNN) take the one scale
    // being evaluated, or the one in their file name.
    let source = upscale::ModelSource {
        arch: a.arch.clone(),
        scale_hint: match a.scale[..] {
            [s] => Some(s),
            _ => None,
        },
    };
    for m in &a.model {
        upscalers.push(Box::new(upscale::load_model(
            m,
            srkit::infer::DEFAULT_TILE,
            &source,
        )?));
    }
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
        for &scale in a.scale.iter().filter(|&&s| upscaler.supports_scale(s)) {
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
    if results.is_empty() {
        bail!("no method supports the scales {:?}", a.scale);
    }
    print!("{}", eval::format_table(&results));
    if a.record {
        record_scores(&a.model, &results)?;
    }
    if let Some(path) = &a.json {
        let report = EvalReport { results };
        srkit::io::write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)?;
            writeln!(w)
        })?;
    }
    Ok(())
}

/// Writes each model file's results into its metadata.
fn record_scores(models: &[String], results: &[eval::EvalResult]) -> Result<()> {
    for spec in models {
        let path = std::path::Path::new(spec);
        if !path.is_file() {
            bail!("--record needs model files, not built-in names ({spec})");
        }
        let mut model = Model::load(path)?;
        let name = upscale::load_model(spec, 1, &upscale::ModelSource::default())?.name;
        for r in results.iter().filter(|r| r.method == name) {
            model
                .meta
                .benchmarks
                .retain(|b| !(b.dataset == r.dataset && b.scale == r.scale));
            model.meta.benchmarks.push(BenchmarkScore {
                dataset: r.dataset.clone(),
                scale: r.scale,
                psnr: r.psnr,
                ssim: r.ssim,
            });
        }
        model.save(path)?;
    }
    Ok(())
}
