//! A safe reader for PyTorch checkpoints (`.pth`, `.pt`): the tensors of a
//! `state_dict`, without Python and without running anything in the file.
//!
//! `torch.save` writes a Python pickle, and unpickling in Python may call any
//! function the file names (`os.system` included). This module interprets the
//! pickle with a small stack machine of its own that **never calls anything**:
//! it builds inert values, recognises the handful of callables checkpoints
//! are made of (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter`, `copyreg._reconstructor`, `torch.Size`,
//! sets, numpy scalars kept as metadata, ...) and refuses every other call
//! with an error that names the callable ("refusing to call os.system: ...").
//! Classes are stubs: `torch.save(model)` of a whole `nn.Module` works, its
//! tensors being gathered through `_parameters`, `_buffers` and `_modules` as
//! `Module.state_dict()` would (`body.0.weight`, non-persistent buffers left
//! out).
//!
//! # Formats (detected from the bytes, not the file name)
//!
//! - **zip** (torch >= 1.6, the default): an archive holding
//!   `<folder>/data.pkl`, the pickle, and `<folder>/data/<key>`, each storage
//!   as raw little-endian bytes. Entries may be stored (as torch writes them)
//!   or deflated (as some re-packed published files are).
//! - **legacy** (torch < 1.6, or `_use_new_zipfile_serialization=False`):
//!   pickles in sequence — magic number, protocol version 1001, system info,
//!   the object, the list of storage keys — then each storage as an 8-byte
//!   little-endian element count and its raw bytes.
//!
//! # What comes out
//!
//! [`StateDict`]: the floating-point tensors (float32, and float16, bfloat16
//! and float64 converted to `f32`) under their `state_dict` keys, in file
//! order; storage offsets and strides are honoured, so transposed tensors and
//! tensors sharing a storage read back as torch reads them. Integer and bool
//! tensors (BatchNorm's `num_batches_tracked`) are skipped. The weights are
//! looked up under the first of `params_ema`, `params`, `state_dict`, `model`
//! that the top-level dict has (BasicSR and common training checkpoints), else
//! the top-level dict or module itself; a `module.` prefix on every key
//! (`nn.DataParallel`) is removed.
//!
//! ```no_run
//! # fn main() -> srkit::Result<()> {
//! let sd = srkit::models::pytorch::load_checkpoint("fsrcnn_x3.pth".as_ref())?;
//! for (key, tensor) in sd.iter() {
//!     println!("{key}: {:?}", tensor.shape());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Not supported (each an error that says so): pickle protocols 0 and 1
//! (text opcodes), protocol-5 out-of-band buffers, big-endian files,
//! complex, quantized and float8 tensors among the weights, TorchScript
//! archives, and the pre-0.1.10 tar format.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::nn::Tensor;

/// Tensors of a checkpoint, in file order, under their `state_dict` key
/// paths (`body.0.weight`).
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    source: String,
}

impl StateDict {
    /// The tensor stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// The keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `(key, tensor)` pairs, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the checkpoint held no floating-point tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Which wrapper the weights were found under: `"params_ema"`,
    /// `"params"`, `"state_dict"`, `"model"`, or `""` for a bare state_dict
    /// or a whole pickled module.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A state dict of `entries` (later duplicates replace earlier ones),
    /// e.g. an imported one with its keys renamed.
    pub fn from_entries(entries: Vec<(String, Tensor)>, source: &str) -> StateDict {
        let mut sd = StateDict {
            source: source.to_string(),
            ..StateDict::default()
        };
        for (k, t) in entries {
            match sd.index.get(&k) {
                Some(&i) => sd.entries[i].1 = t,
                None => {
                    sd.index.insert(k.clone(), sd.entries.len());
                    sd.entries.push((k, t));
                }
            }
        }
        sd
    }

    /// Consumes the state dict, giving its `(key, tensor)` pairs in file order.
    pub fn into_entries(self) -> Vec<(String, Tensor)> {
        self.entries
    }
}

/// Reads a checkpoint from its bytes (either format; see the module docs).
/// `name` (usually the file name) starts every error message.
pub fn read_checkpoint(bytes: &[u8], name: &str) -> Result<StateDict> {
    read(bytes).map_err(|why| Error::Model(format!("{name}: {why}")))
}

/// Reads a checkpoint file (either format; see the module docs).
pub fn load_checkpoint(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_checkpoint(&bytes, &path.display().to_string())
}

/// Internal result: the message, to which [`read_checkpoint`] adds the name.
type R<T> = std::result::Result<T, String>;

/// The first pickle of a legacy file: 0x1950a86a20f9469cfc6c as LONG1 bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The second pickle of a legacy file.
const LEGACY_PROTOCOL: i64 = 1001;
/// Wrapper keys, in order of preference.
const WRAPPERS: [&str; 4] = ["params_ema", "params", "state_dict", "model"];
/// Deepest module nesting followed (a deeper one is taken as a cycle).
const MAX_MODULE_DEPTH: usize = 128;
/// Elements a tensor may have beyond its storage's (stride-0 expansions).
const MAX_EXPANDED_NUMEL: usize = 1 << 24;

fn read(bytes: &[u8]) -> R<StateDict> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        read_zip(bytes)
    } else if bytes.first() == Some(&0x80) {
        read_legacy(bytes)
    } else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(format!(
            "not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a legacy \
             pickle stream (first bytes: {})",
            if head.is_empty() {
                "none, the file is empty".into()
            } else {
                head.join(" ")
            }
        ))
    }
}

// ---------------------------------------------------------------------------
// The two container formats.

