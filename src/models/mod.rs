//! SR model architectures and the model file format.
//!
//! One file per architecture ([`srcnn`]), each with its config struct and a
//! doc comment citing the paper. [`Network`] is the closed set of
//! architectures srkit can build; [`Model`] is a network with its weights
//! and the metadata a model file carries.
//!
//! # Model files
//!
//! A model file is a safetensors file: every parameter as an `f32` tensor
//! under its PyTorch `state_dict` name, and in the header's `__metadata__`
//! one key, `srkit`, holding [`ModelMeta`] as JSON (architecture, config,
//! scales, colour space, value range, training record). Loading checks the
//! architecture name, builds the network from the config, and requires every
//! tensor's name and shape to match it.

pub mod builtin;
pub mod edsr;
pub mod espcn;
pub mod fsrcnn;
pub mod import;
pub mod pytorch;
pub mod rcan;
pub mod rdn;
pub mod rrdbnet;
pub mod srcnn;
pub mod srvgg;
pub mod vdsr;

use std::collections::HashMap;
use std::path::Path;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{Backend, Conv2d, Eager, Ops, ParamStore, Tensor};

pub use edsr::{Edsr, EdsrConfig};
pub use espcn::{Espcn, EspcnConfig};
pub use fsrcnn::{Fsrcnn, FsrcnnConfig};
pub use rcan::{Rcan, RcanConfig};
pub use rdn::{Rdn, RdnConfig};
pub use rrdbnet::{RrdbNet, RrdbNetConfig};
pub use srcnn::{Srcnn, SrcnnConfig};
pub use srvgg::{Srvgg, SrvggConfig};
pub use vdsr::{Vdsr, VdsrConfig};

/// The metadata key under which a model file stores [`ModelMeta`].
pub const METADATA_KEY: &str = "srkit";

/// The colour representation a network works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorSpace {
    /// One channel: BT.601 luma (MATLAB `rgb2ycbcr`) in `[0, 1]`; chroma is
    /// upscaled with bicubic. The papers' convention up to VDSR.
    Y,
    /// Three channels, RGB in `[0, 1]`.
    Rgb,
}

impl ColorSpace {
    /// Channels the network sees and returns.
    pub fn channels(self) -> usize {
        match self {
            ColorSpace::Y => 1,
            ColorSpace::Rgb => 3,
        }
    }

    /// The name stored in model files (`"y"`, `"rgb"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ColorSpace::Y => "y",
            ColorSpace::Rgb => "rgb",
        }
    }
}

/// What a network takes and returns, as inference and training need to
/// know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkIo {
    /// Colour representation of input and output.
    pub color: ColorSpace,
    /// `None`: the input is the bicubic-upscaled image and the output has
    /// its size (SRCNN, VDSR; works for any scale the weights learned).
    /// `Some(s)`: the input is the LR image and the network upscales by `s`
    /// itself (FSRCNN, EDSR, ...).
    pub upscale: Option<usize>,
    /// Pixels the network's valid convolutions remove from each side
    /// (SRCNN: 8); inference pads the image by this much with edge
    /// replication, so output and input have the same extent.
    pub shrink: usize,
    /// Input pixels beyond `shrink` each output pixel depends on, per side:
    /// the overlap a tile needs for tiled inference to equal whole-image
    /// inference.
    pub context: usize,
    /// Whether `context` covers the whole receptive field. Networks with
    /// global pooling (channel attention) or very deep stacks see the whole
    /// input; their tiles overlap by `context` and differ from whole-image
    /// inference by a small amount near tile seams.
    pub exact_tiling: bool,
    /// Input sides must be multiples of this (RRDBNet at x2 folds its input
    /// with a pixel unshuffle by 2); inference pads each tile's bottom and
    /// right edges by replication to a multiple and crops the output.
    pub multiple: usize,
}

/// Tile overlap (input pixels per side) for networks whose receptive field
/// is larger: Real-ESRGAN and BasicSR pad their tiles by 10; srkit uses 24,
/// which covers VDSR's and SRVGGNetCompact's whole receptive field (exact
/// tiles) at a cost of ~20 % more pixels on a 512 tile.
pub const MAX_TILE_CONTEXT: usize = 24;

impl NetworkIo {
    /// The I/O of a network of `same`-padded convolutions whose output pixel
    /// sees `radius` input pixels on each side, capped at
    /// [`MAX_TILE_CONTEXT`] (`global`: it also pools over the whole input).
    pub fn padded(color: ColorSpace, upscale: Option<usize>, radius: usize, global: bool) -> Self {
        NetworkIo {
            color,
            upscale,
            shrink: 0,
            context: radius.min(MAX_TILE_CONTEXT),
            exact_tiling: !global && radius <= MAX_TILE_CONTEXT,
            multiple: 1,
        }
    }

