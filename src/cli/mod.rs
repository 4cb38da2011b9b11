//! Command-line definitions (clap derive) and the checks shared by the
//! subcommands. Every pixel operation lives in the library; the files here
//! only parse, validate paths and print.

mod convert;
mod degrade;
mod eval;
mod metrics;
mod models;
mod resize;
mod train;
mod upscale;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use srkit::image::DEFAULT_MAX_PIXELS;
use srkit::io::ReadOptions;

/// srkit: single-image super-resolution — MATLAB-exact resampling,
/// paper-exact PSNR/SSIM, and SR models.
#[derive(Debug, Parser)]
#[command(name = "srkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upscale an image (the main job).
    Upscale(upscale::UpscaleArgs),
    /// Resize an image with MATLAB `imresize` semantics.
    Resize(resize::ResizeArgs),
    /// Make a low-resolution image from a high-resolution one (BI, BD, DN).
    Degrade(degrade::DegradeArgs),
    /// PSNR and SSIM of a test image against a reference.
    Metrics(metrics::MetricsArgs),
    /// Benchmark methods on dataset folders and print a paper-style table.
    Eval(eval::EvalArgs),
    /// Train an SR model (resumable).
    Train(train::TrainArgs),
    // No doc here: the struct's doc is both the summary and the long help.
    Models(models::ModelsArgs),
    /// Convert a PyTorch checkpoint into an srkit model file.
    Convert(convert::ConvertArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        if n > MAX_THREADS {
            bail!("--threads {n} is more than {MAX_THREADS}");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot start the thread pool")?;
    }
    match cli.command {
        Command::Upscale(a) => upscale::run(a),
        Command::Resize(a) => resize::run(a),
        Command::Degrade(a) => degrade::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a),
        Command::Models(a) => models::run(a),
        Command::Convert(a) => convert::run(a),
    }
}

/// Flags shared by the commands that write an image.
#[derive(Debug, Args)]
struct OutputArgs {
    /// Output file; its extension picks the format (.png or .jpg).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Bit depth of the output (default: the input's; PNG only for 16).
    #[arg(long, value_parser = ["8", "16"])]
    depth: Option<String>,

    /// JPEG quality, 1-100.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,

    /// Allow the output to replace one of the input files.
    #[arg(long)]
    force: bool,

    /// Largest image (in pixels) to read or create.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
}

impl OutputArgs {
    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            max_pixels: self.max_pixels,
        }
    }

    /// Refuses, before any work is done, an output that is a folder, that has
    /// no writable format, or that would overwrite an input without `--force`.
    fn check(&self, inputs: &[&Path]) -> Result<()> {
        let out = &self.output;
        if out.is_dir() {
            bail!("output {} is a directory", out.display());
        }
        let format = srkit::io::Format::from_path(out)?;
        if format == srkit::io::Format::Jpeg && self.depth.as_deref() == Some("16") {
            bail!("--depth 16 needs a .png output (JPEG is 8-bit)");
        }
        if !self.force && out.exists() {
            let out_real = out.canonicalize().ok();
            for input in inputs {
                if input.canonicalize().ok() == out_real {
                    bail!(
                        "output {} is the input file; pass --force to overwrite it",
                        out.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// Writes `img` atomically to the output path.
    fn write(&self, img: &srkit::Image) -> Result<()> {
        self.write_to(img, &self.output)
    }

    /// Writes `img` atomically to `path`, with the depth and quality flags.
    fn write_to(&self, img: &srkit::Image, path: &Path) -> Result<()> {
        let depth = match self.depth.as_deref() {
            Some("8") => Some(srkit::BitDepth::U8),
            Some("16") => Some(srkit::BitDepth::U16),
            _ => None,
        };
        let opts = srkit::io::WriteOptions {
            jpeg_quality: self.quality,
            depth,
        };
        srkit::io::write_image(img, path, &opts)?;
        Ok(())
    }
}

/// Refuses, before any work is done, a `flag` output path (not an image:
/// a JSON report, a model file) that is a folder, lacks the `.ext`
/// extension (which keeps it from replacing an image or a model given as
/// input), or whose folder does not exist.
fn check_output_file(flag: &str, path: &Path, ext: &str) -> Result<()> {
    if path.is_dir() {
        bail!("{flag} {} is a directory", path.display());
    }
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
    {
        bail!("{flag} {} must end in .{ext}", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{flag} {}: folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Most worker threads `-j` accepts: far more than any machine srkit runs
/// on has cores, far fewer than would exhaust it.
const MAX_THREADS: usize = 256;

/// Parses a scale factor, rejecting 0, negatives, NaN, infinities and values
/// no SR workflow uses (above 64).
fn parse_scale(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{s} must be a positive finite number"));
    }
    if !(1.0 / 64.0..=64.0).contains(&v) {
        return Err(format!("{s} is outside 1/64..64"));
    }
    Ok(v)
}

/// Parses an integer upscaling factor in 1..=16.
fn parse_int_scale(s: &str) -> std::result::Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a positive integer"))?;
    if !(1..=16).contains(&v) {
        return Err(format!("{v} is outside 1..16"));
    }
    Ok(v)
}

/// Fails if an output of `width` x `height` would exceed the pixel limit.
fn check_output_size(width: usize, height: usize, max_pixels: u64) -> Result<()> {
    srkit::image::check_pixel_limit("output", width, height, max_pixels)?;
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
