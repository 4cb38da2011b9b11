//! Benchmark evaluation: the procedure behind the PSNR/SSIM tables of SR papers.
//!
//! For every HR image of a dataset folder and every scale `s`:
//! 1. crop the HR image to a multiple of `s` ([`degrade::modcrop`]);
//! 2. make the LR input with the chosen degradation (BI by default: MATLAB
//!    bicubic downscale, rounded to 8-bit — [`degrade::degrade`]);
//! 3. upscale it with the method under test ([`Upscaler`]);
//! 4. score it against the cropped HR on the Y channel with `s` border pixels
//!    cropped ([`metrics`], paper convention unless told otherwise);
//!
//! then average the per-image scores over the dataset, as the MATLAB scripts
//! and BasicSR do (the mean of per-image PSNRs, not the PSNR of the mean MSE).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::degrade::{self, Degradation};
use crate::error::{Error, Result};
use crate::io::{self, ReadOptions};
use crate::metrics::{self, MetricOptions};
use crate::upscale::Upscaler;

/// File extensions treated as images when listing a dataset folder.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"];

/// A named set of HR images (one folder).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The dataset's name: the folder's name (`Set5`, `Set14`, `BSD100`).
    pub name: String,
    /// The image files, sorted by file name.
    pub images: Vec<PathBuf>,
}

impl Dataset {
    /// Lists the images of a folder. Fails if the folder cannot be read or
    /// holds no image.
    pub fn from_dir(dir: &Path) -> Result<Dataset> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut images = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if is_image && path.is_file() {
                images.push(path);
            }
        }
        if images.is_empty() {
            return Err(Error::invalid(
                "dataset",
                format!(
                    "{} holds no image ({})",
                    dir.display(),
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }
        images.sort();
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Dataset { name, images })
    }
}

/// How an evaluation is run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// How LR inputs are made from the HR images.
    pub degradation: Degradation,
    /// Seed for degradations that draw noise.
    pub seed: u64,
    /// Metric convention. Its `crop_border` is ignored: the scale is cropped,
    /// as the papers do.
    pub metrics: MetricOptions,
    /// Pixel limit applied when reading HR images.
    pub read: ReadOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            degradation: Degradation::Bicubic,
            seed: 0,
            metrics: MetricOptions::default(),
            read: ReadOptions::default(),
        }
    }
}

/// The scores of one image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageScore {
    /// File stem (`baby`).
    pub name: String,
    /// PSNR in dB.
    pub psnr: f64,
    /// SSIM in [−1, 1].
    pub ssim: f64,
}

/// One cell of the table: a method at a scale on a dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalResult {
    /// The method's name ([`Upscaler::name`]).
    pub method: String,
    /// The upscaling factor.
    pub scale: usize,
    /// The dataset's name ([`Dataset::name`]).
    pub dataset: String,
    /// Mean PSNR over the images, in dB.
    pub psnr: f64,
    /// Mean SSIM over the images.
    pub ssim: f64,
    /// Per-image scores, in the dataset's order.
    pub images: Vec<ImageScore>,
}

/// The JSON document `srkit eval --json` writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    /// Every evaluated (method, scale, dataset) cell.
    pub results: Vec<EvalResult>,
}

/// Scores one HR image: modcrop, degrade, upscale, measure.
pub fn evaluate_image(
    upscaler: &dyn Upscaler,
    hr_path: &Path,
    scale: usize,
    opts: &EvalOptions,
) -> Result<ImageScore> {
    let hr = io::read_image(hr_path, &opts.read)?;
    let hr = degrade::modcrop(&hr.without_alpha(), scale)?;
    let lr = degrade::degrade(&hr, scale, opts.degradation, opts.seed)?;
    let sr = upscaler.upscale(&lr, scale)?;
    let metric_opts = MetricOptions {
        crop_border: scale,
        ..opts.metrics
    };
    let scores = metrics::psnr_ssim(&hr, &sr, &metric_opts)?;
    let name = hr_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(ImageScore {
        name,
        psnr: scores.psnr,
        ssim: scores.ssim,
    })
}

