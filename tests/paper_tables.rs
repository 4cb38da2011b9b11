//! The "Bicubic" rows of the published SR tables, reproduced by `srkit eval`'s
//! library path: BI degradation (MATLAB bicubic, 8-bit), bicubic upscale,
//! Y-channel PSNR/SSIM with `scale` pixels cropped, averaged per dataset.
//!
//! Published values (e.g. RCAN, Zhang et al. 2018, Table 3; EDSR/RDN agree):
//! Set5 33.66/0.9299, 30.39/0.8682, 28.42/0.8104;
//! Set14 30.24/0.8688, 27.55/0.7742, 26.00/0.7027;
//! B100 29.56/0.8431, 27.21/0.7385, 25.96/0.6675 (x2/x3/x4).

use std::path::{Path, PathBuf};

use srkit::eval::{evaluate, Dataset, EvalOptions};
use srkit::upscale::Interpolation;

fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

fn check(dataset: &str, published: [(usize, f64, f64); 3]) {
    let ds = Dataset::from_dir(&data_dir(dataset)).expect("dataset folder");
    let bicubic = Interpolation::bicubic();
    for (scale, psnr, ssim) in published {
        let r = evaluate(&bicubic, &ds, scale, &EvalOptions::default(), &|| {}).unwrap();
        eprintln!(
            "{dataset} x{scale}: {:.4} / {:.5} (published {psnr} / {ssim})",
            r.psnr, r.ssim
        );
        assert!(
            (r.psnr - psnr).abs() <= 0.02,
            "{dataset} x{scale} PSNR {:.4} vs published {psnr}",
            r.psnr
        );
        assert!(
            (r.ssim - ssim).abs() <= 0.001,
            "{dataset} x{scale} SSIM {:.5} vs published {ssim}",
            r.ssim
        );
    }
}

#[test]
fn bicubic_set5_matches_published() {
    check(
        "Set5",
        [(2, 33.66, 0.9299), (3, 30.39, 0.8682), (4, 28.42, 0.8104)],
    );
}

#[test]
fn bicubic_set14_matches_published() {
    check(
        "Set14",
        [(2, 30.24, 0.8688), (3, 27.55, 0.7742), (4, 26.00, 0.7027)],
    );
}

#[test]
fn bicubic_b100_matches_published() {
    check(
        "BSD100",
        [(2, 29.56, 0.8431), (3, 27.21, 0.7385), (4, 25.96, 0.6675)],
    );
}
