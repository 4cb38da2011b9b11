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
//! | `edsr` | BasicSR (`conv_first`, `body.{i}.conv1`, `upsample.*`) or EDSR-PyTorch (`head`, `body.{i}.body.*`, `tail`) | width, blocks, scale; residual scale 0.1 for 256 channels (the paper's rule) |
//! | `rcan` | BasicSR (`body.{g}.residual_group.{b}.rcab.*`) or the official code (`body.{g}.body.{b}.body.*`, `conv_du`) | groups, blocks, width, reduction, scale |
//! | `rdn` | EDSR-PyTorch (`SFENet1`, `RDBs.{i}.convs.{c}`, `GFF`, `UPNet`) | G0, D, C, G, scale |
//! | `rrdbnet` | BasicSR / Real-ESRGAN (`conv_first`, `body.{i}.rdb1`), ESRGAN (`RRDB_trunk`, `upconv1`) and old ESRGAN (`model.1.sub.*`) | blocks, width, growth, scale from the input unshuffle |
//!
//! Official layouts are renamed to BasicSR's keys, srkit's own; constant
//! mean-shift convolutions (`sub_mean`, `add_mean`) are dropped — srkit
//! applies the same DIV2K mean.
//!
//! A scale the weights do not determine comes from the caller's hint
//! (`--scale`, or an `x3` in the file name).

use std::path::Path;

use rand::SeedableRng;
use serde_json::json;

use super::pytorch::{self, StateDict};
use super::{Model, ModelMeta, Network, ARCHITECTURES};
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

/// `upsample.{2k}` convolutions of BasicSR's `Upsample`: one 9F-output
/// conv means x3, n 4F-output convs mean x2ⁿ.
fn upsample_scale(sd: &StateDict, prefix: &str, f: usize) -> Option<usize> {
    let first = shape(sd, &format!("{prefix}.0.weight"))?;
    if first[0] == 9 * f {
        return Some(3);
    }
    let mut n = 0;
    while let Some(sh) = shape(sd, &format!("{prefix}.{}.weight", 2 * n)) {
        if sh[0] != 4 * f {
            return None;
        }
        n += 1;
    }
    Some(1 << n)
}

fn detect_edsr(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[f, 3, 3, 3] = shape(sd, "conv_first.weight")? else {
        return None;
    };
    shape(sd, "body.0.conv1.weight")?;
    shape(sd, "conv_after_body.weight")?;
    let blocks = max_index(sd, "body.", ".conv1.weight")? + 1;
    let upscale = if sd.get("upsample.0.weight").is_some() {
        upsample_scale(sd, "upsample", f)?
    } else {
        1
    };
    Some(Ok(Detected {
        arch: "edsr",
        config: json!({"num_feat": f, "num_block": blocks, "upscale": upscale,
            "res_scale": if f >= 256 { 0.1 } else { 1.0 }, "img_range": 255.0,
            "rgb_mean": super::edsr::DIV2K_RGB_MEAN}),
        scales: vec![upscale],
    }))
}

fn detect_rcan(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[f, 3, 3, 3] = shape(sd, "conv_first.weight")? else {
        return None;
    };
    let &[squeezed, ..] = shape(sd, "body.0.residual_group.0.rcab.3.attention.1.weight")? else {
        return None;
    };
    let groups = max_index(sd, "body.", ".conv.weight")? + 1;
    let blocks = max_index(sd, "body.0.residual_group.", ".rcab.0.weight")? + 1;
    let upscale = upsample_scale(sd, "upsample", f)?;
    Some(Ok(Detected {
        arch: "rcan",
        config: json!({"num_feat": f, "num_group": groups, "num_block": blocks,
            "squeeze_factor": f / squeezed.max(1), "upscale": upscale, "res_scale": 1.0,
            "img_range": 255.0, "rgb_mean": super::edsr::DIV2K_RGB_MEAN}),
        scales: vec![upscale],
    }))
}

fn detect_rdn(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[g0, 3, _, _] = shape(sd, "SFENet1.weight")? else {
        return None;
    };
    let &[g, ..] = shape(sd, "RDBs.0.convs.0.conv.0.weight")? else {
        return None;
    };
    let d = max_index(sd, "RDBs.", ".LFF.weight")? + 1;
    let c = max_index(sd, "RDBs.0.convs.", ".conv.0.weight")? + 1;
    let &[up0, ..] = shape(sd, "UPNet.0.weight")? else {
        return None;
    };
    let upscale = if sd.get("UPNet.4.weight").is_some() {
        4
    } else {
        exact_sqrt(up0 / g.max(1))?
    };
    Some(Ok(Detected {
        arch: "rdn",
        config: json!({"g0": g0, "d": d, "c": c, "g": g, "upscale": upscale,
            "img_range": 255.0}),
        scales: vec![upscale],
    }))
}

