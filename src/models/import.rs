//! Turning a third-party PyTorch `state_dict` into an srkit [`Model`]:
//! which architecture it is, with which hyper-parameters, read from its key
//! names and tensor shapes (the way chaiNNer's model loader works), then
//! every tensor checked against the network srkit builds from that config.
//!
//! Recognised layouts (key names of the code the weights come from):
//!
//! | arch | layout | tells us |
//! |---|---|---|
//! | `srcnn` | `conv1`, `conv2`, `conv3` | f1-f2-f3 and n1, n2 from the shapes; any scale |
//! | `fsrcnn` | `first_part.0`, `mid_part.*`, `last_part` (yjn870) | d, s, m; the scale is *not* in the weights |
//! | `espcn` | `first_part.0`, `first_part.2`, `last_part.0` (yjn870) | n1, n2, scale = √(output channels) |
//! | `vdsr` | `input`, `residual_layer.{i}.conv`, `output` (twtygqyy) | depth, width, biases; any scale |
//! | `srvgg` | `body.{i}` (Real-ESRGAN SRVGGNetCompact) | width, conv count, PReLU, scale = √(out / 3) |
//!
//! A scale the weights do not determine comes from the caller's hint
//! (`--scale`, or an `x3` in the file name).

use std::path::Path;

use rand::SeedableRng;
use serde_json::json;

use super::pytorch::{self, StateDict};
use super::{Model, ModelMeta, Network, TrainingRecord, ARCHITECTURES};
use crate::error::{Error, Result};
use crate::nn::{ParamStore, Tensor};

/// An architecture recognised in a state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// srkit architecture name.
    pub arch: &'static str,
    /// Its config as JSON.
    pub config: serde_json::Value,
    /// The scales the weights serve.
    pub scales: Vec<usize>,
}

/// Shape of `key`, if present.
fn shape<'a>(sd: &'a StateDict, key: &str) -> Option<&'a [usize]> {
    sd.get(key).map(Tensor::shape)
}

/// Largest `i` such that `format!(pattern, i)` is a key, for patterns with
/// one `{}`.
fn max_index(sd: &StateDict, prefix: &str, suffix: &str) -> Option<usize> {
    sd.keys()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
        .max()
}

/// `n` if it is a perfect square's root, e.g. 16 → 4.
fn exact_sqrt(n: usize) -> Option<usize> {
    let r = (n as f64).sqrt().round() as usize;
    (r * r == n && r > 0).then_some(r)
}

fn need_scale(arch: &str, hint: Option<usize>) -> Result<usize> {
    hint.ok_or_else(|| {
        Error::Model(format!(
            "{arch} weights do not record their scale: pass --scale (or name the file with \
             its scale, e.g. {arch}_x3.pth)"
        ))
    })
}

/// Scales an upsampled-input network serves when the file does not say:
/// the hint, or the three benchmark scales.
fn any_scale(hint: Option<usize>) -> Vec<usize> {
    hint.map_or_else(|| vec![2, 3, 4], |s| vec![s])
}

fn detect_srcnn(sd: &StateDict, hint: Option<usize>) -> Option<Result<Detected>> {
    let (w1, w2, w3) = (
        shape(sd, "conv1.weight")?,
        shape(sd, "conv2.weight")?,
        shape(sd, "conv3.weight")?,
    );
    let (&[n1, 1, f1, _], &[n2, _, f2, _], &[1, _, f3, _]) = (w1, w2, w3) else {
        return None;
    };
    Some(Ok(Detected {
        arch: "srcnn",
        config: json!({"f1": f1, "f2": f2, "f3": f3, "n1": n1, "n2": n2}),
        scales: any_scale(hint),
    }))
}