    /// Output pixels per input pixel along each axis (1 for networks fed the
    /// bicubic-upscaled image).
    pub fn factor(&self) -> usize {
        self.upscale.unwrap_or(1)
    }
}

/// Architectures srkit knows, by file name.
pub const ARCHITECTURES: &[&str] = &[
    "srcnn", "vdsr", "fsrcnn", "espcn", "srvgg", "edsr", "rcan", "rdn", "rrdbnet",
];

/// A built network of one of the known architectures.
#[derive(Debug, Clone)]
pub enum Network {
    /// [`Srcnn`].
    Srcnn(Srcnn),
    /// [`Vdsr`].
    Vdsr(Vdsr),
    /// [`Fsrcnn`].
    Fsrcnn(Fsrcnn),
    /// [`Espcn`].
    Espcn(Espcn),
    /// [`Srvgg`] (Real-ESRGAN's SRVGGNetCompact).
    Srvgg(Srvgg),
    /// [`Edsr`].
    Edsr(Edsr),
    /// [`Rcan`].
    Rcan(Rcan),
    /// [`Rdn`].
    Rdn(Rdn),
    /// [`RrdbNet`] (ESRGAN / Real-ESRGAN).
    RrdbNet(RrdbNet),
}

/// Calls `$body` with `$n` bound to the architecture inside a [`Network`].
macro_rules! each_network {
    ($net:expr, $n:ident => $body:expr) => {
        match $net {
            Network::Srcnn($n) => $body,
            Network::Vdsr($n) => $body,
            Network::Fsrcnn($n) => $body,
            Network::Espcn($n) => $body,
            Network::Srvgg($n) => $body,
            Network::Edsr($n) => $body,
            Network::Rcan($n) => $body,
            Network::Rdn($n) => $body,
            Network::RrdbNet($n) => $body,
        }
    };
}

/// The default config of `arch` at `scale` (the paper's model), as JSON:
/// what `srkit train --arch` starts from before `--config` overrides.
pub fn default_config(arch: &str, scale: usize) -> Result<serde_json::Value> {
    let v = match arch {
        "srcnn" => serde_json::to_value(SrcnnConfig::default()),
        "vdsr" => serde_json::to_value(VdsrConfig::default()),
        "fsrcnn" => serde_json::to_value(FsrcnnConfig::paper(scale)),
        "espcn" => serde_json::to_value(EspcnConfig::paper(scale)),
        "srvgg" => serde_json::to_value(SrvggConfig {
            upscale: scale,
            ..SrvggConfig::default()
        }),
        // The baseline: the full EDSR (43M parameters) is out of reach of
        // CPU training.
        "edsr" => serde_json::to_value(EdsrConfig::baseline(scale)),
        "rcan" => serde_json::to_value(RcanConfig::paper(scale)),
        "rdn" => serde_json::to_value(RdnConfig::paper(scale)),
        "rrdbnet" => serde_json::to_value(RrdbNetConfig {
            scale,
            ..RrdbNetConfig::esrgan()
        }),
        other => {
            return Err(Error::Model(format!(
                "unknown architecture {other:?} (known: {})",
                ARCHITECTURES.join(", ")
            )))
        }
    };
    v.map_err(|e| Error::Model(format!("cannot serialise the {arch} config: {e}")))
}

/// Applies `blocks` in sequence (`x` itself when there are none).
pub(crate) fn chain<O: Ops, B>(
    o: &mut O,
    x: &O::Value,
    blocks: &[B],
    mut apply: impl FnMut(&B, &mut O, &O::Value) -> Result<O::Value>,
) -> Result<O::Value> {
    let mut h: Option<O::Value> = None;
    for b in blocks {
        h = Some(apply(b, o, h.as_ref().unwrap_or(x))?);
    }
    Ok(h.unwrap_or_else(|| x.clone()))
}

/// Parameters of `arch` built from `config` (for the architectures'
/// parameter-count tests).
#[cfg(test)]
pub(crate) fn param_count(arch: &str, config: impl Serialize) -> usize {
    let config = serde_json::to_value(config).expect("config serialises");
    Model::new(arch, config, vec![1], 0)
        .expect("builds")
        .params
        .num_elements()
}

/// Parses an architecture's config from JSON.
fn parse_config<C: serde::de::DeserializeOwned>(
    arch: &str,
    config: &serde_json::Value,
) -> Result<C> {
    serde_json::from_value(config.clone())
        .map_err(|e| Error::Model(format!("bad {arch} config {config}: {e}")))
}