fn detect_rrdbnet(sd: &StateDict, _hint: Option<usize>) -> Option<Result<Detected>> {
    let &[f, c_in, 3, 3] = shape(sd, "conv_first.weight")? else {
        return None;
    };
    let &[grow, ..] = shape(sd, "body.0.rdb1.conv1.weight")? else {
        return None;
    };
    shape(sd, "conv_up1.weight")?;
    let blocks = max_index(sd, "body.", ".rdb1.conv1.weight")? + 1;
    let unshuffle = exact_sqrt(c_in / 3).filter(|u| 3 * u * u == c_in)?;
    if 4 % unshuffle != 0 {
        return None;
    }
    let scale = 4 / unshuffle;
    Some(Ok(Detected {
        arch: "rrdbnet",
        config: json!({"scale": scale, "num_feat": f, "num_block": blocks,
            "num_grow_ch": grow}),
        scales: vec![scale],
    }))
}

/// Renames a key of an official (non-BasicSR) layout to BasicSR's, or
/// `None` to drop it (constant buffers).
fn rename_official(key: &str, official: &Official) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let layout = official.layout;
    let k = match layout {
        Layout::EdsrOfficial | Layout::RcanOfficial => {
            if parts[0] == "sub_mean" || parts[0] == "add_mean" {
                return None;
            }
            match parts.as_slice() {
                ["head", "0", rest @ ..] => format!("conv_first.{}", rest.join(".")),
                ["tail", "0", rest @ ..] => format!("upsample.{}", rest.join(".")),
                ["tail", "1", rest @ ..] => format!("conv_last.{}", rest.join(".")),
                ["body", i, p] if Some(i.parse().ok()?) == official.last => {
                    format!("conv_after_body.{p}")
                }
                ["body", i, "body", "0", p] if layout == Layout::EdsrOfficial => {
                    format!("body.{i}.conv1.{p}")
                }
                ["body", i, "body", "2", p] if layout == Layout::EdsrOfficial => {
                    format!("body.{i}.conv2.{p}")
                }
                ["body", g, "body", b, p] => {
                    if Some(b.parse::<usize>().ok()?) == official.group_last {
                        format!("body.{g}.conv.{p}")
                    } else {
                        return None;
                    }
                }
                ["body", g, "body", b, "body", "0", p] => {
                    format!("body.{g}.residual_group.{b}.rcab.0.{p}")
                }
                ["body", g, "body", b, "body", "2", p] => {
                    format!("body.{g}.residual_group.{b}.rcab.2.{p}")
                }
                ["body", g, "body", b, "body", "3", "conv_du", c, p] => {
                    let c: usize = c.parse().ok()?;
                    format!("body.{g}.residual_group.{b}.rcab.3.attention.{}.{p}", c + 1)
                }
                _ => key.to_string(),
            }
        }
        Layout::Esrgan => key
            .replace("RRDB_trunk.", "body.")
            .replace(".RDB1.", ".rdb1.")
            .replace(".RDB2.", ".rdb2.")
            .replace(".RDB3.", ".rdb3.")
            .replace("trunk_conv.", "conv_body.")
            .replace("upconv1.", "conv_up1.")
            .replace("upconv2.", "conv_up2.")
            .replace("HRconv.", "conv_hr."),
        Layout::EsrganOld => {
            // model.0 conv_first; model.1.sub.{i}.RDB{j}.conv{k}.0; the
            // last model.1.sub.N is conv_body; model.3/6/8/10 the tail.
            match parts.as_slice() {
                ["model", "0", p] => format!("conv_first.{p}"),
                ["model", "1", "sub", i, p] if Some(i.parse().ok()?) == official.last => {
                    format!("conv_body.{p}")
                }
                ["model", "1", "sub", i, rdb, conv, "0", p] => {
                    format!("body.{i}.{}.{conv}.{p}", rdb.to_ascii_lowercase())
                }
                ["model", "3", p] => format!("conv_up1.{p}"),
                ["model", "6", p] => format!("conv_up2.{p}"),
                ["model", "8", p] => format!("conv_hr.{p}"),
                ["model", "10", p] => format!("conv_last.{p}"),
                _ => key.to_string(),
            }
        }
    };
    Some(k)
}