fn detect_fsrcnn(sd: &StateDict, hint: Option<usize>) -> Option<Result<Detected>> {
    let &[d, 1, 5, 5] = shape(sd, "first_part.0.weight")? else {
        return None;
    };
    let &[s, _, 1, 1] = shape(sd, "mid_part.0.weight")? else {
        return None;
    };
    shape(sd, "last_part.weight")?;
    // mid_part: shrink (0, 1), m x (conv, prelu), expand (2m + 2, 2m + 3).
    let last = max_index(sd, "mid_part.", ".weight")?;
    let m = last.checked_sub(3)? / 2;
    Some(need_scale("fsrcnn", hint).map(|scale| Detected {
        arch: "fsrcnn",
        config: json!({"scale": scale, "d": d, "s": s, "m": m}),
        scales: vec![scale],
    }))
}

fn detect_espcn(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[n1, 1, 5, 5] = shape(sd, "first_part.0.weight")? else {
        return None;
    };
    let &[n2, _, 3, 3] = shape(sd, "first_part.2.weight")? else {
        return None;
    };
    let &[out, _, 3, 3] = shape(sd, "last_part.0.weight")? else {
        return None;
    };
    let scale = exact_sqrt(out)?;
    Some(Ok(Detected {
        arch: "espcn",
        config: json!({"scale": scale, "n1": n1, "n2": n2}),
        scales: vec![scale],
    }))
}

fn detect_vdsr(sd: &StateDict, hint: Option<usize>) -> Option<Result<Detected>> {
    let &[features, 1, 3, 3] = shape(sd, "input.weight")? else {
        return None;
    };
    shape(sd, "output.weight")?;
    let hidden = max_index(sd, "residual_layer.", ".conv.weight").map_or(0, |i| i + 1);
    Some(Ok(Detected {
        arch: "vdsr",
        config: json!({"depth": hidden + 2, "features": features,
            "bias": sd.get("input.bias").is_some()}),
        scales: any_scale(hint),
    }))
}

fn detect_srvgg(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[num_feat, num_in_ch, 3, 3] = shape(sd, "body.0.weight")? else {
        return None;
    };
    let last = max_index(sd, "body.", ".weight")?;
    let &[out, _, 3, 3] = shape(sd, &format!("body.{last}.weight"))? else {
        return None;
    };
    if last % 2 != 0 || last < 2 || num_in_ch != 3 {
        return None;
    }
    let upscale = exact_sqrt(out / 3).filter(|r| r * r * 3 == out)?;
    let act = if sd.get("body.1.weight").is_some() {
        "prelu"
    } else {
        // ReLU and LeakyReLU leave no trace in a state dict; the released
        // models that lack PReLU weights use LeakyReLU 0.1 ... or ReLU.
        // PReLU is what every published SRVGGNetCompact uses.
        return Some(Err(Error::Model(
            "SRVGGNetCompact without PReLU weights: its activation (relu or lrelu) is not \
             recorded in the file"
                .into(),
        )));
    };
    Some(Ok(Detected {
        arch: "srvgg",
        config: json!({"num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat,
            "num_conv": (last - 2) / 2, "upscale": upscale, "act_type": act}),
        scales: vec![upscale],
    }))
}

type Detector = fn(&StateDict, Option<usize>) -> Option<Result<Detected>>;

/// Detectors in the order they are tried; more specific layouts first
/// (ESPCN's keys are a subset of nothing else, FSRCNN's `first_part.0` is
/// 5x5 with one input channel like ESPCN's, told apart by `mid_part`).
const DETECTORS: &[(&str, Detector)] = &[
    ("fsrcnn", detect_fsrcnn),
    ("espcn", detect_espcn),
    ("srcnn", detect_srcnn),
    ("vdsr", detect_vdsr),
    ("srvgg", detect_srvgg),
];

