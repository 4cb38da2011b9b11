//! `srkit models`: the built-in models.

use anyhow::Result;
use clap::Args;
use srkit::models::builtin::{default_for_scale, BUILTIN_MODELS};

/// List the built-in models with their scale, size and benchmark scores
/// (PSNR dB / SSIM, paper convention, BI degradation).
///
/// Built-in models are embedded in the binary and need no download. Use one
/// by name with `srkit upscale IN -o OUT --model srcnn-x3`, or compare them
/// with `srkit eval --model srcnn-x3 --method bicubic --dataset DIR`.
/// Without --model, `srkit upscale` picks the best one for the scale.
#[derive(Debug, Args)]
pub struct ModelsArgs {}

pub fn run(_: ModelsArgs) -> Result<()> {
    let datasets = ["Set5", "Set14", "BSD100"];
    println!(
        "| {:<10} | {:<5} | {:>10} | {:>6} | {:^14} | {:^14} | {:^14} |",
        "Model", "Scale", "Parameters", "Steps", datasets[0], datasets[1], datasets[2]
    );
    println!(
        "|{}|",
        [
            "-".repeat(12),
            "-".repeat(7),
            "-".repeat(12),
            "-".repeat(8),
            "-".repeat(16),
            "-".repeat(16),
            "-".repeat(16)
        ]
        .join("|")
    );
    let models = BUILTIN_MODELS
        .iter()
        .map(|b| Ok((b, b.load()?)))
        .collect::<Result<Vec<_>>>()?;
    // One row per (model, scale), grouped by scale so that a multi-scale
    // model sits among the others of each scale; within a scale, in the
    // built-in order (the default first).
    let mut rows: Vec<_> = models
        .iter()
        .flat_map(|(b, m)| b.scales.iter().map(move |&scale| (scale, *b, m)))
        .collect();
    rows.sort_by_key(|&(scale, ..)| scale);
    for (scale, b, m) in rows {
        let cell = |d: &str| {
            m.meta
                .benchmarks
                .iter()
                .find(|s| s.dataset == d && s.scale == scale)
                .map(|s| format!("{:.2} / {:.4}", s.psnr, s.ssim))
                .unwrap_or_else(|| "-".into())
        };
        let is_default = default_for_scale(scale).is_some_and(|d| d.name == b.name);
        println!(
            "| {:<10} | x{:<4} | {:>10} | {:>6} | {:^14} | {:^14} | {:^14} |",
            format!("{}{}", b.name, if is_default { " *" } else { "" }),
            scale,
            m.params.num_elements(),
            m.meta.training.steps,
            cell(datasets[0]),
            cell(datasets[1]),
            cell(datasets[2])
        );
    }
    println!("* the default for its scale (`srkit upscale` without --model)");
    Ok(())
}