fn read_zip(bytes: &[u8]) -> R<StateDict> {
    let zip = zip::Archive::open(bytes)?;
    let pickles: Vec<&str> = zip
        .names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .collect();
    let pkl = match pickles.as_slice() {
        [one] => one.to_string(),
        [] if zip.names().any(|n| n.ends_with("constants.pkl")) => {
            return Err(
                "a TorchScript archive (torch.jit.save), not a torch.save checkpoint".into(),
            )
        }
        [] => {
            return Err(
                "zip archive without a '<folder>/data.pkl' record: not a torch.save checkpoint"
                    .into(),
            )
        }
        many => {
            return Err(format!(
                "zip archive with several data.pkl records: {many:?}"
            ))
        }
    };
    let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
    if let Some(order) = zip.read_opt(&format!("{prefix}byteorder"))? {
        if order.as_ref() != b"little" {
            return Err(format!(
                "byte order {:?}: only little-endian checkpoints are supported",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let data = zip.read(&pkl)?;
    let mut heap = Heap::default();
    let (top, _) = Machine::new(&data, 0, &mut heap)
        .run()
        .map_err(|e| format!("{pkl}: {e}"))?;
    let mut storages = Storages::Zip {
        zip,
        prefix,
        cache: HashMap::new(),
    };
    collect(&heap, &top, &mut storages)
}

fn read_legacy(bytes: &[u8]) -> R<StateDict> {
    let mut heap = Heap::default();
    let mut pos = 0;
    let mut next = |heap: &mut Heap, what: &str| -> R<Value> {
        let (v, used) = Machine::new(&bytes[pos..], pos, heap)
            .run()
            .map_err(|e| format!("legacy {what} pickle: {e}"))?;
        pos += used;
        Ok(v)
    };
    match next(&mut heap, "magic-number")? {
        Value::BigInt(b) if *b == LEGACY_MAGIC => {}
        other => {
            return Err(format!(
                "not a PyTorch checkpoint: a pickle, but its first object is {} rather than \
                 the legacy magic number",
                heap.describe(&other)
            ))
        }
    }
    match next(&mut heap, "protocol")? {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(format!(
                "unsupported legacy protocol version {} (expected {LEGACY_PROTOCOL})",
                heap.describe(&other)
            ))
        }
    }
    let sys_info = next(&mut heap, "sys_info")?;
    if let Some(Value::Bool(false)) = heap.dict_get(&sys_info, "little_endian") {
        return Err(
            "saved on a big-endian machine: only little-endian checkpoints are supported".into(),
        );
    }
    let top = next(&mut heap, "main")?;
    let keys = next(&mut heap, "storage-key")?;
    let keys: Vec<String> = match heap.items(&keys) {
        Some(items) => items
            .iter()
            .map(|k| storage_key(k).ok_or_else(|| format!("bad storage key {}", heap.describe(k))))
            .collect::<R<_>>()?,
        None => {
            return Err(format!(
                "storage-key pickle is {}, not a list",
                heap.describe(&keys)
            ))
        }
    };
    let dtypes = &heap.storage_dtypes;
    let mut data = HashMap::new();
    for key in keys {
        let dtype = dtypes
            .get(&key)
            .ok_or_else(|| format!("storage {key} is listed but no tensor uses it"))?;
        let count = bytes
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| format!("truncated: storage {key}'s header at byte {pos} is missing"))?;
        let start = pos + 8;
        let end = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(dtype.size()))
            .and_then(|n| n.checked_add(start))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: storage {key} ({count} x {}) runs past the end of the file \
                     ({} bytes)",
                    dtype.name(),
                    bytes.len()
                )
            })?;
        data.insert(key, &bytes[start..end]);
        pos = end;
    }
    collect(&heap, &top, &mut Storages::Legacy(data))
}

/// Where storages' bytes come from.
enum Storages<'a> {
    Zip {
        zip: zip::Archive<'a>,
        prefix: String,
        cache: HashMap<String, Cow<'a, [u8]>>,
    },
    Legacy(HashMap<String, &'a [u8]>),
}

