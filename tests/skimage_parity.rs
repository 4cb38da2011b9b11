//! Parity of srkit's PSNR/SSIM with scikit-image and with BasicSR's formulas.
//!
//! `tests/fixtures/skimage_metrics.json` and the PNG pairs in
//! `tests/fixtures/skimage_pairs/` are written by
//! `scripts/make_skimage_fixture.py`: 64x64 crops of Set5/Set14 HR images and
//! of their Pillow bicubic down/up-scaled versions, with the scores computed by
//! scikit-image (`skimage` convention) and by a float64 NumPy transcription of
//! BasicSR `calculate_psnr`/`calculate_ssim` (`paper` convention). Every score
//! must match to 1e-6.

use std::path::{Path, PathBuf};

use serde_json::Value;
use srkit::color::GrayMode;
use srkit::metrics::{psnr, psnr_ssim, ssim, Channels, Convention, MetricOptions};
use srkit::{BitDepth, Image};

const TOLERANCE: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Decodes an 8-bit gray or RGB PNG into a planar srkit image (kept local so
/// the test does not depend on `srkit::io`).
fn load_png(path: &Path) -> Image {
    let dynamic = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = (dynamic.width() as usize, dynamic.height() as usize);
    let (channels, interleaved) = match dynamic {
        image::DynamicImage::ImageLuma8(buf) => (1, buf.into_raw()),
        image::DynamicImage::ImageRgb8(buf) => (3, buf.into_raw()),
        other => panic!(
            "{}: unexpected PNG layout {:?}",
            path.display(),
            other.color()
        ),
    };
    let mut planar = vec![0.0f32; w * h * channels];
    for (i, &v) in interleaved.iter().enumerate() {
        planar[(i % channels) * w * h + i / channels] = f32::from(v) / 255.0;
    }
    Image::from_planar(w, h, channels, BitDepth::U8, planar).unwrap()
}

fn options(case: &Value) -> MetricOptions {
    MetricOptions {
        crop_border: case["crop_border"].as_u64().unwrap() as usize,
        channels: match case["channels"].as_str().unwrap() {
            "y" => Channels::Y,
            "rgb" => Channels::Rgb,
            other => panic!("channels {other}"),
        },
        convention: match case["convention"].as_str().unwrap() {
            "paper" => Convention::Paper,
            "skimage" => Convention::Skimage,
            other => panic!("convention {other}"),
        },
        gray: match case["gray"].as_str().unwrap() {
            "native" => GrayMode::Native,
            "expand" => GrayMode::ExpandToRgb,
            other => panic!("gray {other}"),
        },
    }
}

#[test]
fn matches_skimage_and_basicsr_references() {
    let text = std::fs::read_to_string(fixtures().join("skimage_metrics.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 6);
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut saw_gray = false;
    for pair in pairs {
        let dir = fixtures().join("skimage_pairs");
        let reference = load_png(&dir.join(pair["reference"].as_str().unwrap()));
        let test = load_png(&dir.join(pair["test"].as_str().unwrap()));
        assert_eq!(
            reference.channels() as u64,
            pair["channels"].as_u64().unwrap()
        );
        saw_gray |= reference.channels() == 1;
        for case in pair["cases"].as_array().unwrap() {
            let opts = options(case);
            let scores = psnr_ssim(&reference, &test, &opts).unwrap();
            assert_eq!(scores.psnr, psnr(&reference, &test, &opts).unwrap());
            assert_eq!(scores.ssim, ssim(&reference, &test, &opts).unwrap());
            for (what, got) in [("psnr", scores.psnr), ("ssim", scores.ssim)] {
                let want = case[what].as_f64().unwrap();
                if (got - want).abs() > TOLERANCE {
                    failures.push(format!(
                        "{} {opts:?} {what}: expected {want:.10}, got {got:.10}",
                        pair["name"]
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(saw_gray, "the fixture must include a grayscale pair");
    assert!(
        failures.is_empty(),
        "{} of {checked} scores differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