/// Recognises the architecture of `sd` (or reads it as `arch` when given)
/// and its hyper-parameters; `scale_hint` supplies a scale the weights do
/// not determine.
pub fn detect(sd: &StateDict, arch: Option<&str>, scale_hint: Option<usize>) -> Result<Detected> {
    if let Some(a) = arch {
        let (_, f) = DETECTORS.iter().find(|(n, _)| *n == a).ok_or_else(|| {
            Error::Model(format!(
                "cannot import {a:?} weights (importable: {}; srkit knows {})",
                DETECTORS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
                ARCHITECTURES.join(", ")
            ))
        })?;
        return f(sd, scale_hint).unwrap_or_else(|| {
            Err(Error::Model(format!(
                "the weights do not have the {a} layout (first keys: {})",
                first_keys(sd)
            )))
        });
    }
    DETECTORS
        .iter()
        .find_map(|(_, f)| f(sd, scale_hint))
        .unwrap_or_else(|| {
            Err(Error::Model(format!(
                "unrecognised architecture (first keys: {}); pass --arch if it is one of {}",
                first_keys(sd),
                DETECTORS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        })
}

fn first_keys(sd: &StateDict) -> String {
    let keys: Vec<&str> = sd.keys().take(4).collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// Builds the model `sd` holds: detects (or takes) the architecture, builds
/// it and loads every parameter, requiring each to be present with the
/// right shape. Keys the network has no use for are an error too (they
/// mean the detection was wrong), except integer buffers the reader already
/// skipped.
pub fn model_from_state_dict(
    sd: &StateDict,
    arch: Option<&str>,
    scale_hint: Option<usize>,
) -> Result<Model> {
    let d = detect(sd, arch, scale_hint)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut params = ParamStore::new();
    let network = Network::build(d.arch, &d.config, &mut params, &mut rng)?;
    let ids: Vec<_> = params.ids().collect();
    for id in ids {
        let name = params.name(id).to_owned();
        let t = sd.get(&name).ok_or_else(|| {
            Error::Model(format!(
                "{} weights lack {name:?} (config {})",
                d.arch, d.config
            ))
        })?;
        params.set(&name, t.clone())?;
    }
    let unused: Vec<&str> = sd.keys().filter(|k| params.id(k).is_none()).collect();
    if !unused.is_empty() {
        return Err(Error::Model(format!(
            "{} weights have {} tensor(s) the network does not use: {}",
            d.arch,
            unused.len(),
            unused
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Model {
        meta: ModelMeta {
            arch: d.arch.into(),
            config: network.config_json(),
            scales: d.scales,
            color: network.io().color.as_str().into(),
            value_range: [0.0, 1.0],
            training: TrainingRecord::default(),
            benchmarks: Vec::new(),
        },
        network,
        params,
    })
}

/// The scale a file name states, as in `fsrcnn_x3.pth` or `RealESRGAN_x4plus`.
pub fn scale_from_file_name(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?.to_ascii_lowercase();
    let bytes = stem.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphabetic();
        if bytes[i] != b'x' || !before_ok {
            return None;
        }
        let digits: String = stem[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|s| (1..=16).contains(s))
    })
}

/// Reads a PyTorch checkpoint file into a [`Model`] (see
/// [`model_from_state_dict`]); the scale hint defaults to the file name's.
pub fn load_pytorch(path: &Path, arch: Option<&str>, scale_hint: Option<usize>) -> Result<Model> {
    let sd = pytorch::load_checkpoint(path)?;
    let hint = scale_hint.or_else(|| scale_from_file_name(path));
    model_from_state_dict(&sd, arch, hint)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))
}

/// Whether `bytes` start like a PyTorch checkpoint (a zip archive or a
/// legacy pickle) rather than a safetensors file.
pub fn looks_like_pytorch(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_read_from_file_names() {
        let s = |n: &str| scale_from_file_name(Path::new(n));
        assert_eq!(s("fsrcnn_x3.pth"), Some(3));
        assert_eq!(s("RealESRGAN_x4plus.pth"), Some(4));
        assert_eq!(s("edsr_baseline_x2-1bc95232.pt"), Some(2));
        assert_eq!(s("realesr-animevideov3.pth"), None);
        assert_eq!(s("box.pth"), None);
    }
}
