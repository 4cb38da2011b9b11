//! `srkit convert`: PyTorch checkpoint → srkit model file.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use srkit::models::import;

use super::parse_int_scale;

/// Convert a PyTorch checkpoint (.pth, zip or legacy format) into an srkit
/// model file (.safetensors with metadata), without Python.
///
/// The architecture and its hyper-parameters are recognised from the
/// checkpoint's key names and tensor shapes; --arch overrides that. The
/// file is read by a restricted unpickler that never runs code from it.
///
/// Example: srkit convert fsrcnn_x3.pth -o fsrcnn_x3.safetensors
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// PyTorch checkpoint to read.
    input: PathBuf,

    /// srkit model file to write (.safetensors).
    #[arg(short, long)]
    output: PathBuf,

    /// Architecture, if it is not recognised from the keys.
    #[arg(long)]
    arch: Option<String>,

    /// Scale, for weights that do not record theirs (FSRCNN); default: the
    /// one in the file name (`_x3`).
    #[arg(short, long, value_parser = parse_int_scale, allow_hyphen_values = true)]
    scale: Option<usize>,

    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.output.exists() && !a.force {
        bail!(
            "{} exists (pass --force to overwrite it)",
            a.output.display()
        );
    }
    if a.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("--output must end in .safetensors");
    }
    let mut model = import::load_pytorch(&a.input, a.arch.as_deref(), a.scale)?;
    let name = a
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.meta.training.data = vec![format!("imported from {name}")];
    model.save(&a.output)?;
    eprintln!(
        "{}: {} {} x{:?}, {} parameters",
        a.output.display(),
        model.meta.arch,
        model.meta.config,
        model.meta.scales,
        model.params.num_elements()
    );
    Ok(())
}