impl Network {
    /// Builds `arch` from its JSON config, registering fresh parameters in
    /// `store`. An unknown architecture or a config that does not parse is
    /// an error.
    pub fn build(
        arch: &str,
        config: &serde_json::Value,
        store: &mut ParamStore,
        rng: &mut impl rand::Rng,
    ) -> Result<Network> {
        Ok(match arch {
            "srcnn" => Network::Srcnn(Srcnn::new(store, parse_config(arch, config)?, rng)?),
            "vdsr" => Network::Vdsr(Vdsr::new(store, parse_config(arch, config)?, rng)?),
            "fsrcnn" => Network::Fsrcnn(Fsrcnn::new(store, parse_config(arch, config)?, rng)?),
            "espcn" => Network::Espcn(Espcn::new(store, parse_config(arch, config)?, rng)?),
            "srvgg" => Network::Srvgg(Srvgg::new(store, parse_config(arch, config)?, rng)?),
            "edsr" => Network::Edsr(Edsr::new(store, parse_config(arch, config)?, rng)?),
            "rcan" => Network::Rcan(Rcan::new(store, parse_config(arch, config)?, rng)?),
            "rdn" => Network::Rdn(Rdn::new(store, parse_config(arch, config)?, rng)?),
            "rrdbnet" => Network::RrdbNet(RrdbNet::new(store, parse_config(arch, config)?, rng)?),
            other => {
                return Err(Error::Model(format!(
                    "unknown architecture {other:?} (known: {})",
                    ARCHITECTURES.join(", ")
                )))
            }
        })
    }

    /// The architecture's name as stored in model files.
    pub fn arch(&self) -> &'static str {
        match self {
            Network::Srcnn(_) => "srcnn",
            Network::Vdsr(_) => "vdsr",
            Network::Fsrcnn(_) => "fsrcnn",
            Network::Espcn(_) => "espcn",
            Network::Srvgg(_) => "srvgg",
            Network::Edsr(_) => "edsr",
            Network::Rcan(_) => "rcan",
            Network::Rdn(_) => "rdn",
            Network::RrdbNet(_) => "rrdbnet",
        }
    }

    /// The config as JSON, as stored in model files.
    pub fn config_json(&self) -> serde_json::Value {
        each_network!(self, n => serde_json::to_value(n.config).unwrap_or_default())
    }

    /// What the network takes and returns.
    pub fn io(&self) -> NetworkIo {
        each_network!(self, n => n.io())
    }

    /// The forward pass on `[N, C, H, W]`, taped on a [`Graph`](crate::nn::Graph) or eager
    /// on [`Eager`].
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        each_network!(self, n => n.forward(o, store, x))
    }

    /// The convolutions of a network that is a plain chain `conv, ReLU,
    /// conv, ReLU, …, conv` (SRCNN; VDSR, whose global skip comes after the
    /// chain), in order; `None` for every other shape. Training uses it to
    /// find and revive dead ReLU units ([`crate::train::revive`]).
    pub fn relu_chain(&self) -> Option<Vec<Conv2d>> {
        match self {
            Network::Srcnn(n) => Some(n.relu_chain()),
            Network::Vdsr(n) => Some(n.relu_chain()),
            _ => None,
        }
    }

    /// Tape-free forward pass on the CPU-or-other `backend`.
    pub fn infer(&self, backend: &dyn Backend, store: &ParamStore, x: &Tensor) -> Result<Tensor> {
        self.forward(&mut Eager::new(backend), store, x)
    }
}

/// How a model was trained, as recorded in its file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// Training data folders.
    pub data: Vec<String>,
    /// The scale augmentation's downscaling factors (`--downscale-aug`)
    /// when these weights were kept; empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downscale_aug: Vec<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Patches per step.
    pub batch_size: usize,
    /// Wall time of training, seconds (summed over resumed runs).
    pub wall_seconds: f64,
    /// Validation dataset name.
    pub val_dataset: String,
    /// Validation PSNR (paper convention) of these weights, dB (the mean
    /// over scales for weights trained on several).
    pub val_psnr: f64,
    /// Validation SSIM of these weights.
    pub val_ssim: f64,
}

