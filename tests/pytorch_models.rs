//! Real third-party PyTorch checkpoints (../shared/weights) imported without
//! Python: architecture detection, outputs against PyTorch's own (fixture by
//! scripts/make_import_fixture.py), and FSRCNN's benchmark scores.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use srkit::eval::{self, Dataset, EvalOptions};
use srkit::infer::ModelUpscaler;
use srkit::models::import;
use srkit::nn::{tensor_from_view, Tensor, CPU};

const FIXTURE: &[u8] = include_bytes!("fixtures/pytorch_models.safetensors");

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

fn fixture(name: &str) -> Tensor {
    let st = SafeTensors::deserialize(FIXTURE).expect("fixture parses");
    tensor_from_view(name, &st.tensor(name).expect("fixture tensor")).expect("f32")
}

fn check_against_pytorch(file: &str, case: &str, arch: &str, config: serde_json::Value) {
    let model = import::load_pytorch(&shared(file), None, None).expect("imports");
    assert_eq!(model.meta.arch, arch);
    assert_eq!(model.meta.config, config);
    let y = model
        .network
        .infer(&CPU, &model.params, &fixture(&format!("{case}.input")))
        .expect("runs");
    let want = fixture(&format!("{case}.output"));
    let err = y.max_abs_diff(&want).expect("same shape");
    eprintln!("{case}: max abs diff vs PyTorch {err:.2e}");
    assert!(err <= 1e-4, "{case}: max abs diff {err}");
}

#[test]
fn fsrcnn_legacy_checkpoint_matches_pytorch() {
    check_against_pytorch(
        "weights/fsrcnn-pytorch/fsrcnn_x3.pth",
        "fsrcnn_x3",
        "fsrcnn",
        serde_json::json!({"scale": 3, "d": 56, "s": 12, "m": 4}),
    );
}

#[test]
fn realesr_animevideov3_zip_checkpoint_matches_pytorch() {
    check_against_pytorch(
        "weights/realesr-animevideov3/realesr-animevideov3.pth",
        "animevideov3",
        "srvgg",
        serde_json::json!({"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64,
            "num_conv": 16, "upscale": 4, "act_type": "prelu"}),
    );
}

/// Set5 under the paper protocol (MATLAB-bicubic LR, Y, crop = scale): an
/// independent implementation measured 37.14 / 32.60 / 30.52 dB.
#[test]
fn fsrcnn_set5_scores_match_the_independent_measurement() {
    let set5 = Dataset::from_dir(&shared("data/Set5")).expect("Set5");
    for (scale, want) in [(2, 37.14), (3, 32.60), (4, 30.52)] {
        let file = shared(&format!("weights/fsrcnn-pytorch/fsrcnn_x{scale}.pth"));
        let model = import::load_pytorch(&file, None, None).expect("imports");
        let u = ModelUpscaler::new(model, format!("fsrcnn-x{scale}"));
        let r = eval::evaluate(&u, &set5, scale, &EvalOptions::default(), &|| {}).expect("eval");
        eprintln!("fsrcnn x{scale}: Set5 {:.3} dB (reference {want})", r.psnr);
        assert!(
            (r.psnr - want).abs() <= 0.05,
            "x{scale}: {} vs {want}",
            r.psnr
        );
    }
}

#[test]
fn detection_needs_a_scale_only_where_the_weights_lack_one() {
    let file = shared("weights/fsrcnn-pytorch/fsrcnn_x2.pth");
    let sd = srkit::models::pytorch::load_checkpoint(&file).expect("reads");
    let err = import::model_from_state_dict(&sd, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--scale"), "{err}");
    let m = import::model_from_state_dict(&sd, None, Some(2)).expect("with a scale");
    assert_eq!(m.meta.scales, vec![2]);
    // The name's scale is used when no hint is given.
    assert_eq!(
        import::load_pytorch(&file, None, None).unwrap().meta.scales,
        vec![2]
    );
    // Forcing another architecture's layout fails with a reason.
    let err = import::model_from_state_dict(&sd, Some("vdsr"), Some(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vdsr layout"), "{err}");
    let err = import::model_from_state_dict(&sd, Some("nope"), Some(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot import"), "{err}");
}
