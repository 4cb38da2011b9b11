//! MATLAB parity of `srkit::resample`: bicubic downscaling of the Set5 HR
//! images must reproduce, pixel for pixel, the LR files MATLAB's
//! `imresize(HR, 1/s, 'bicubic')` produced (`shared/data/reference/
//! Set5_LR_MATLAB`, from jbhuang0604/SelfExSR).

use std::path::{Path, PathBuf};

use srkit::degrade::{degrade, modcrop, Degradation};
use srkit::resample::{resize, Border, ResizeOptions, ResizeTarget};
use srkit::{BitDepth, Image};

const SET5: [&str; 5] = ["baby", "bird", "butterfly", "head", "woman"];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// Reads an 8-bit RGB PNG into a planar srkit image (the `io` module is not
/// used on purpose: this test checks `resample` alone).
fn read_rgb8(path: &Path) -> Image {
    let rgb = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0.0f32; w * h * 3];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            data[c * w * h + i] = f32::from(px[c]) / 255.0;
        }
    }
    Image::from_planar(w, h, 3, BitDepth::U8, data).unwrap()
}

fn to_u8(img: &Image) -> Vec<u8> {
    img.data()
        .iter()
        .map(|&v| (f64::from(v) * 255.0).round() as u8)
        .collect()
}

/// Counts (equal, total) samples of `ours` against `reference`.
fn compare(ours: &Image, reference: &Image) -> (usize, usize) {
    assert_eq!(
        (ours.width(), ours.height(), ours.channels()),
        (reference.width(), reference.height(), reference.channels())
    );
    let a = to_u8(ours);
    let b = to_u8(reference);
    let equal = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    (equal, a.len())
}

fn reference_lr(n: usize, scale: usize) -> Image {
    read_rgb8(&data_dir().join(format!(
        "reference/Set5_LR_MATLAB/img_{n:03}_SRF_{scale}_LR.png"
    )))
}

#[test]
fn set5_bicubic_downscale_matches_matlab_exactly() {
    let mut report = Vec::new();
    let mut all_equal = true;
    let mut matched = 0;
    let mut total = 0;
    for (i, name) in SET5.iter().enumerate() {
        let hr = read_rgb8(&data_dir().join(format!("Set5/{name}.png")));
        for scale in [2, 3, 4] {
            let hr_c = modcrop(&hr, scale).unwrap();
            let ours = resize(
                &hr_c,
                ResizeTarget::Scale(1.0 / scale as f64),
                &ResizeOptions::default(),
            )
            .unwrap();
            let (eq, n) = compare(&ours, &reference_lr(i + 1, scale));
            matched += eq;
            total += n;
            all_equal &= eq == n;
            report.push(format!("{name} x{scale}: {eq}/{n} samples equal"));
            // degrade(BI) is the same operation.
            let bi = degrade(&hr_c, scale, Degradation::Bicubic, 0).unwrap();
            assert_eq!(bi, ours);
        }
    }
    eprintln!("{}\ntotal: {matched}/{total}", report.join("\n"));
    assert!(all_equal, "{}", report.join("\n"));
}

/// MATLAB's current `contributions()` mirrors out-of-range taps; the
/// reference files were made with edge clamping. The two differ only near
/// the border.
#[test]
fn symmetric_border_differs_only_at_the_edge() {
    let hr = modcrop(&read_rgb8(&data_dir().join("Set5/bird.png")), 4).unwrap();
    let sym = ResizeOptions {
        border: Border::Symmetric,
        ..Default::default()
    };
    let ours = resize(&hr, ResizeTarget::Scale(0.25), &sym).unwrap();
    let reference = reference_lr(2, 4);
    let (w, h) = (ours.width(), ours.height());
    let mut edge_diffs = 0;
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let a = (ours.get(x, y, c) * 255.0).round();
                let b = (reference.get(x, y, c) * 255.0).round();
                let inner = x >= 3 && y >= 3 && x + 3 < w && y + 3 < h;
                if inner {
                    assert_eq!(a, b, "({x},{y},{c})");
                } else if a != b {
                    edge_diffs += 1;
                }
            }
        }
    }
    assert!(edge_diffs > 0);
}

/// The reference is discriminating: skipping MATLAB's rounding to `uint8`
/// between the two passes changes some pixels.
#[test]
fn rounding_between_passes_is_needed() {
    let hr = modcrop(&read_rgb8(&data_dir().join("Set5/baby.png")), 3).unwrap();
    let no_round = ResizeOptions {
        matlab_rounding: false,
        ..Default::default()
    };
    let ours = resize(&hr, ResizeTarget::Scale(1.0 / 3.0), &no_round).unwrap();
    let (eq, n) = compare(&ours, &reference_lr(1, 3));
    eprintln!("without intermediate rounding: {eq}/{n} equal");
    assert!(eq < n);
}