/// Everything a model file says besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Architecture name ([`ARCHITECTURES`]).
    pub arch: String,
    /// Architecture config (e.g. [`SrcnnConfig`] as JSON).
    pub config: serde_json::Value,
    /// Upscaling factors the weights were trained for.
    pub scales: Vec<usize>,
    /// Colour space the network works in: `"y"` (BT.601 luma) or `"rgb"`
    /// ([`ColorSpace`]).
    pub color: String,
    /// Range of the network's input and output samples.
    pub value_range: [f32; 2],
    /// How the weights were made.
    #[serde(default)]
    pub training: TrainingRecord,
    /// Benchmark scores recorded with `srkit eval --record` (paper
    /// convention, BI degradation).
    #[serde(default)]
    pub benchmarks: Vec<BenchmarkScore>,
}

impl ModelMeta {
    /// The metadata of a fresh (untrained, unscored) `network` for `scales`.
    pub fn new(network: &Network, scales: Vec<usize>) -> Self {
        ModelMeta {
            arch: network.arch().to_string(),
            config: network.config_json(),
            scales,
            color: network.io().color.as_str().into(),
            value_range: [0.0, 1.0],
            training: TrainingRecord::default(),
            benchmarks: Vec::new(),
        }
    }
}

/// A model's mean score on one benchmark dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkScore {
    /// Dataset name (`Set5`).
    pub dataset: String,
    /// Upscaling factor.
    pub scale: usize,
    /// Mean PSNR, dB.
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
}

/// A network, its weights and its metadata.
#[derive(Debug, Clone)]
pub struct Model {
    /// The metadata stored with the weights.
    pub meta: ModelMeta,
    /// The built architecture.
    pub network: Network,
    /// The weights.
    pub params: ParamStore,
}