impl Storages<'_> {
    fn get(&mut self, key: &str) -> R<&[u8]> {
        match self {
            Storages::Legacy(map) => map
                .get(key)
                .copied()
                .ok_or_else(|| format!("storage {key} is missing from the file")),
            Storages::Zip { zip, prefix, cache } => {
                if !cache.contains_key(key) {
                    let record = format!("{prefix}data/{key}");
                    let data = zip.read_opt(&record)?.ok_or_else(|| {
                        format!("storage {key} is missing from the archive (no record {record})")
                    })?;
                    cache.insert(key.to_string(), data);
                }
                Ok(cache.get(key).map(|c| c.as_ref()).unwrap_or_default())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// From the unpickled object to the state dict.

fn collect(heap: &Heap, top: &Value, storages: &mut Storages) -> R<StateDict> {
    let (source, target) = WRAPPERS
        .iter()
        .find_map(|&w| {
            heap.dict_get(top, w)
                .filter(|v| heap.dict_items(v).is_some() || heap.module_state(v).is_some())
                .map(|v| (w, v))
        })
        .unwrap_or(("", top));

    let mut found: Vec<(String, Rc<TensorRef>)> = Vec::new();
    if heap.module_state(target).is_some() {
        walk_module(heap, target, "", &mut found, 0)?;
    } else if let Some(items) = heap.dict_items(target) {
        for (k, v) in items {
            match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => found.push((k.to_string(), t.clone())),
                (Value::Str(k), Value::Unsupported(what)) => {
                    return Err(format!("{k}: unsupported tensor kind ({what})"))
                }
                _ => {}
            }
        }
        if found.is_empty() && !items.is_empty() {
            let keys: Vec<String> = items
                .iter()
                .take(12)
                .map(|(k, _)| heap.describe(k))
                .collect();
            return Err(format!(
                "no tensors found: the {} has no params_ema, params, state_dict or model entry \
                 holding weights, and no tensors of its own (keys: {})",
                if source.is_empty() {
                    "top-level dict"
                } else {
                    source
                },
                keys.join(", ")
            ));
        }
    } else {
        return Err(format!(
            "no state_dict found: the checkpoint holds {}, not a dict or an nn.Module",
            heap.describe(target)
        ));
    }

    let strip = !found.is_empty() && found.iter().all(|(k, _)| k.starts_with("module."));
    let mut sd = StateDict {
        source: source.to_string(),
        ..StateDict::default()
    };
    for (key, t) in found {
        let key = if strip {
            key["module.".len()..].to_string()
        } else {
            key
        };
        let Some(tensor) = materialize(&t, storages).map_err(|e| format!("tensor {key}: {e}"))?
        else {
            continue;
        };
        if sd.index.insert(key.clone(), sd.entries.len()).is_some() {
            return Err(format!("key {key} appears twice"));
        }
        sd.entries.push((key, tensor));
    }
    Ok(sd)
}

/// Gathers a module's tensors as `nn.Module.state_dict()` orders them: own
/// parameters, own persistent buffers, then each child's under `name.`.
fn walk_module(
    heap: &Heap,
    module: &Value,
    prefix: &str,
    out: &mut Vec<(String, Rc<TensorRef>)>,
    depth: usize,
) -> R<()> {
    if depth > MAX_MODULE_DEPTH {
        return Err(format!(
            "modules nested deeper than {MAX_MODULE_DEPTH} at {prefix} (a cycle?)"
        ));
    }
    let Some(state) = heap.module_state(module) else {
        return Err(format!(
            "{prefix}: {} is not an nn.Module",
            heap.describe(module)
        ));
    };
    let skip: HashSet<&str> = heap
        .dict_get(state, "_non_persistent_buffers_set")
        .and_then(|s| heap.items(s))
        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    for (field, skip) in [("_parameters", &HashSet::new()), ("_buffers", &skip)] {
        let Some(entries) = heap.dict_get(state, field).and_then(|d| heap.dict_items(d)) else {
            continue;
        };
        for (name, v) in entries {
            let Some(name) = name.as_str() else { continue };
            match v {
                Value::Tensor(t) if !skip.contains(name) => {
                    out.push((format!("{prefix}{name}"), t.clone()))
                }
                Value::Unsupported(what) => {
                    return Err(format!("{prefix}{name}: unsupported tensor kind ({what})"))
                }
                _ => {}
            }
        }
    }
    if let Some(children) = heap
        .dict_get(state, "_modules")
        .and_then(|d| heap.dict_items(d))
    {
        for (name, child) in children {
            let (Some(name), false) = (name.as_str(), matches!(child, Value::None)) else {
                continue;
            };
            walk_module(heap, child, &format!("{prefix}{name}."), out, depth + 1)?;
        }
    }
    Ok(())
}

/// Copies a tensor out of its storage as `f32`, following its offset and
/// strides. `None` for integer and bool tensors, which are skipped.
fn materialize(t: &TensorRef, storages: &mut Storages) -> R<Option<Tensor>> {
    match t.dtype.kind() {
        Kind::Float => {}
        Kind::Integer => return Ok(None),
        Kind::Unsupported => return Err(format!("unsupported dtype {}", t.dtype.name())),
    }
    let st = &t.storage;
    let bytes = storages.get(&st.key)?;
    let declared = st
        .numel
        .checked_mul(st.dtype.size())
        .ok_or_else(|| format!("storage {} size overflows", st.key))?;
    if bytes.len() < declared {
        return Err(format!(
            "storage {} holds {} bytes, but its header says {} x {} = {declared}",
            st.key,
            bytes.len(),
            st.numel,
            st.dtype.name()
        ));
    }
    // A legacy storage view covers [view_offset, view_offset + view_numel) of its root.
    let (base, avail) = match st.view {
        None => (0, declared),
        Some((off, n)) => {
            let lo = off.checked_mul(st.dtype.size());
            let hi = off
                .checked_add(n)
                .and_then(|e| e.checked_mul(st.dtype.size()));
            match (lo, hi) {
                (Some(lo), Some(hi)) if hi <= declared => (lo, hi - lo),
                _ => {
                    return Err(format!(
                        "storage view {off}+{n} runs past storage {}",
                        st.key
                    ))
                }
            }
        }
    };
    let region = &bytes[base..base + avail];
    let elem = t.dtype.size();
    let numel = t
        .size
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows", t.size))?;
    let end = if numel == 0 {
        0
    } else {
        t.size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
            })
            .and_then(|last| last.checked_add(1))
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(|| "offset and strides overflow".to_string())?
    };
    if end > region.len() {
        return Err(format!(
            "shape {:?}, strides {:?} and offset {} run past its storage ({} elements of {})",
            t.size,
            t.stride,
            t.offset,
            region.len() / elem,
            t.dtype.name()
        ));
    }
    if numel > MAX_EXPANDED_NUMEL && numel > region.len() / elem {
        return Err(format!(
            "{numel} elements (shape {:?}) view a storage of only {} elements",
            t.size,
            region.len() / elem
        ));
    }
    let contiguous = {
        let mut want = 1usize;
        let mut ok = true;
        for (&d, &s) in t.size.iter().zip(&t.stride).rev() {
            ok &= d <= 1 || s == want;
            want = want.saturating_mul(d);
        }
        ok
    };
    let start = t.offset * elem; // end >= start + numel * elem has been checked
    let data = if numel == 0 {
        Vec::new()
    } else if contiguous {
        convert(t.dtype, &region[start..start + numel * elem])
    } else {
        let mut out = Vec::with_capacity(numel);
        let mut idx = vec![0usize; t.size.len()];
        let mut buf = Vec::with_capacity(elem);
        for _ in 0..numel {
            let at = idx
                .iter()
                .zip(&t.stride)
                .fold(t.offset, |a, (&i, &s)| a + i * s)
                * elem;
            buf.clear();
            buf.extend_from_slice(&region[at..at + elem]);
            out.extend(convert(t.dtype, &buf));
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < t.size[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    };
    Tensor::new(&t.size, data)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Little-endian elements of a floating dtype to `f32` (float64 rounds to
/// nearest, as torch's `.float()` does).
fn convert(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().unwrap_or([0; N])))
            .collect()
    }
    match dtype {
        Dtype::F32 => each(bytes, f32::from_le_bytes),
        Dtype::F64 => each(bytes, |b| f64::from_le_bytes(b) as f32),
        Dtype::F16 => each(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::Bf16 => each(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Values of the pickle machine.

/// Element types of torch storages and tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    F16,
    Bf16,
    I64,
    I32,
    I16,
    I8,
    U8,
    U16,
    U32,
    U64,
    Bool,
    C64,
    C128,
    Q8,
    Q32,
    /// An element type srkit cannot convert (its name, 1-byte elements).
    Other(&'static str),
}

/// What happens to a tensor of a dtype.
enum Kind {
    Float,
    Integer,
    Unsupported,
}

impl Dtype {
    /// From a legacy storage class name (`FloatStorage`) or a `torch.<dtype>`
    /// name (`float32`).
    fn from_name(name: &str) -> Option<Dtype> {
        Some(match name.strip_suffix("Storage").unwrap_or(name) {
            "Float" | "float32" | "float" => Dtype::F32,
            "Double" | "float64" | "double" => Dtype::F64,
            "Half" | "float16" | "half" => Dtype::F16,
            "BFloat16" | "bfloat16" => Dtype::Bf16,
            "Long" | "int64" | "long" => Dtype::I64,
            "Int" | "int32" | "int" => Dtype::I32,
            "Short" | "int16" | "short" => Dtype::I16,
            "Char" | "int8" => Dtype::I8,
            "Byte" | "uint8" | "Untyped" => Dtype::U8,
            "uint16" => Dtype::U16,
            "uint32" => Dtype::U32,
            "uint64" => Dtype::U64,
            "Bool" | "bool" => Dtype::Bool,
            "ComplexFloat" | "complex64" | "cfloat" => Dtype::C64,
            "ComplexDouble" | "complex128" | "cdouble" => Dtype::C128,
            "QInt8" | "qint8" => Dtype::Q8,
            "QUInt8" | "quint8" => Dtype::Other("quint8"),
            "QUInt4x2" | "quint4x2" => Dtype::Other("quint4x2"),
            "QUInt2x4" | "quint2x4" => Dtype::Other("quint2x4"),
            "QInt32" | "qint32" => Dtype::Q32,
            "float8_e4m3fn" => Dtype::Other("float8_e4m3fn"),
            "float8_e5m2" => Dtype::Other("float8_e5m2"),
            "float8_e4m3fnuz" => Dtype::Other("float8_e4m3fnuz"),
            "float8_e5m2fnuz" => Dtype::Other("float8_e5m2fnuz"),
            "float8_e8m0fnu" => Dtype::Other("float8_e8m0fnu"),
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 | Dtype::U64 | Dtype::C64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::U32 | Dtype::Q32 => 4,
            Dtype::F16 | Dtype::Bf16 | Dtype::I16 | Dtype::U16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool | Dtype::Q8 | Dtype::Other(_) => 1,
            Dtype::C128 => 16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::F16 => "float16",
            Dtype::Bf16 => "bfloat16",
            Dtype::I64 => "int64",
            Dtype::I32 => "int32",
            Dtype::I16 => "int16",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
            Dtype::U64 => "uint64",
            Dtype::Bool => "bool",
            Dtype::C64 => "complex64",
            Dtype::C128 => "complex128",
            Dtype::Q8 => "qint8",
            Dtype::Q32 => "qint32",
            Dtype::Other(name) => name,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::Bf16 => Kind::Float,
            Dtype::I64
            | Dtype::I32
            | Dtype::I16
            | Dtype::I8
            | Dtype::U8
            | Dtype::U16
            | Dtype::U32
            | Dtype::U64
            | Dtype::Bool => Kind::Integer,
            Dtype::C64 | Dtype::C128 | Dtype::Q8 | Dtype::Q32 | Dtype::Other(_) => {
                Kind::Unsupported
            }
        }
    }
}

/// A storage named by a persistent id: `numel` elements of `dtype` under
/// `key`, or (legacy storage views) `view = (offset, numel)` of them.
#[derive(Debug)]
struct StorageRef {
    key: String,
    dtype: Dtype,
    numel: usize,
    view: Option<(usize, usize)>,
}

/// A tensor as `_rebuild_tensor_v2` describes it, not yet read.
#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    dtype: Dtype,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A `module.name` reference from GLOBAL / STACK_GLOBAL: a class (stubbed)
/// or a function (never called).
#[derive(Debug, PartialEq, Eq)]
struct Global {
    module: String,
    name: String,
}

impl Global {
    fn full(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// A pickle value. Containers live in the [`Heap`] and are referred to by
/// index, so that memo references share them (as Python's objects are
/// shared), cycles cannot leak, and no value is deeply nested (no recursive
/// drop to overflow the stack).
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for `i64`: its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Global(Rc<Global>),
    Obj(usize),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// A tensor kind this reader does not convert (the rebuild function).
    Unsupported(Rc<str>),
    /// A value kept only as metadata (numpy scalars, torch.device, ...).
    Opaque(Rc<str>),
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The key of a storage: a string, or an int in some writers.
fn storage_key(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A Python dict, in insertion order; string and int keys are unique.
#[derive(Debug, Default)]
struct Dict {
    items: Vec<(Value, Value)>,
    index: HashMap<String, usize>,
}

impl Dict {
    fn insert(&mut self, k: Value, v: Value) {
        let hashable = match &k {
            Value::Str(s) => Some(format!("s{s}")),
            Value::Int(i) => Some(format!("i{i}")),
            _ => None,
        };
        match hashable {
            Some(h) => match self.index.get(&h) {
                Some(&i) => self.items[i].1 = v,
                None => {
                    self.index.insert(h, self.items.len());
                    self.items.push((k, v));
                }
            },
            None => self.items.push((k, v)),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.index
            .get(&format!("s{key}"))
            .map(|&i| &self.items[i].1)
    }
}

/// Mutable pickle objects.
#[derive(Debug)]
enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Set(Vec<Value>),
    Dict(Dict),
    /// An instance of a stubbed class: BUILD's state, and the items that
    /// APPEND / SETITEM(S) gave it (list and dict subclasses).
    Instance {
        class: Rc<Global>,
        state: Option<Value>,
        items: Vec<Value>,
        dict: Dict,
    },
}

/// All containers made while reading one file.
#[derive(Debug, Default)]
struct Heap {
    objs: Vec<Obj>,
    /// The dtype of each storage key met in a persistent id (legacy files
    /// need it to read their storages).
    storage_dtypes: HashMap<String, Dtype>,
}

impl Heap {
    fn add(&mut self, o: Obj) -> Value {
        self.objs.push(o);
        Value::Obj(self.objs.len() - 1)
    }

    fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objs.get(*i),
            _ => None,
        }
    }

    /// Items of a tuple, list or set.
    fn items(&self, v: &Value) -> Option<&[Value]> {
        match self.obj(v)? {
            Obj::Tuple(x) | Obj::List(x) | Obj::Set(x) => Some(x),
            _ => None,
        }
    }

    /// Entries of a dict, or of an instance of a dict subclass.
    fn dict_items(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.obj(v)? {
            Obj::Dict(d) => Some(&d.items),
            Obj::Instance { dict, .. } if !dict.items.is_empty() => Some(&dict.items),
            _ => None,
        }
    }

    fn dict_get(&self, v: &Value, key: &str) -> Option<&Value> {
        match self.obj(v)? {
            Obj::Dict(d) => d.get(key),
            Obj::Instance { dict, .. } => dict.get(key),
            _ => None,
        }
    }

    /// The attribute dict of an `nn.Module` (an instance whose state has
    /// `_parameters` or `_modules`).
    fn module_state(&self, v: &Value) -> Option<&Value> {
        match self.obj(v)? {
            Obj::Instance { state: Some(s), .. }
                if self.dict_get(s, "_parameters").is_some()
                    || self.dict_get(s, "_modules").is_some() =>
            {
                Some(s)
            }
            _ => None,
        }
    }

    /// A short description for error messages.
    fn describe(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(b) => format!("{b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(_) => "a large int".into(),
            Value::Float(f) => format!("float {f}"),
            Value::Str(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Global(g) => format!("class or function {}", g.full()),
            Value::Storage(_) => "a storage".into(),
            Value::Tensor(_) => "a tensor".into(),
            Value::Unsupported(w) => format!("an unsupported tensor ({w})"),
            Value::Opaque(w) => format!("a {w} value"),
            Value::Obj(_) => match self.obj(v) {
                Some(Obj::Tuple(x)) => format!("a tuple of {}", x.len()),
                Some(Obj::List(x)) => format!("a list of {}", x.len()),
                Some(Obj::Set(x)) => format!("a set of {}", x.len()),
                Some(Obj::Dict(d)) => format!("a dict of {}", d.items.len()),
                Some(Obj::Instance { class, .. }) => format!("an instance of {}", class.full()),
                None => "a dangling reference".into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The pickle machine.

/// Interprets one pickle (protocols 2 to 5) up to its STOP, building values
/// in `heap`. Nothing named in the pickle is ever called.
struct Machine<'a, 'h> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data` in the file, for messages.
    base: usize,
    /// Offset of the current opcode in `data`.
    op_pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    heap: &'h mut Heap,
}

impl<'a, 'h> Machine<'a, 'h> {
    fn new(data: &'a [u8], base: usize, heap: &'h mut Heap) -> Self {
        Machine {
            data,
            pos: 0,
            base,
            op_pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            heap,
        }
    }

    fn at(&self) -> String {
        format!("at byte {}", self.base + self.op_pos)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "truncated: the pickle needs {n} more bytes {} but the file ends",
                    self.at()
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn len_u32(&mut self) -> R<usize> {
        Ok(u32::from_le_bytes(self.arr()?) as usize)
    }

    fn len_u64(&mut self) -> R<usize> {
        let n = u64::from_le_bytes(self.arr()?);
        usize::try_from(n).map_err(|_| format!("length {n} too large {}", self.at()))
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("truncated: unterminated line {}", self.at()))?;
        let s =
            std::str::from_utf8(&rest[..n]).map_err(|_| format!("non-UTF-8 name {}", self.at()))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> R<Value> {
        let b = self.take(n)?;
        let s =
            std::str::from_utf8(b).map_err(|_| format!("invalid UTF-8 string {}", self.at()))?;
        Ok(Value::Str(s.into()))
    }

    fn pop(&mut self) -> R<Value> {
        match self.stack.pop() {
            Some(v) if self.marks.last().map_or(true, |&m| self.stack.len() >= m) => Ok(v),
            _ => Err(format!("stack underflow {} (malformed pickle)", self.at())),
        }
    }

    fn top(&self) -> R<&Value> {
        match self.marks.last() {
            Some(&m) if self.stack.len() <= m => None,
            _ => self.stack.last(),
        }
        .ok_or_else(|| format!("stack underflow {} (malformed pickle)", self.at()))
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| format!("no MARK for the opcode {}", self.at()))?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn memo_put(&mut self, i: u32) -> R<()> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    fn memo_get(&mut self, i: u32) -> R<()> {
        let v = self
            .memo
            .get(&i)
            .cloned()
            .ok_or_else(|| format!("memo entry {i} missing {}", self.at()))?;
        self.push(v);
        Ok(())
    }

    fn int(&self, v: &Value, what: &str) -> R<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(*b as i64),
            other => Err(format!(
                "{what} is {}, not an int {}",
                self.heap.describe(other),
                self.at()
            )),
        }
    }

    fn usize(&self, v: &Value, what: &str) -> R<usize> {
        let i = self.int(v, what)?;
        usize::try_from(i).map_err(|_| format!("{what} is {i} {}", self.at()))
    }

    fn tuple(&self, v: &Value, what: &str) -> R<Vec<Value>> {
        self.heap.items(v).map(<[Value]>::to_vec).ok_or_else(|| {
            format!(
                "{what} is {}, not a tuple {}",
                self.heap.describe(v),
                self.at()
            )
        })
    }

    /// Runs to STOP; returns the pickled object and the bytes consumed.
    fn run(mut self) -> R<(Value, usize)> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(format!("unsupported pickle protocol {p} {}", self.at()));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: its length is only a read-ahead hint
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(global(m, n)),
                        _ => return Err(format!("STACK_GLOBAL on non-strings {}", self.at())),
                    }
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.arr()?);
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i =
                        u32::try_from(self.memo.len()).map_err(|_| "memo overflow".to_string())?;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(i.into())?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.arr()?);
                    self.memo_get(i)?;
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'}' => {
                    let d = self.heap.add(Obj::Dict(Dict::default()));
                    self.push(d);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let mut d = Dict::default();
                    fill_dict(&mut d, items, &self.at())?;
                    let d = self.heap.add(Obj::Dict(d));
                    self.push(d);
                }
                b']' => {
                    let l = self.heap.add(Obj::List(Vec::new()));
                    self.push(l);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.heap.add(Obj::List(items));
                    self.push(l);
                }
                b')' => {
                    let t = self.heap.add(Obj::Tuple(Vec::new()));
                    self.push(t);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.heap.add(Obj::Tuple(items));
                    self.push(t);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.heap.add(Obj::Tuple(items));
                    self.push(t);
                }
                0x8f => {
                    let s = self.heap.add(Obj::Set(Vec::new()));
                    self.push(s);
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let s = self.heap.add(Obj::Set(items));
                    self.push(s);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.u8()?.into();
                    let b = self.take(n)?;
                    self.push(long(b));
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.arr()?);
                    let n = usize::try_from(n)
                        .map_err(|_| format!("negative LONG4 length {}", self.at()))?;
                    let b = self.take(n)?;
                    self.push(long(b));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Value::Float(v));
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                0x8c => {
                    let n = self.u8()?.into();
                    let v = self.text(n)?;
                    self.push(v);
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.text(n)?;
                    self.push(v);
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.text(n)?;
                    self.push(v);
                }
                // Python 2 byte strings (str): decoded as torch.load does by default.
                b'U' | b'T' => {
                    let n = if op == b'U' {
                        self.u8()?.into()
                    } else {
                        self.len_u32()?
                    };
                    let b = self.take(n)?;
                    self.push(Value::Str(String::from_utf8_lossy(b).into()));
                }
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.u8()?.into(),
                        b'B' => self.len_u32()?,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    self.push(Value::Bytes(b.into()));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(&pid)?;
                    self.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.call(&f, &args, 0)?;
                    self.push(v);
                }
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // NEWOBJ_EX's kwargs
                    }
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.new_object(&cls)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    self.build(&target, state);
                }
                _ => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{op:02x}{} {} (PyTorch checkpoints use \
                         protocols 2 to 5)",
                        opcode_name(op)
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        self.at()
                    ))
                }
            }
        }
    }

    /// APPEND / APPENDS / ADDITEMS onto the list, set or instance on top.
    fn extend(&mut self, items: Vec<Value>) -> R<()> {
        let at = self.at();
        let target = self.top()?.clone();
        match &target {
            Value::Obj(i) => match self.heap.objs.get_mut(*i) {
                Some(Obj::List(l) | Obj::Set(l) | Obj::Instance { items: l, .. }) => {
                    l.extend(items);
                    Ok(())
                }
                _ => Err(format!("APPEND to {} {at}", self.heap.describe(&target))),
            },
            other => Err(format!("APPEND to {} {at}", self.heap.describe(other))),
        }
    }

    /// SETITEM / SETITEMS on the dict or instance on top.
    fn set_items(&mut self, items: Vec<Value>) -> R<()> {
        let at = self.at();
        let target = self.top()?.clone();
        match &target {
            Value::Obj(i) => match self.heap.objs.get_mut(*i) {
                Some(Obj::Dict(d) | Obj::Instance { dict: d, .. }) => fill_dict(d, items, &at),
                _ => Err(format!("SETITEM on {} {at}", self.heap.describe(&target))),
            },
            other => Err(format!("SETITEM on {} {at}", self.heap.describe(other))),
        }
    }

    /// BUILD: an instance keeps its state (`__dict__`, or the dict of a
    /// `(dict, slots)` pair); for anything else (OrderedDict's attributes,
    /// a Parameter's state, numpy metadata) the state is dropped.
    fn build(&mut self, target: &Value, state: Value) {
        let state = match self.heap.obj(&state) {
            Some(Obj::Tuple(t)) if t.len() == 2 && matches!(t[0], Value::None) => t[1].clone(),
            Some(Obj::Tuple(t)) if t.len() == 2 => t[0].clone(),
            _ => state,
        };
        if let Value::Obj(i) = target {
            if let Some(Obj::Instance { state: s, .. }) = self.heap.objs.get_mut(*i) {
                *s = Some(state);
            }
        }
    }

    /// NEWOBJ / NEWOBJ_EX: `cls.__new__(cls, ...)`, which never runs code of
    /// the file: a container for the builtin containers, a stub instance for
    /// any other class.
    fn new_object(&mut self, cls: &Value) -> R<Value> {
        let Value::Global(g) = cls else {
            return Err(format!(
                "NEWOBJ on {} {}",
                self.heap.describe(cls),
                self.at()
            ));
        };
        Ok(match (g.module.as_str(), g.name.as_str()) {
            ("collections", "OrderedDict" | "defaultdict") | ("builtins", "dict") => {
                self.heap.add(Obj::Dict(Dict::default()))
            }
            ("builtins", "list") => self.heap.add(Obj::List(Vec::new())),
            ("builtins", "set" | "frozenset") => self.heap.add(Obj::Set(Vec::new())),
            _ => self.instance(g.clone()),
        })
    }

    fn instance(&mut self, class: Rc<Global>) -> Value {
        self.heap.add(Obj::Instance {
            class,
            state: None,
            items: Vec::new(),
            dict: Dict::default(),
        })
    }

    /// REDUCE: `f(*args)` for the whitelisted callables only, interpreted
    /// here (nothing is called); any other callable is refused.
    fn call(&mut self, f: &Value, args: &Value, depth: usize) -> R<Value> {
        let Value::Global(g) = f else {
            return Err(format!(
                "REDUCE on {} {}: only named callables can be called",
                self.heap.describe(f),
                self.at()
            ));
        };
        let args = self.tuple(args, &format!("the arguments of {}", g.full()))?;
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::None);
        Ok(match (g.module.as_str(), g.name.as_str()) {
            ("collections", "OrderedDict") | ("builtins", "dict") => {
                let mut d = Dict::default();
                if let Some(pairs) = args.first().and_then(|a| self.heap.items(a)) {
                    for p in pairs {
                        match self.heap.items(p) {
                            Some([k, v]) => d.insert(k.clone(), v.clone()),
                            _ => {
                                return Err(format!(
                                    "OrderedDict item is {} {}",
                                    self.heap.describe(p),
                                    self.at()
                                ))
                            }
                        }
                    }
                }
                self.heap.add(Obj::Dict(d))
            }
            // defaultdict(factory): the factory is only named, never called.
            ("collections", "defaultdict") => self.heap.add(Obj::Dict(Dict::default())),
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => {
                self.tensor(&arg(0), &arg(1), &arg(2), &arg(3), None)?
            }
            ("torch._utils", "_rebuild_tensor_v3") => {
                let dtype = match arg(6) {
                    Value::Global(d) if d.module == "torch" => Dtype::from_name(&d.name)
                        .ok_or_else(|| format!("unknown dtype torch.{} {}", d.name, self.at()))?,
                    other => {
                        return Err(format!(
                            "dtype is {} {}",
                            self.heap.describe(&other),
                            self.at()
                        ))
                    }
                };
                self.tensor(&arg(0), &arg(1), &arg(2), &arg(3), Some(dtype))?
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => arg(0),
            // Tensor subclasses: func(*args), with func itself whitelisted.
            ("torch._tensor", "_rebuild_from_type_v2") if depth < 4 => {
                self.call(&arg(0), &arg(2), depth + 1)?
            }
            ("torch._utils", name) if name.starts_with("_rebuild_") => {
                Value::Unsupported(format!("torch._utils.{name}").into())
            }
            ("copyreg", "_reconstructor" | "__newobj__" | "__newobj_ex__") => match arg(0) {
                Value::Global(cls) => self.instance(cls),
                other => {
                    return Err(format!(
                        "{} of {} {}",
                        g.full(),
                        self.heap.describe(&other),
                        self.at()
                    ))
                }
            },
            ("torch", "Size") | ("builtins", "tuple") => {
                let items = match args.first() {
                    Some(a) => self.tuple(a, "torch.Size's argument")?,
                    None => Vec::new(),
                };
                self.heap.add(Obj::Tuple(items))
            }
            ("builtins", "set" | "frozenset" | "list") => {
                let items = args
                    .first()
                    .and_then(|a| self.heap.items(a))
                    .map(<[Value]>::to_vec)
                    .unwrap_or_default();
                if g.name == "list" {
                    self.heap.add(Obj::List(items))
                } else {
                    self.heap.add(Obj::Set(items))
                }
            }
            ("torch", "device")
            | ("numpy", "dtype")
            | ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct")
            | ("_codecs", "encode") => Value::Opaque(g.full().into()),
            _ => {
                return Err(format!(
                    "refusing to call {}: not one of the functions a PyTorch checkpoint is built \
                     from ({}); the file may be malicious",
                    g.full(),
                    self.at()
                ))
            }
        })
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`; `dtype` for
    /// v3, whose storage is untyped.
    fn tensor(
        &self,
        storage: &Value,
        offset: &Value,
        size: &Value,
        stride: &Value,
        dtype: Option<Dtype>,
    ) -> R<Value> {
        let Value::Storage(storage) = storage else {
            return Err(format!(
                "tensor storage is {} {}",
                self.heap.describe(storage),
                self.at()
            ));
        };
        let offset = self.usize(offset, "storage offset")?;
        let dims = |v: &Value, what: &str| -> R<Vec<usize>> {
            self.tuple(v, what)?
                .iter()
                .map(|d| self.usize(d, what))
                .collect()
        };
        let size = dims(size, "tensor size")?;
        let stride = dims(stride, "tensor stride")?;
        if size.len() != stride.len() {
            return Err(format!(
                "tensor size {size:?} and stride {stride:?} differ in length {}",
                self.at()
            ));
        }
        let dtype = dtype.unwrap_or(storage.dtype);
        let storage = match (dtype == storage.dtype, storage.view) {
            (true, _) => storage.clone(),
            // An untyped (byte) storage seen through a typed tensor.
            (false, None) if storage.dtype.size() == 1 => Rc::new(StorageRef {
                key: storage.key.clone(),
                dtype,
                numel: storage.numel / dtype.size(),
                view: None,
            }),
            _ => {
                return Err(format!(
                    "a {} tensor on a {} storage {}",
                    dtype.name(),
                    storage.dtype.name(),
                    self.at()
                ))
            }
        };
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage,
            dtype,
            offset,
            size,
            stride,
        })))
    }

    /// BINPERSID: `('storage', storage_type, key, location, numel[, view])`
    /// becomes a storage reference (the location, e.g. `cuda:0`, is
    /// ignored); `('module', class, source_file, source)` (legacy whole
    /// modules) becomes the class.
    fn persistent_load(&mut self, pid: &Value) -> R<Value> {
        let t = self.tuple(pid, "persistent id")?;
        match t
            .first()
            .and_then(|k| match k {
                Value::Str(s) => Some(s.to_string()),
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .as_deref()
        {
            Some("module") => Ok(t.get(1).cloned().unwrap_or(Value::None)),
            Some("storage") if t.len() >= 5 => {
                let dtype = match &t[1] {
                    Value::Global(g)
                        if g.module == "torch"
                            || g.module == "torch.cuda"
                            || g.module == "torch.storage" =>
                    {
                        Dtype::from_name(&g.name)
                    }
                    _ => None,
                }
                .ok_or_else(|| {
                    format!(
                        "unknown storage type {} {}",
                        self.heap.describe(&t[1]),
                        self.at()
                    )
                })?;
                let key = storage_key(&t[2]).ok_or_else(|| {
                    format!("storage key is {} {}", self.heap.describe(&t[2]), self.at())
                })?;
                let numel = self.usize(&t[4], "storage size")?;
                let view = match t.get(5) {
                    None | Some(Value::None) => None,
                    Some(v) => {
                        let v = self.tuple(v, "storage view")?;
                        if v.len() != 3 {
                            return Err(format!("storage view of {} items {}", v.len(), self.at()));
                        }
                        Some((
                            self.usize(&v[1], "view offset")?,
                            self.usize(&v[2], "view size")?,
                        ))
                    }
                };
                match self.heap.storage_dtypes.insert(key.clone(), dtype) {
                    Some(d) if d != dtype && view.is_none() => {
                        return Err(format!(
                            "storage {key} is both {} and {} {}",
                            d.name(),
                            dtype.name(),
                            self.at()
                        ))
                    }
                    _ => {}
                }
                Ok(Value::Storage(Rc::new(StorageRef {
                    key,
                    dtype,
                    numel,
                    view,
                })))
            }
            _ => Err(format!(
                "unknown persistent id {} {}",
                self.heap.describe(pid),
                self.at()
            )),
        }
    }
}

/// GLOBAL, with Python 2 module names mapped as `pickle` does.
fn global(module: &str, name: &str) -> Value {
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    Value::Global(Rc::new(Global {
        module: module.to_string(),
        name: name.to_string(),
    }))
}

/// LONG1 / LONG4 payload: little-endian two's complement.
fn long(b: &[u8]) -> Value {
    if b.len() <= 8 {
        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut a = [fill; 8];
        a[..b.len()].copy_from_slice(b);
        Value::Int(i64::from_le_bytes(a))
    } else {
        Value::BigInt(b.into())
    }
}

fn fill_dict(d: &mut Dict, items: Vec<Value>, at: &str) -> R<()> {
    if items.len() % 2 != 0 {
        return Err(format!("odd number of items for a dict {at}"));
    }
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        d.insert(k, v);
    }
    Ok(())
}

/// Names of the pickle opcodes this reader refuses, for messages.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'i' => "INST",
        b'o' => "OBJ",
        b'P' => "PERSID",
        b'I' => "INT",
        b'L' => "LONG",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'F' => "FLOAT",
        b'p' => "PUT",
        b'g' => "GET",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------

/// A minimal reader of in-memory zip archives: the central directory
/// (zip64 included), stored and deflated entries, CRC-32 checked.
///
/// Why not the `zip` crate: its current releases need Rust 1.89 (above this
/// crate's `rust-version`) and bring eight more crates (zeroize, getrandom,
/// typed-path, ...) for features a checkpoint never uses (writing,
/// encryption, many codecs). torch writes stored entries and re-packed files
/// use deflate, for which `miniz_oxide` (already in the dependency tree
/// through `png`) suffices; reading a slice with checked offsets is some 150
/// lines, easy to keep panic-free on hostile input.
mod zip {
    use super::R;
    use std::borrow::Cow;
    use std::collections::HashMap;

    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD64_LOCATOR: &[u8] = b"PK\x06\x07";
    const EOCD64: &[u8] = b"PK\x06\x06";
    const CENTRAL: &[u8] = b"PK\x01\x02";
    const LOCAL: &[u8] = b"PK\x03\x04";

    struct Entry {
        method: u16,
        flags: u16,
        crc: u32,
        compressed: u64,
        size: u64,
        local: u64,
    }

    /// A parsed zip archive borrowing its bytes.
    pub(super) struct Archive<'a> {
        bytes: &'a [u8],
        names: Vec<String>,
        entries: HashMap<String, Entry>,
    }

    fn get(b: &[u8], at: u64, n: usize) -> R<&[u8]> {
        usize::try_from(at)
            .ok()
            .and_then(|at| b.get(at..at.checked_add(n)?))
            .ok_or_else(|| format!("truncated or corrupt zip archive: {n} bytes at {at} are past its end ({} bytes)", b.len()))
    }
    fn u16_at(b: &[u8], at: u64) -> R<u16> {
        Ok(u16::from_le_bytes(
            get(b, at, 2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32_at(b: &[u8], at: u64) -> R<u32> {
        Ok(u32::from_le_bytes(
            get(b, at, 4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64_at(b: &[u8], at: u64) -> R<u64> {
        Ok(u64::from_le_bytes(
            get(b, at, 8)?.try_into().unwrap_or_default(),
        ))
    }

    impl<'a> Archive<'a> {
        pub(super) fn open(bytes: &'a [u8]) -> R<Self> {
            // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
            let lo = bytes.len().saturating_sub(22 + 0xffff);
            let eocd = (lo..bytes.len().saturating_sub(21))
                .rev()
                .find(|&i| {
                    bytes[i..].starts_with(EOCD)
                        && u16_at(bytes, i as u64 + 20)
                            .is_ok_and(|c| i + 22 + c as usize <= bytes.len())
                })
                .ok_or("truncated or corrupt zip archive: no end-of-central-directory record")?
                as u64;
            let mut count = u64::from(u16_at(bytes, eocd + 10)?);
            let mut cd_size = u64::from(u32_at(bytes, eocd + 12)?);
            let mut cd_off = u64::from(u32_at(bytes, eocd + 16)?);
            if count == 0xffff || cd_size == 0xffff_ffff || cd_off == 0xffff_ffff {
                let loc = eocd
                    .checked_sub(20)
                    .ok_or("corrupt zip64 archive: no locator")?;
                if get(bytes, loc, 4)? != EOCD64_LOCATOR {
                    return Err("corrupt zip64 archive: no end-of-central-directory locator".into());
                }
                let rec = u64_at(bytes, loc + 8)?;
                if get(bytes, rec, 4)? != EOCD64 {
                    return Err(
                        "corrupt zip64 archive: no zip64 end-of-central-directory record".into(),
                    );
                }
                count = u64_at(bytes, rec + 32)?;
                cd_size = u64_at(bytes, rec + 40)?;
                cd_off = u64_at(bytes, rec + 48)?;
            }
            get(
                bytes,
                cd_off,
                usize::try_from(cd_size).unwrap_or(usize::MAX),
            )?;
            let mut archive = Archive {
                bytes,
                names: Vec::new(),
                entries: HashMap::new(),
            };
            let mut at = cd_off;
            for _ in 0..count {
                if get(bytes, at, 4)? != CENTRAL {
                    return Err(format!(
                        "corrupt zip archive: bad central directory entry at {at}"
                    ));
                }
                let name_len = u64::from(u16_at(bytes, at + 28)?);
                let extra_len = u64::from(u16_at(bytes, at + 30)?);
                let comment_len = u64::from(u16_at(bytes, at + 32)?);
                let name = get(bytes, at + 46, name_len as usize)?;
                let name = String::from_utf8_lossy(name).into_owned();
                let mut e = Entry {
                    flags: u16_at(bytes, at + 8)?,
                    method: u16_at(bytes, at + 10)?,
                    crc: u32_at(bytes, at + 16)?,
                    compressed: u32_at(bytes, at + 20)?.into(),
                    size: u32_at(bytes, at + 24)?.into(),
                    local: u32_at(bytes, at + 42)?.into(),
                };
                // The zip64 extra field holds, in order, those of size,
                // compressed size and offset that are 0xffffffff above.
                let extra = get(bytes, at + 46 + name_len, extra_len as usize)?;
                let mut x = 0u64;
                while x + 4 <= extra_len {
                    let (id, len) = (u16_at(extra, x)?, u64::from(u16_at(extra, x + 2)?));
                    if id == 1 {
                        let mut f = x + 4;
                        for field in [&mut e.size, &mut e.compressed, &mut e.local] {
                            if *field == 0xffff_ffff && f + 8 <= x + 4 + len {
                                *field = u64_at(extra, f)?;
                                f += 8;
                            }
                        }
                    }
                    x += 4 + len;
                }
                at += 46 + name_len + extra_len + comment_len;
                if archive.entries.insert(name.clone(), e).is_none() {
                    archive.names.push(name);
                }
            }
            Ok(archive)
        }

        /// Entry names, in directory order.
        pub(super) fn names(&self) -> impl Iterator<Item = &str> {
            self.names.iter().map(String::as_str)
        }

        /// An entry's contents, or `None` when there is no such entry.
        pub(super) fn read_opt(&self, name: &str) -> R<Option<Cow<'a, [u8]>>> {
            let Some(e) = self.entries.get(name) else {
                return Ok(None);
            };
            let bad = |why: String| format!("zip record {name}: {why}");
            if e.flags & 1 != 0 {
                return Err(bad("encrypted".into()));
            }
            if get(self.bytes, e.local, 4)? != LOCAL {
                return Err(bad(format!("no local header at {}", e.local)));
            }
            let start = e.local
                + 30
                + u64::from(u16_at(self.bytes, e.local + 26)?)
                + u64::from(u16_at(self.bytes, e.local + 28)?);
            let len = usize::try_from(e.compressed).map_err(|_| bad("too large".into()))?;
            let raw = get(self.bytes, start, len).map_err(bad)?;
            let data: Cow<'a, [u8]> = match e.method {
                0 => Cow::Borrowed(raw),
                8 => {
                    let size = usize::try_from(e.size).map_err(|_| bad("too large".into()))?;
                    Cow::Owned(
                        miniz_oxide::inflate::decompress_to_vec_with_limit(raw, size).map_err(
                            |err| bad(format!("corrupt deflate data ({:?})", err.status)),
                        )?,
                    )
                }
                m => {
                    return Err(bad(format!(
                        "unsupported compression method {m} (only stored and deflate)"
                    )))
                }
            };
            if data.len() as u64 != e.size {
                return Err(bad(format!("{} bytes instead of {}", data.len(), e.size)));
            }
            if crc32fast::hash(&data) != e.crc {
                return Err(bad("CRC-32 mismatch: the file is corrupt".into()));
            }
            Ok(Some(data))
        }

        /// An entry's contents; a missing entry is an error.
        pub(super) fn read(&self, name: &str) -> R<Cow<'a, [u8]>> {
            self.read_opt(name)?
                .ok_or_else(|| format!("zip record {name} missing"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one pickle and gathers a state dict from it, without storages.
    fn unpickle(p: &[u8]) -> R<(Heap, Value)> {
        let mut heap = Heap::default();
        let (v, _) = Machine::new(p, 0, &mut heap).run()?;
        Ok((heap, v))
    }

    fn err(p: &[u8]) -> String {
        unpickle(p)
            .err()
            .unwrap_or_else(|| panic!("{p:?} should fail"))
    }

    #[test]
    fn malformed_pickles_are_errors_that_say_why() {
        assert!(err(b"\x80\x02R.").contains("stack underflow"));
        assert!(err(b"\x80\x02.").contains("stack underflow"));
        assert!(
            err(b"\x80\x02N(\x85.").contains("stack underflow"),
            "TUPLE1 across a MARK"
        );
        assert!(err(b"\x80\x02h\x05.").contains("memo entry 5 missing"));
        assert!(err(b"\x80\x02N").contains("truncated"));
        assert!(err(b"\x80\x02X\xff\xff\xff\x7fabc.").contains("truncated"));
        assert!(err(b"\x80\x02ccollections\nOrd").contains("truncated"));
        assert!(err(b"\x80\x02Nt.").contains("no MARK"));
        let e = err(b"\x80\x02(i__main__\nX\n.");
        assert!(e.contains("unsupported pickle opcode 0x69 (INST)"), "{e}");
        assert!(err(b"\x80\x09N.").contains("protocol 9"));
    }

    #[test]
    fn calls_outside_the_whitelist_are_refused_by_name() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("subprocess", "Popen"),
            ("__builtin__", "exec"),
        ] {
            let mut p = vec![0x80, 2];
            p.extend(format!("c{module}\n{name}\nX\x02\x00\x00\x00ls").bytes());
            p.extend(*b"\x85R.");
            let e = err(&p);
            let module = if module == "__builtin__" {
                "builtins"
            } else {
                module
            };
            assert!(
                e.starts_with(&format!("refusing to call {module}.{name}:")),
                "{e}"
            );
        }
        // STACK_GLOBAL (protocol 4) and a callable produced by another call.
        let e = err(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94)R.");
        assert!(e.starts_with("refusing to call os.system"), "{e}");
        // Calling a stub instance is refused too.
        let e = err(b"\x80\x02c__main__\nNet\n)\x81)R.");
        assert!(e.contains("only named callables"), "{e}");
    }

    #[test]
    fn classes_are_stubs_and_build_keeps_their_state() {
        // Net.__new__(Net) with state {'_modules': {'body': Block()}, ...}
        let p = b"\x80\x02c__main__\nNet\n)\x81}(X\x0b\x00\x00\x00_parametersccollections\nOrderedDict\n)RX\x08\x00\x00\x00_modules}X\x04\x00\x00\x00bodyc__main__\nBlock\n)\x81sub.";
        let (heap, v) = unpickle(p).unwrap();
        assert!(heap.module_state(&v).is_some());
        let mut out = Vec::new();
        // The child has no state: not a module.
        let e = walk_module(&heap, &v, "", &mut out, 0).unwrap_err();
        assert!(e.contains("body.") && e.contains("__main__.Block"), "{e}");
    }

    #[test]
    fn module_cycles_are_caught() {
        // m = Net(); m.__dict__ = {'_modules': {'me': m}}
        let p = b"\x80\x02c__main__\nNet\n)\x81q\x00}(X\x08\x00\x00\x00_modules}X\x02\x00\x00\x00meh\x00sub.";
        let (heap, v) = unpickle(p).unwrap();
        let mut out = Vec::new();
        let e = walk_module(&heap, &v, "", &mut out, 0).unwrap_err();
        assert!(e.contains("a cycle?"), "{e}");
    }

    #[test]
    fn deep_nesting_neither_recurses_nor_overflows() {
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat(0x85u8).take(1_000_000)); // TUPLE1 a million times
        p.push(b'.');
        let (heap, v) = unpickle(&p).unwrap();
        assert_eq!(heap.describe(&v), "a tuple of 1");
    }

    #[test]
    fn ints_decode_like_python() {
        let v = |p: &[u8]| unpickle(p).map(|(_, v)| v);
        assert!(matches!(
            v(b"\x80\x02J\xff\xff\xff\xff."),
            Ok(Value::Int(-1))
        ));
        assert!(matches!(
            v(b"\x80\x02\x8a\x03\x00\x80\x00."),
            Ok(Value::Int(32768))
        ));
        assert!(matches!(
            v(b"\x80\x02\x8a\x02\x00\x80."),
            Ok(Value::Int(-32768))
        ));
        assert!(matches!(v(b"\x80\x02\x8a\x01\xff."), Ok(Value::Int(-1))));
        assert!(matches!(v(b"\x80\x02\x8a\x00."), Ok(Value::Int(0))));
        assert!(matches!(
            v(b"\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00."),
            Ok(Value::Float(1.5))
        ));
        let magic = v(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.").unwrap();
        assert!(matches!(magic, Value::BigInt(b) if *b == LEGACY_MAGIC));
    }

    #[test]
    fn tensors_past_their_storage_are_refused() {
        let storage = Rc::new(StorageRef {
            key: "0".into(),
            dtype: Dtype::F32,
            numel: 6,
            view: None,
        });
        let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut st = Storages::Legacy(HashMap::from([("0".to_string(), bytes.as_slice())]));
        let t = |offset, size: &[usize], stride: &[usize]| TensorRef {
            storage: storage.clone(),
            dtype: Dtype::F32,
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        };
        let ok = materialize(&t(1, &[2, 2], &[1, 2]), &mut st)
            .unwrap()
            .unwrap();
        assert_eq!(ok.data(), &[1.0, 3.0, 2.0, 4.0]);
        assert_eq!(ok.shape(), &[2, 2]);
        let e = materialize(&t(3, &[2, 2], &[1, 2]), &mut st).unwrap_err();
        assert!(e.contains("run past its storage"), "{e}");
        let e = materialize(&t(0, &[7], &[1]), &mut st).unwrap_err();
        assert!(e.contains("run past its storage"), "{e}");
        let e = materialize(&t(0, &[usize::MAX, 2], &[1, 1]), &mut st).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        assert_eq!(
            materialize(&t(0, &[0, 3], &[3, 1]), &mut st)
                .unwrap()
                .unwrap()
                .numel(),
            0
        );
        let scalar = materialize(&t(5, &[], &[]), &mut st).unwrap().unwrap();
        assert_eq!((scalar.shape(), scalar.data()), (&[][..], &[5.0][..]));
        let e = materialize(&t(0, &[1 << 30], &[0]), &mut st).unwrap_err();
        assert!(e.contains("view a storage of only 6"), "{e}");
    }
}
