//! `srkit::models::pytorch` against checkpoints written by PyTorch itself.
//!
//! The fixtures in `tests/fixtures/pth/` come from `scripts/make_pth_fixtures.py`
//! (torch 2.x): both serialisations, the usual wrappers, whole pickled
//! modules, float16/bfloat16/float64, strided and storage-sharing tensors and
//! malicious pickles; `expected.json` holds the values torch reads back. The
//! real third-party weights in `../shared/weights` (see its README) are read
//! in place and checked against the README's layouts and against values torch
//! read from the same files.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;
use srkit::models::pytorch::{load_checkpoint, read_checkpoint, StateDict};
use srkit::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth")
}

fn weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/weights")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn shape(j: &Json) -> Vec<usize> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// JSON numbers are the f32 values torch read, exactly, as f64.
fn f32s(j: &Json) -> Vec<f32> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn every_fixture_reads_back_with_exact_keys_shapes_and_values() {
    let exp = expected();
    let mut checked = Vec::new();
    for (file, e) in exp.as_object().unwrap() {
        if file == "real" || file == "sets" || e.get("error").is_some() {
            continue;
        }
        let sd = load_checkpoint(&fixtures().join(file)).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(sd.source(), e["source"].as_str().unwrap(), "{file}");
        let want = exp["sets"][e["tensors"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let want_keys: Vec<&str> = want.iter().map(|t| t["key"].as_str().unwrap()).collect();
        assert_eq!(
            sd.keys().collect::<Vec<_>>(),
            want_keys,
            "{file}: keys in file order"
        );
        assert_eq!(sd.len(), want.len());
        for t in want {
            let key = t["key"].as_str().unwrap();
            let got = sd.get(key).unwrap();
            assert_eq!(got.shape(), shape(&t["shape"]), "{file}: {key}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got.data()), bits(&f32s(&t["values"])), "{file}: {key}");
        }
        checked.push(file.clone());
    }
    // Every file in the folder is covered by expected.json.
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "expected.json" || exp.get(&name).is_some(),
            "{name} is not in expected.json"
        );
    }
    assert!(checked.len() >= 16, "{checked:?}");
}

#[test]
fn the_interesting_cases_are_what_the_fixtures_hold() {
    // Guards against a fixture script that silently stops covering a case.
    let sd = load_checkpoint(&fixtures().join("whole_module_legacy.pth")).unwrap();
    let keys: Vec<&str> = sd.keys().collect();
    assert!(keys.contains(&"body.1.act.weight") && keys.contains(&"bn.running_var"));
    assert!(!keys
        .iter()
        .any(|k| k.contains("num_batches_tracked") || k.contains("cache")));
    assert!(sd.get("tail.weight").is_some() && sd.get("tail.bias").is_none());

    let views = load_checkpoint(&fixtures().join("views.pth")).unwrap();
    let t = views.get("transposed").unwrap();
    assert_eq!(t.shape(), &[6, 4]);
    // grid = arange(24)/8 - 1 viewed [4, 6]; its transpose's first row is column 0.
    assert_eq!(&t.data()[..4], &[-1.0, -0.25, 0.5, 1.25]);
    assert_eq!(views.get("shared_a").unwrap().data()[0], 2.0 / 8.0 - 1.0);
    assert_eq!(views.get("shared_b").unwrap().data()[0], 10.0 / 8.0 - 1.0);

    let dt = load_checkpoint(&fixtures().join("dtypes_legacy.pth")).unwrap();
    assert_eq!(dt.get("scalar").unwrap().shape(), &[] as &[usize]);
    assert_eq!(dt.get("scalar").unwrap().data(), &[1.5]);
    assert!(
        dt.get("steps").is_none() && dt.get("mask").is_none(),
        "int/bool skipped"
    );
    let half = dt.get("half").unwrap().data().to_vec();
    assert!(half.iter().all(|&x| half::f16::from_f32(x).to_f32() == x));

    let ema = load_checkpoint(&fixtures().join("wrapped_params_ema.pth")).unwrap();
    let bare = load_checkpoint(&fixtures().join("bare_zip.pth")).unwrap();
    assert_eq!(ema.get("conv1.weight"), bare.get("conv1.weight"));
    let dp = load_checkpoint(&fixtures().join("dataparallel.pth")).unwrap();
    assert_eq!(
        dp.keys().collect::<Vec<_>>(),
        bare.keys().collect::<Vec<_>>()
    );
}

#[test]
fn malicious_pickles_are_refused_by_name_and_nothing_runs() {
    let marker = Path::new("/tmp/srkit_pth_fixture_pwned");
    let _ = std::fs::remove_file(marker);
    let exp = expected();
    let mut n = 0;
    for (file, e) in exp.as_object().unwrap() {
        let Some(want) = e.get("error").and_then(Json::as_str) else {
            continue;
        };
        let err = load_checkpoint(&fixtures().join(file)).unwrap_err();
        assert!(matches!(err, Error::Model(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{file}: {msg}");
        assert!(msg.contains(file.as_str()), "names the file: {msg}");
        n += 1;
    }
    assert_eq!(n, 3);
    assert!(!marker.exists(), "a malicious payload ran");
}

/// Every strict prefix of a checkpoint is an error, never a panic.
fn assert_truncations_fail(name: &str, step: usize) {
    let bytes = fixture(name);
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(step).collect();
    cuts.extend([1, 2, 8, bytes.len() / 2, bytes.len() - 22, bytes.len() - 1]);
    for cut in cuts {
        let r = read_checkpoint(&bytes[..cut], name);
        let err = r
            .err()
            .unwrap_or_else(|| panic!("{name} cut at {cut} read fine"));
        assert!(
            err.to_string().starts_with(&format!("model: {name}: ")),
            "{err}"
        );
    }
}

#[test]
fn truncated_checkpoints_are_errors() {
    assert_truncations_fail("bare_zip.pth", 1);
    assert_truncations_fail("bare_deflated.pth", 1);
    assert_truncations_fail("bare_legacy.pth", 1);
    assert_truncations_fail("views_legacy.pth", 1);
    assert_truncations_fail("whole_module_legacy.pth", 3);
    assert_truncations_fail("whole_module.pth", 7);
    let e = read_checkpoint(&fixture("bare_legacy.pth")[..1300], "x").unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = read_checkpoint(&fixture("bare_zip.pth")[..3000], "x").unwrap_err();
    assert!(e.to_string().contains("truncated or corrupt zip"), "{e}");
}

#[test]
fn garbage_and_non_checkpoints_are_errors() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for len in [0usize, 1, 3, 22, 100, 4096] {
        for first in [None, Some(&b"PK\x03\x04"[..]), Some(&b"\x80\x02"[..])] {
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(f) = first {
                b.splice(0..f.len().min(b.len()), f.iter().copied());
            }
            assert!(read_checkpoint(&b, "g").is_err());
        }
    }
    let err = |b: &[u8]| read_checkpoint(b, "f.pth").unwrap_err().to_string();
    assert!(err(b"").contains("not a PyTorch checkpoint"));
    assert!(err(b"hello, world").contains("not a PyTorch checkpoint"));
    // A plain pickle of a dict is not a legacy checkpoint.
    assert!(err(b"\x80\x02}q\x00.").contains("not a PyTorch checkpoint"));
    // A zip archive that is not a checkpoint.
    let zip = fixture("bare_zip.pth");
    let mut renamed = zip.clone();
    for i in 0..renamed.len() - 8 {
        if &renamed[i..i + 8] == b"data.pkl" {
            renamed[i..i + 8].copy_from_slice(b"data.pkx");
        }
    }
    assert!(err(&renamed).contains("data.pkl"));
    // A storage record whose bytes changed: the CRC catches it.
    let name = b"bare_zip/data/0";
    let at = zip.windows(name.len()).position(|w| w == name).unwrap(); // local header's name
    let extra = u16::from_le_bytes([zip[at - 2], zip[at - 1]]) as usize;
    let mut flipped = zip.clone();
    flipped[at + name.len() + extra] ^= 0x55; // first byte of storage 0
    let e = err(&flipped);
    assert!(e.contains("CRC") || e.contains("corrupt"), "{e}");
}

#[test]
fn a_storage_missing_from_the_archive_is_named() {
    let zip = fixture("bare_zip.pth");
    let mut b = zip.clone();
    // Rename the record data/0 (central directory and local header alike).
    let mut n = 0;
    for i in 0..b.len() - 7 {
        if &b[i..i + 7] == b"/data/0" {
            b[i + 6] = b'9';
            n += 1;
        }
    }
    assert_eq!(n, 2);
    // The CRC of data.pkl is unchanged, the storage key "0" now has no record.
    let e = read_checkpoint(&b, "m.pth").unwrap_err().to_string();
    assert!(e.contains("storage 0 is missing"), "{e}");
}

fn fsrcnn_layout() -> Vec<(String, Vec<usize>)> {
    let mut v = vec![
        ("first_part.0.weight".into(), vec![56, 1, 5, 5]),
        ("first_part.0.bias".into(), vec![56]),
        ("first_part.1.weight".into(), vec![56]),
        ("mid_part.0.weight".into(), vec![12, 56, 1, 1]),
        ("mid_part.0.bias".into(), vec![12]),
        ("mid_part.1.weight".into(), vec![12]),
    ];
    for i in [2, 4, 6, 8] {
        v.push((format!("mid_part.{i}.weight"), vec![12, 12, 3, 3]));
        v.push((format!("mid_part.{i}.bias"), vec![12]));
        v.push((format!("mid_part.{}.weight", i + 1), vec![12]));
    }
    v.push(("mid_part.10.weight".into(), vec![56, 12, 1, 1]));
    v.push(("mid_part.10.bias".into(), vec![56]));
    v.push(("mid_part.11.weight".into(), vec![56]));
    v.push(("last_part.weight".into(), vec![56, 1, 9, 9]));
    v.push(("last_part.bias".into(), vec![1]));
    v
}

fn srvgg_layout() -> Vec<(String, Vec<usize>)> {
    let mut v = vec![
        ("body.0.weight".into(), vec![64, 3, 3, 3]),
        ("body.0.bias".into(), vec![64]),
        ("body.1.weight".into(), vec![64]),
    ];
    for k in 1..=16 {
        v.push((format!("body.{}.weight", 2 * k), vec![64, 64, 3, 3]));
        v.push((format!("body.{}.bias", 2 * k), vec![64]));
        v.push((format!("body.{}.weight", 2 * k + 1), vec![64]));
    }
    v.push(("body.34.weight".into(), vec![48, 64, 3, 3]));
    v.push(("body.34.bias".into(), vec![48]));
    v
}

/// Layout from the weights README, values against what torch read.
fn check_real(rel: &str, source: &str, layout: Vec<(String, Vec<usize>)>) -> StateDict {
    let sd = load_checkpoint(&weights().join(rel)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sd.source(), source, "{rel}");
    let got: Vec<(String, Vec<usize>)> = sd
        .iter()
        .map(|(k, t)| (k.to_string(), t.shape().to_vec()))
        .collect();
    assert_eq!(got, layout, "{rel}");
    let exp = expected();
    let want = exp["real"][rel]["tensors"].as_array().unwrap();
    assert_eq!(want.len(), sd.len());
    for w in want {
        let key = w["key"].as_str().unwrap();
        let t = sd.get(key).unwrap();
        assert_eq!(t.shape(), shape(&w["shape"]), "{rel} {key}");
        assert_eq!(
            &t.data()[..5.min(t.numel())],
            f32s(&w["first5"]),
            "{rel} {key}"
        );
        let sum = t.data().iter().fold(0.0f64, |a, &x| a + f64::from(x));
        assert_eq!(sum, w["sum"].as_f64().unwrap(), "{rel} {key}");
    }
    sd
}

#[test]
fn real_fsrcnn_weights_legacy_format_cuda_storages() {
    for s in [2, 3, 4] {
        check_real(
            &format!("fsrcnn-pytorch/fsrcnn_x{s}.pth"),
            "",
            fsrcnn_layout(),
        );
    }
}

#[test]
fn real_realesr_animevideov3_weights_zip_format_params() {
    check_real(
        "realesr-animevideov3/realesr-animevideov3.pth",
        "params",
        srvgg_layout(),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Mutated and truncated checkpoints of both formats never panic.
    #[test]
    fn mutated_checkpoints_never_panic(
        which in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let name = ["bare_legacy.pth", "whole_module_legacy.pth", "dtypes_legacy.pth",
                    "views.pth", "whole_module.pth"][which];
        let mut b = fixture(name);
        for (at, byte) in edits {
            let i = at.index(b.len());
            b[i] = byte;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        let _ = read_checkpoint(&b, name);
    }
}