impl Model {
    /// A freshly initialised model (weights from `seed`).
    pub fn new(
        arch: &str,
        config: serde_json::Value,
        scales: Vec<usize>,
        seed: u64,
    ) -> Result<Model> {
        if scales.is_empty() || scales.contains(&0) {
            return Err(Error::invalid("scale", format!("{scales:?}")));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let network = Network::build(arch, &config, &mut params, &mut rng)?;
        Ok(Model {
            meta: ModelMeta::new(&network, scales),
            network,
            params,
        })
    }

    /// Parses a model file's bytes; `name` is used in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Model> {
        let bad = |why: String| Error::Model(format!("{name}: {why}"));
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a valid safetensors model file ({e})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| bad(format!("no '{METADATA_KEY}' metadata: not an srkit model")))?;
        let meta: ModelMeta =
            serde_json::from_str(json).map_err(|e| bad(format!("bad metadata: {e}")))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut params = ParamStore::new();
        let network = Network::build(&meta.arch, &meta.config, &mut params, &mut rng)
            .map_err(|e| bad(e.to_string()))?;
        if meta.color != network.io().color.as_str() {
            return Err(bad(format!(
                "colour space {:?} does not match the {} network's {:?}",
                meta.color,
                meta.arch,
                network.io().color.as_str()
            )));
        }
        params
            .load_safetensors(bytes)
            .map_err(|e| bad(e.to_string()))?;
        let model = Model {
            meta,
            network,
            params,
        };
        model.check_loaded().map_err(bad)?;
        Ok(model)
    }

    /// Largest upscaling factor a model file may declare.
    pub const MAX_SCALE: usize = 16;

    /// Refuses what a file can carry but no usable model has: a scale
    /// outside `1..=MAX_SCALE`, or a weight that is NaN or infinite (it
    /// would silently blacken or corrupt every output).
    pub(crate) fn check_loaded(&self) -> std::result::Result<(), String> {
        let scales = &self.meta.scales;
        if scales.is_empty() || scales.iter().any(|&s| !(1..=Self::MAX_SCALE).contains(&s)) {
            return Err(format!("scales {scales:?} outside 1..={}", Self::MAX_SCALE));
        }
        for id in self.params.ids() {
            let bad = self
                .params
                .get(id)
                .data()
                .iter()
                .filter(|v| !v.is_finite())
                .count();
            if bad > 0 {
                return Err(format!(
                    "tensor {:?} has {bad} non-finite value(s) (NaN or infinity)",
                    self.params.name(id)
                ));
            }
        }
        Ok(())
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Model::from_bytes(&bytes, &path.display().to_string())
    }

    /// Serialises weights and metadata to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_string(&self.meta)
            .map_err(|e| Error::Model(format!("cannot serialise metadata: {e}")))?;
        let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
        self.params.to_safetensors_with_metadata(Some(metadata))
    }

    /// Writes the model file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::io::write_atomic(path, |w| w.write_all(&bytes))
    }

    /// Copies into this model every tensor of `other` with the same name and
    /// shape, and returns how many were copied: a warm start for training
    /// (another scale's upsampler differs, the body does not). Fails when the
    /// architectures differ or no tensor matches, since then nothing would be
    /// carried over and the run would silently start from scratch.
    pub fn warm_start(&mut self, other: &Model) -> Result<usize> {
        if other.meta.arch != self.meta.arch {
            return Err(Error::invalid(
                "init",
                format!(
                    "a {} model cannot start a {} network",
                    other.meta.arch, self.meta.arch
                ),
            ));
        }
        let mut copied = 0;
        let ids: Vec<_> = self.params.ids().collect();
        for id in ids {
            let name = self.params.name(id).to_string();
            if let Some(src) = other.params.id(&name).map(|i| other.params.get(i)) {
                if src.shape() == self.params.get(id).shape() {
                    self.params.set(&name, src.clone())?;
                    copied += 1;
                }
            }
        }
        if copied == 0 {
            return Err(Error::invalid(
                "init",
                "no tensor of the model matches this network's names and shapes",
            ));
        }
        Ok(copied)
    }

    /// Whether the weights were trained for `scale`.
    pub fn supports_scale(&self, scale: usize) -> bool {
        self.meta.scales.contains(&scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srcnn() -> Model {
        Model::new(
            "srcnn",
            serde_json::to_value(SrcnnConfig::default()).unwrap(),
            vec![3],
            7,
        )
        .unwrap()
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let m = srcnn();
        let back = Model::from_bytes(&m.to_bytes().unwrap(), "m").unwrap();
        assert_eq!(back.meta, m.meta);
        for id in m.params.ids() {
            assert_eq!(
                m.params.get(id),
                back.params.get(id),
                "{}",
                m.params.name(id)
            );
        }
    }

    #[test]
    fn bad_model_files_are_refused_with_their_reason() {
        let m = srcnn();
        let bytes = m.to_bytes().unwrap();
        let err = |b: &[u8]| Model::from_bytes(b, "f").unwrap_err().to_string();

        assert!(err(&bytes[..bytes.len() - 10]).contains("not a valid safetensors"));
        assert!(err(b"").contains("not a valid safetensors"));
        assert!(err(b"garbage that is not a model").contains("not a valid safetensors"));

        let mut unknown = m.clone();
        unknown.meta.arch = "vdsr9000".into();
        assert!(err(&unknown.to_bytes().unwrap()).contains("unknown architecture"));

        // Config says n1 = 32 but the tensors are n1 = 64: shape mismatch.
        let mut wrong = m.clone();
        wrong.meta.config = serde_json::to_value(SrcnnConfig {
            n1: 32,
            ..SrcnnConfig::default()
        })
        .unwrap();
        let e = err(&wrong.to_bytes().unwrap());
        assert!(e.contains("conv1.weight") && e.contains("shape"), "{e}");

        let plain = m.params.to_safetensors().unwrap();
        assert!(err(&plain).contains("not an srkit model"));
        assert!(!m.supports_scale(2) && m.supports_scale(3));
    }

    #[test]
    fn warm_start_copies_what_matches_and_refuses_what_cannot() {
        let edsr = |upscale: usize, seed: u64| {
            let config = edsr::EdsrConfig {
                num_feat: 8,
                num_block: 2,
                ..edsr::EdsrConfig::baseline(upscale)
            };
            Model::new(
                "edsr",
                serde_json::to_value(config).unwrap(),
                vec![upscale],
                seed,
            )
            .unwrap()
        };
        let x4 = edsr(4, 1);
        let mut x2 = edsr(2, 2);
        let copied = x2.warm_start(&x4).unwrap();
        // x4's upsampler has two conv + shuffle stages, x2's one: every x2
        // tensor has a same-shaped namesake in x4.
        assert_eq!(copied, x2.params.len());
        assert!(x4.params.len() > x2.params.len());
        for id in x2.params.ids() {
            let name = x2.params.name(id);
            let src = x4.params.id(name).map(|i| x4.params.get(i));
            assert_eq!(Some(x2.params.get(id)), src, "{name}");
        }
        let err = x2.warm_start(&srcnn()).unwrap_err().to_string();
        assert!(err.contains("srcnn") && err.contains("edsr"), "{err}");
        // Another width shares only the 3-channel output bias.
        let wide = Model::new(
            "edsr",
            serde_json::to_value(edsr::EdsrConfig::baseline(2)).unwrap(),
            vec![2],
            3,
        )
        .unwrap();
        assert_eq!(x2.warm_start(&wide).unwrap(), 1);
        let mut empty = x4.clone();
        empty.params = ParamStore::new();
        let err = x2.warm_start(&empty).unwrap_err().to_string();
        assert!(err.contains("no tensor"), "{err}");
    }
}