/// Non-BasicSR key layouts srkit renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    EdsrOfficial,
    RcanOfficial,
    Esrgan,
    EsrganOld,
}

/// A recognised official layout and the indices its renaming depends on,
/// found once per file rather than per key.
#[derive(Debug, Clone, Copy)]
struct Official {
    layout: Layout,
    /// Index of the trunk's closing conv: `body.{N}` (EDSR, RCAN) or
    /// `model.1.sub.{N}` (old ESRGAN).
    last: Option<usize>,
    /// Index of an RCAN group's closing conv, `body.{g}.body.{B}` (every
    /// group has the same number of blocks).
    group_last: Option<usize>,
}

/// The state dict with an official layout's keys renamed to BasicSR's, if
/// it has one of the layouts srkit renames.
fn to_basicsr_layout(sd: &StateDict) -> Option<StateDict> {
    let layout = if sd.get("head.0.weight").is_some() {
        if sd.keys().any(|k| k.contains(".conv_du.")) {
            Layout::RcanOfficial
        } else {
            Layout::EdsrOfficial
        }
    } else if sd.get("RRDB_trunk.0.RDB1.conv1.weight").is_some() {
        Layout::Esrgan
    } else if sd.get("model.1.sub.0.RDB1.conv1.0.weight").is_some() {
        Layout::EsrganOld
    } else {
        return None;
    };
    let official = Official {
        layout,
        last: match layout {
            Layout::EsrganOld => max_index(sd, "model.1.sub.", ".weight"),
            _ => max_index(sd, "body.", ".weight"),
        },
        group_last: max_index(sd, "body.0.body.", ".weight"),
    };
    let entries = sd
        .iter()
        .filter_map(|(k, t)| Some((rename_official(k, &official)?, t.clone())))
        .collect();
    Some(StateDict::from_entries(entries, sd.source()))
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
    ("rcan", detect_rcan),
    ("edsr", detect_edsr),
    ("rdn", detect_rdn),
    ("rrdbnet", detect_rrdbnet),
];

/// Recognises the architecture of `sd` (or reads it as `arch` when given)
/// and its hyper-parameters; `scale_hint` supplies a scale the weights do
/// not determine.
pub fn detect(sd: &StateDict, arch: Option<&str>, scale_hint: Option<usize>) -> Result<Detected> {
    let renamed = to_basicsr_layout(sd);
    detect_basicsr(renamed.as_ref().unwrap_or(sd), arch, scale_hint)
}