/// Evaluates one method at one scale on one dataset, images in parallel.
/// `on_image` is called once per finished image (for progress bars).
pub fn evaluate(
    upscaler: &dyn Upscaler,
    dataset: &Dataset,
    scale: usize,
    opts: &EvalOptions,
    on_image: &(dyn Fn() + Sync),
) -> Result<EvalResult> {
    if !upscaler.supports_scale(scale) {
        return Err(Error::invalid(
            "scale",
            format!("{} does not support x{scale}", upscaler.name()),
        ));
    }
    let images = dataset
        .images
        .par_iter()
        .map(|path| {
            let score = evaluate_image(upscaler, path, scale, opts);
            on_image();
            score
        })
        .collect::<Result<Vec<_>>>()?;
    let n = images.len() as f64;
    Ok(EvalResult {
        method: upscaler.name(),
        scale,
        dataset: dataset.name.clone(),
        psnr: images.iter().map(|s| s.psnr).sum::<f64>() / n,
        ssim: images.iter().map(|s| s.ssim).sum::<f64>() / n,
        images,
    })
}

/// Lays results out like an SR paper's table: one row per (method, scale),
/// one column per dataset, cells `PSNR / SSIM` (dB to 2 decimals, SSIM to 4).
pub fn format_table(results: &[EvalResult]) -> String {
    let mut datasets: Vec<&str> = Vec::new();
    let mut rows: Vec<(&str, usize)> = Vec::new();
    for r in results {
        if !datasets.contains(&r.dataset.as_str()) {
            datasets.push(&r.dataset);
        }
        if !rows.contains(&(r.method.as_str(), r.scale)) {
            rows.push((&r.method, r.scale));
        }
    }
    let method_w = rows
        .iter()
        .map(|(m, _)| m.len())
        .chain(std::iter::once("Method".len()))
        .max()
        .unwrap_or(6);
    let cell_w = datasets
        .iter()
        .map(|d| d.len())
        .chain(std::iter::once("00.00 / 0.0000".len()))
        .max()
        .unwrap_or(14);
    let mut out = format!("| {:<method_w$} | Scale |", "Method");
    for d in &datasets {
        out += &format!(" {d:^cell_w$} |");
    }
    out += &format!("\n|{}|-------|", "-".repeat(method_w + 2));
    for _ in &datasets {
        out += &format!("{}|", "-".repeat(cell_w + 2));
    }
    for (method, scale) in &rows {
        out += &format!("\n| {method:<method_w$} | x{scale:<4} |");
        for d in &datasets {
            let cell = results
                .iter()
                .find(|r| r.method == *method && r.scale == *scale && r.dataset == *d)
                .map(|r| format!("{:.2} / {:.4}", r.psnr, r.ssim))
                .unwrap_or_else(|| "-".into());
            out += &format!(" {cell:^cell_w$} |");
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(method: &str, scale: usize, dataset: &str, psnr: f64) -> EvalResult {
        EvalResult {
            method: method.into(),
            scale,
            dataset: dataset.into(),
            psnr,
            ssim: 0.5,
            images: vec![],
        }
    }

    #[test]
    fn table_has_a_row_per_method_and_scale_and_a_column_per_dataset() {
        let t = format_table(&[
            cell("bicubic", 2, "Set5", 33.664),
            cell("bicubic", 2, "Set14", 30.2),
            cell("bicubic", 3, "Set5", 30.39),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].contains("Set5") && lines[0].contains("Set14"));
        assert!(lines[2].contains("x2") && lines[2].contains("33.66 / 0.5000"));
        assert!(lines[3].contains("x3"));
        assert_eq!(lines[3].rsplit('|').nth(1).map(str::trim), Some("-"), "{t}");
    }
}
