//! `srkit train`: train a model, resumably.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::models::SrcnnConfig;
use srkit::train::{self, ScaleScore, TrainConfig, TrainObserver};

use super::parse_int_scale;

/// Train an SR model on folders of HR images.
///
/// Patches are cut from the HR images after the BI degradation (MATLAB
/// bicubic, as the benchmarks make their inputs), with random flips and
/// rotations, reproducibly from --seed. Every --val-every steps the model is
/// scored on the --val folder (paper-convention PSNR/SSIM); the best weights
/// go to --out, and a checkpoint, a CSV log and a PNG curve are written next
/// to it. A run stopped at any moment continues with --resume.
///
/// Example: srkit train --arch srcnn --scale 3 --train ../shared/data/T91
///   --train ../shared/data/BSD200 --val ../shared/data/Set5
///   --out models/srcnn_x3.safetensors
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture to train (see --config for its hyper-parameters).
    #[arg(long, default_value = "srcnn", value_parser = clap::builder::PossibleValuesParser::new(srkit::models::ARCHITECTURES))]
    arch: String,

    /// SRCNN variant f1-f2-f3.
    #[arg(long, default_value = "955", value_parser = ["955", "935", "915"])]
    variant: String,

    /// Hyper-parameters that differ from the architecture's paper defaults,
    /// as JSON, e.g. '{"num_feat": 32, "num_conv": 8}' for srvgg.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,

    /// Upscaling factor; several, comma-separated (2,3,4), train one model
    /// for all of them — only for networks fed the bicubic-upscaled image
    /// (srcnn, vdsr), as the VDSR paper trains its single model.
    #[arg(short, long, value_parser = parse_int_scale, allow_hyphen_values = true, value_delimiter = ',', required = true)]
    scale: Vec<usize>,

    /// Folder of HR training images (repeat for several).
    #[arg(long, required = true)]
    train: Vec<PathBuf>,

    /// Folder of HR validation images (repeat; the first picks the best weights).
    #[arg(long, required = true)]
    val: Vec<PathBuf>,

    /// Where the best weights go (.safetensors); the checkpoint, log and
    /// curve are written beside it.
    #[arg(short, long)]
    out: PathBuf,

    /// Total optimizer steps.
    #[arg(long, default_value_t = 100_000)]
    steps: u64,

    /// Patches per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,

    /// Input patch side in pixels (the paper's 33).
    #[arg(long, default_value_t = 33)]
    patch: usize,

    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,

    /// Halve the learning rate every N steps (0 = constant).
    #[arg(long, default_value_t = 0)]
    lr_halve_every: u64,

    /// Loss: mse (the paper's) or l1.
    #[arg(long, default_value = "mse")]
    loss: String,

    /// Seed for initial weights and patch sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Validate and checkpoint every N steps.
    #[arg(long, default_value_t = 1000)]
    val_every: u64,

    /// Continue the run whose checkpoint sits beside --out (--steps, --lr,
    /// --lr-halve-every, --batch, --patch, --val-every, --revive-dead,
    /// --ema and --downscale-aug may differ from the run's; the rest must
    /// match).
    #[arg(long)]
    resume: bool,

    /// Start from this model file's weights instead of random ones, wherever
    /// a tensor's name and shape match (e.g. a x2 run from a trained x4 model
    /// of the same architecture and width). Ignored by --resume.
    #[arg(long, value_name = "MODEL.safetensors")]
    init: Option<PathBuf>,

    /// At the start of every --val-every interval, re-initialise the ReLU
    /// units that never fire on a probe set of training patches (incoming
    /// weights re-drawn, outgoing weights zero, so the network's output is
    /// unchanged): units that Adam's early steps killed regain their
    /// gradient. srcnn and vdsr only. May be switched on or off on --resume.
    #[arg(long)]
    revive_dead: bool,

    /// Validate, and keep as the best weights, an exponential moving
    /// average of the weights with this decay per step (e.g. 0.999, an
    /// average over about the last 1000 steps) rather than the last step's
    /// weights, which carry the optimiser's step-to-step noise. May be
    /// switched on (the average starts from the weights) or off on --resume.
    #[arg(long, value_name = "DECAY")]
    ema: Option<f32>,

    /// Scale augmentation: every training image also enters
    /// bicubic-downscaled by each of these factors, each in (0, 1) (DRRN's and
    /// MemNet's recipe for the 291 set: 0.9,0.8,0.7,0.6). Patches are drawn
    /// by area, so a copy at 0.6 is drawn 0.36 times as often as the
    /// original. May change on --resume.
    #[arg(long, value_name = "F,F,...", value_delimiter = ',')]
    downscale_aug: Vec<f64>,
}

