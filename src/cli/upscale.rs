//! `srkit upscale`: the main job.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use srkit::infer::{ModelUpscaler, DEFAULT_TILE};
use srkit::models::{builtin, import, Model};
use srkit::resample::Kernel;
use srkit::upscale::{Interpolation, Upscaler};

use super::{check_output_size, parse_int_scale, progress_bar, OutputArgs};

/// Upscale an image, several images, or folders of them.
///
/// With one input file, -o names the output file (or a folder to put it in:
/// an existing one, or a path ending in /). With several inputs or a folder (its images, not its
/// subfolders), -o is a folder, created if missing, and each result keeps
/// its input's name (.png unless the input is a JPEG); the model is loaded
/// once, an image that fails is reported and the others still run, and the
/// exit status says whether all succeeded.
///
/// With no --model or --method, the best built-in model for the scale is
/// used (see `srkit models`), or bicubic where none exists. --model also
/// takes PyTorch checkpoints (.pth) of the architectures srkit knows, read
/// without Python. Y-channel models (SRCNN, VDSR, FSRCNN) upscale CbCr with
/// bicubic; RGB models see all three channels; alpha is always bicubic.
/// 16-bit input gives 16-bit output.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Input images or folders of images (PNG, JPEG, BMP, TIFF, WebP).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

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
    #[arg(long, requires = "model", conflicts_with = "method")]
    arch: Option<String>,

    /// An interpolation kernel instead of a model: bicubic, bilinear,
    /// nearest, lanczos2, lanczos3, box.
    #[arg(short, long)]
    method: Option<String>,

    /// Tile side in output pixels for model inference, at least 64 (bounds
    /// memory; output is identical for networks whose receptive field fits
    /// the tile overlap; smaller tiles spend most of their work on the
    /// overlap).
    #[arg(long, default_value_t = DEFAULT_TILE, value_parser = parse_tile)]
    tile: usize,
}

/// Smallest `--tile`: below it the overlap read around every tile (up to 24
/// input pixels a side) multiplies the work many times over.
const MIN_TILE: usize = 64;

fn parse_tile(s: &str) -> std::result::Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a positive integer"))?;
    if v < MIN_TILE {
        return Err(format!("{v} is below {MIN_TILE}"));
    }
    Ok(v)
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
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt" | "pkl")
        ) {
            bail!(
                "{}: not a PyTorch checkpoint (neither a zip archive nor a pickle)",
                path.display()
            );
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

/// Extensions of the images a folder input contributes.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"];

/// What `srkit upscale` was asked to do: one file, or many into a folder.
enum Job {
    Single { input: PathBuf },
    Batch { pairs: Vec<(PathBuf, PathBuf)> },
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Resolves inputs and output into one job, refusing before any work an
/// empty folder, two inputs with the same output name, or an output that
/// would replace its input without --force.
fn plan(a: &UpscaleArgs) -> Result<Job> {
    let output = &a.out.output;
    // `-o out/` names a folder even before it exists.
    let to_folder = output.is_dir() || output.to_string_lossy().ends_with(std::path::is_separator);
    if let [input] = &a.inputs[..] {
        if !input.is_dir() && !to_folder {
            a.out.check(&[input])?;
            return Ok(Job::Single {
                input: input.clone(),
            });
        }
    }
    let mut files = Vec::new();
    for input in &a.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot list {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && extension(p).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
                })
                .collect();
            if found.is_empty() {
                bail!("no images in {}", input.display());
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    if output.exists() && !output.is_dir() {
        bail!(
            "-o {} must be a folder when upscaling several images",
            output.display()
        );
    }
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    for input in files {
        let ext = match extension(&input).as_deref() {
            Some(e @ ("jpg" | "jpeg")) => e.to_string(),
            _ => "png".into(),
        };
        let stem = input
            .file_stem()
            .with_context(|| format!("{} has no file name", input.display()))?;
        let mut name = stem.to_os_string();
        name.push(format!(".{ext}"));
        let out = output.join(name);
        if let Some((other, _)) = pairs.iter().find(|(_, o)| *o == out) {
            bail!(
                "{} and {} would both be written to {}",
                other.display(),
                input.display(),
                out.display()
            );
        }
        if !a.out.force && out.exists() && out.canonicalize().ok() == input.canonicalize().ok() {
            bail!(
                "output {} is the input file; pass --force to overwrite it",
                out.display()
            );
        }
        pairs.push((input, out));
    }
    Ok(Job::Batch { pairs })
}

pub fn run(a: UpscaleArgs) -> Result<()> {
    let job = plan(&a)?;
    let source = ModelSource {
        arch: a.arch.clone(),
        scale_hint: a.scale,
    };
    let bar = progress_bar(0, "upscale");
    // Batch jobs show one bar over the images instead of one over tiles.
    let tile_progress = matches!(job, Job::Single { .. });
    let with_bar = |mut u: ModelUpscaler| {
        if !tile_progress {
            return u;
        }
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
    let upscale_one = |input: &Path| -> Result<srkit::Image> {
        let lr = srkit::io::read_image(input, &a.out.read_options())?;
        check_output_size(lr.width() * scale, lr.height() * scale, a.out.max_pixels)?;
        upscaler
            .upscale(&lr, scale)
            .with_context(|| format!("upscaling {} with {}", input.display(), upscaler.name()))
    };
    match job {
        Job::Single { input } => {
            let sr = upscale_one(&input)?;
            bar.finish_and_clear();
            a.out.write(&sr)
        }
        Job::Batch { pairs } => {
            bar.finish_and_clear();
            let created = !a.out.output.exists();
            std::fs::create_dir_all(&a.out.output)
                .with_context(|| format!("cannot create {}", a.out.output.display()))?;
            let all = progress_bar(pairs.len() as u64, "upscale");
            let mut failed = 0;
            for (input, out) in &pairs {
                all.set_message(input.display().to_string());
                if let Err(e) = upscale_one(input).and_then(|sr| a.out.write_to(&sr, out)) {
                    failed += 1;
                    // Read and upscale errors name the file already.
                    all.suspend(|| eprintln!("srkit: {e:#}"));
                }
                all.inc(1);
            }
            all.finish_and_clear();
            if failed == pairs.len() && created {
                // Nothing was written: leave no empty folder behind either
                // (remove_dir refuses a folder that is not empty).
                let _ = std::fs::remove_dir(&a.out.output);
            }
            if failed > 0 {
                bail!("{failed} of {} images failed", pairs.len());
            }
            eprintln!(
                "{} image{} upscaled x{scale} with {} into {}",
                pairs.len(),
                if pairs.len() == 1 { "" } else { "s" },
                upscaler.name(),
                a.out.output.display()
            );
            Ok(())
        }
    }
}