/// [`detect`] on a state dict already in BasicSR's layout.
fn detect_basicsr(
    sd: &StateDict,
    arch: Option<&str>,
    scale_hint: Option<usize>,
) -> Result<Detected> {
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
    let renamed = to_basicsr_layout(sd);
    let sd = renamed.as_ref().unwrap_or(sd);
    let d = detect_basicsr(sd, arch, scale_hint)?;
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
    let model = Model {
        meta: ModelMeta::new(&network, d.scales),
        network,
        params,
    };
    model.check_loaded().map_err(Error::Model)?;
    Ok(model)
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

    /// A random-weight model's parameters as a state dict, keys mapped by
    /// `rename` (identity = BasicSR layout).
    fn state_dict(m: &Model, rename: &dyn Fn(&str) -> String) -> StateDict {
        let entries = m
            .params
            .ids()
            .map(|id| (rename(m.params.name(id)), m.params.get(id).clone()))
            .collect();
        StateDict::from_entries(entries, "")
    }

    fn assert_round_trip(arch: &str, config: serde_json::Value, rename: &dyn Fn(&str) -> String) {
        let m = Model::new(arch, config, vec![1], 3).unwrap();
        let mut sd = state_dict(&m, rename);
        if rename("conv_first.weight") == "head.0.weight" {
            // Official EDSR/RCAN files carry their constant mean shifts.
            let mut e = sd.into_entries();
            e.push(("sub_mean.weight".into(), Tensor::full(&[3, 3, 1, 1], 1.0)));
            e.push(("add_mean.bias".into(), Tensor::full(&[3], 0.5)));
            sd = StateDict::from_entries(e, "");
        }
        let back = model_from_state_dict(&sd, None, None).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(back.meta.arch, arch);
        assert_eq!(back.meta.config, m.meta.config, "{arch}");
        for id in m.params.ids() {
            let name = m.params.name(id);
            let got = back.params.get(back.params.id(name).unwrap());
            assert_eq!(got, m.params.get(id), "{arch} {name}");
        }
    }

    fn edsr_official(k: &str) -> String {
        let parts: Vec<&str> = k.split('.').collect();
        match parts.as_slice() {
            ["conv_first", p] => format!("head.0.{p}"),
            ["body", i, "conv1", p] => format!("body.{i}.body.0.{p}"),
            ["body", i, "conv2", p] => format!("body.{i}.body.2.{p}"),
            ["conv_after_body", p] => format!("body.3.{p}"),
            ["upsample", i, p] => format!("tail.0.{i}.{p}"),
            ["conv_last", p] => format!("tail.1.{p}"),
            _ => k.to_string(),
        }
    }

    fn rcan_official(k: &str) -> String {
        let parts: Vec<&str> = k.split('.').collect();
        match parts.as_slice() {
            ["conv_first", p] => format!("head.0.{p}"),
            ["body", g, "residual_group", b, "rcab", "3", "attention", c, p] => {
                let c: usize = c.parse().unwrap();
                format!("body.{g}.body.{b}.body.3.conv_du.{}.{p}", c - 1)
            }
            ["body", g, "residual_group", b, "rcab", c, p] => {
                format!("body.{g}.body.{b}.body.{c}.{p}")
            }
            ["body", g, "conv", p] => format!("body.{g}.body.2.{p}"),
            ["conv_after_body", p] => format!("body.2.{p}"),
            ["upsample", i, p] => format!("tail.0.{i}.{p}"),
            ["conv_last", p] => format!("tail.1.{p}"),
            _ => k.to_string(),
        }
    }

    fn esrgan(k: &str) -> String {
        k.replace("body.", "RRDB_trunk.")
            .replace(".rdb", ".RDB")
            .replace("conv_body.", "trunk_conv.")
            .replace("conv_up1.", "upconv1.")
            .replace("conv_up2.", "upconv2.")
            .replace("conv_hr.", "HRconv.")
    }

    fn esrgan_old(k: &str) -> String {
        let parts: Vec<&str> = k.split('.').collect();
        match parts.as_slice() {
            ["conv_first", p] => format!("model.0.{p}"),
            ["body", i, rdb, conv, p] => {
                format!("model.1.sub.{i}.{}.{conv}.0.{p}", rdb.to_uppercase())
            }
            ["conv_body", p] => format!("model.1.sub.2.{p}"),
            ["conv_up1", p] => format!("model.3.{p}"),
            ["conv_up2", p] => format!("model.6.{p}"),
            ["conv_hr", p] => format!("model.8.{p}"),
            ["conv_last", p] => format!("model.10.{p}"),
            _ => k.to_string(),
        }
    }

    #[test]
    fn deep_architectures_are_recognised_in_every_layout() {
        let same = |k: &str| k.to_string();
        let mean = super::super::edsr::DIV2K_RGB_MEAN;
        let edsr = |up: usize| {
            json!({"num_feat": 8, "num_block": 3, "upscale": up,
            "res_scale": 1.0, "img_range": 255.0, "rgb_mean": mean})
        };
        for up in [2, 3, 4] {
            assert_round_trip("edsr", edsr(up), &same);
            assert_round_trip("edsr", edsr(up), &edsr_official);
        }
        let rcan = json!({"num_feat": 8, "num_group": 2, "num_block": 2, "squeeze_factor": 4,
            "upscale": 2, "res_scale": 1.0, "img_range": 255.0, "rgb_mean": mean});
        assert_round_trip("rcan", rcan.clone(), &same);
        assert_round_trip("rcan", rcan, &rcan_official);
        for up in [2, 3, 4] {
            let rdn = json!({"g0": 8, "d": 2, "c": 3, "g": 4, "upscale": up, "img_range": 255.0});
            assert_round_trip("rdn", rdn, &same);
        }
        for scale in [4, 2] {
            let rrdb = json!({"scale": scale, "num_feat": 8, "num_block": 2, "num_grow_ch": 4});
            assert_round_trip("rrdbnet", rrdb.clone(), &same);
            assert_round_trip("rrdbnet", rrdb.clone(), &esrgan);
            if scale == 4 {
                assert_round_trip("rrdbnet", rrdb, &esrgan_old);
            }
        }
    }

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