struct Bar {
    bar: indicatif::ProgressBar,
    val: String,
    /// The last multi-scale validation's per-scale scores, for its line.
    scales: String,
}

impl Bar {
    /// Prints a line above the bar, or to stderr when the bar is hidden (a
    /// background run, a CI log).
    fn print_line(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl TrainObserver for Bar {
    fn on_start(&mut self, start: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(start);
        self.bar.reset_eta();
    }
    fn on_warm_start(&mut self, copied: usize, total: usize) {
        eprintln!("--init: {copied} of the network's {total} tensors start from the given model");
    }
    fn on_revival(&mut self, step: u64, revived: &[usize]) {
        let counts: Vec<String> = revived.iter().map(|n| n.to_string()).collect();
        let line = format!(
            "step {step}: revived {} dead units (per hidden layer: {})",
            revived.iter().sum::<usize>(),
            counts.join(", ")
        );
        self.print_line(line);
    }
    fn on_step(&mut self, step: u64, loss: f32, pps: f64) {
        self.bar.set_position(step);
        if step % 10 == 0 {
            let status = format!("loss {loss:.6} | val {} | {pps:.0} patches/s", self.val);
            // Without a terminal (a background run, a CI log) the bar is
            // hidden: print a status line now and then instead.
            if self.bar.is_hidden() && step % 500 == 0 {
                eprintln!("step {step}: {status}");
            }
            self.bar.set_message(status);
        }
    }
    fn on_scale_scores(&mut self, _step: u64, scores: &[ScaleScore]) {
        self.scales = scores
            .iter()
            .map(|s| format!("x{} {:.3} dB / {:.4}", s.scale, s.psnr, s.ssim))
            .collect::<Vec<_>>()
            .join(", ");
    }
    fn on_validation(&mut self, step: u64, psnr: f64, ssim: f64) {
        self.val = format!("{psnr:.3} dB");
        let mut line = format!("step {step}: validation PSNR {psnr:.3} dB, SSIM {ssim:.4}");
        if !self.scales.is_empty() {
            line += &format!(" (mean of {})", std::mem::take(&mut self.scales));
        }
        self.print_line(line);
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    super::check_output_file("--out", &a.out, "safetensors")?;
    // The checkpoint, log and curve go beside --out: never into a data
    // folder, where they would become training or validation images.
    let out_dir = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .canonicalize()?;
    for data in a.train.iter().chain(&a.val) {
        if data.canonicalize().is_ok_and(|d| out_dir.starts_with(d)) {
            bail!(
                "--out {} is inside the data folder {}: write the model elsewhere",
                a.out.display(),
                data.display()
            );
        }
    }
    let mut arch_config = if a.arch == "srcnn" {
        serde_json::to_value(match a.variant.as_str() {
            "915" => SrcnnConfig::srcnn_915(),
            "935" => SrcnnConfig::srcnn_935(),
            _ => SrcnnConfig::srcnn_955(),
        })?
    } else {
        srkit::models::default_config(&a.arch, a.scale[0])?
    };
    if let Some(json) = &a.config {
        let overrides: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).context("--config must be a JSON object")?;
        let base = arch_config
            .as_object_mut()
            .context("architecture config is not an object")?;
        for (k, v) in overrides {
            if !base.contains_key(&k) {
                let known: Vec<&String> = base.keys().collect();
                bail!(
                    "--config: {} has no setting {k:?} (it has {known:?})",
                    a.arch
                );
            }
            base.insert(k, v);
        }
    }
    let cfg = TrainConfig {
        arch: a.arch.clone(),
        arch_config,
        scales: a.scale.clone(),
        train: a.train.clone(),
        val: a.val.clone(),
        patch: a.patch,
        batch: a.batch,
        steps: a.steps,
        lr: a.lr,
        lr_halve_every: a.lr_halve_every,
        loss: a.loss.parse()?,
        seed: a.seed,
        val_every: a.val_every,
        init: a.init.clone(),
        revive_dead: a.revive_dead,
        ema_decay: a.ema,
        downscale_aug: a.downscale_aug,
    };
    let bar = indicatif::ProgressBar::new(a.steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "train [{bar:25}] {pos}/{len} {elapsed_precise} ETA {eta} | {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut obs = Bar {
        bar,
        val: "-".into(),
        scales: String::new(),
    };
    let summary = train::train(&cfg, &a.out, a.resume, &mut obs)
        .with_context(|| format!("training {}", a.out.display()))?;
    obs.bar.finish_and_clear();
    println!(
        "{} steps, {:.0} s; best validation {:.3} dB / {:.4} -> {}",
        summary.steps,
        summary.wall_seconds,
        summary.best_psnr,
        summary.best_ssim,
        summary.files.model.display()
    );
    Ok(())
}
