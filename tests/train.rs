//! Training end to end, on the real data folders: a short seeded run beats
//! bicubic, a resumed run equals an uninterrupted one, and a run killed with
//! SIGKILL resumes from its last checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;

use srkit::models::{Model, SrcnnConfig};
use srkit::train::{train, Loss, ScaleScore, Silent, TrainConfig, TrainObserver};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

fn config(steps: u64, val_every: u64) -> TrainConfig {
    TrainConfig {
        arch: "srcnn".into(),
        arch_config: serde_json::to_value(SrcnnConfig::srcnn_955()).unwrap(),
        scales: vec![3],
        train: vec![data("T91")],
        val: vec![data("Set5")],
        patch: 33,
        batch: 16,
        steps,
        lr: 1e-3,
        lr_halve_every: 0,
        loss: Loss::Mse,
        seed: 5,
        val_every,
        init: None,
        revive_dead: false,
        ema_decay: None,
        downscale_aug: Vec::new(),
    }
}

/// Every tensor of a checkpoint (weights and Adam moments), sorted by name.
fn checkpoint_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    t.sort();
    t
}

fn weights(path: &Path) -> Vec<Vec<f32>> {
    let m = Model::load(path).unwrap();
    m.params
        .ids()
        .map(|id| m.params.get(id).data().to_vec())
        .collect()
}

#[test]
fn short_seeded_run_beats_bicubic_on_set5() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let s = train(&config(300, 150), &out, false, &mut Silent).unwrap();
    // Published bicubic Set5 x3: 30.39 dB.
    assert!(s.best_psnr > 30.39 + 0.2, "best {:.3} dB", s.best_psnr);
    let m = Model::load(&out).unwrap();
    assert_eq!(m.meta.training.val_psnr, s.best_psnr);
    let log = std::fs::read_to_string(dir.path().join("m.log.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(dir.path().join("m.curve.png").exists());

    // A run started from those weights (--init) begins where they left off:
    // one step at a negligible learning rate scores what they scored, far
    // above a random start.
    let warm = TrainConfig {
        init: Some(out.clone()),
        lr: 1e-9,
        ..config(1, 1)
    };
    let w = train(
        &warm,
        &dir.path().join("warm.safetensors"),
        false,
        &mut Silent,
    )
    .unwrap();
    assert!(
        (w.best_psnr - s.best_psnr).abs() < 0.01,
        "warm start {:.3} dB vs {:.3} dB",
        w.best_psnr,
        s.best_psnr
    );
}

/// Networks fed the LR image, in RGB (SRVGGNetCompact) and in Y (ESPCN),
/// train through the same pipeline and beat bicubic after a short run.
#[test]
fn lr_input_rgb_and_y_networks_train_past_bicubic() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "srvgg",
            serde_json::json!({"num_in_ch": 3, "num_out_ch": 3, "num_feat": 16,
                "num_conv": 3, "upscale": 3, "act_type": "prelu"}),
        ),
        ("espcn", serde_json::json!({"scale": 3, "n1": 64, "n2": 32})),
    ];
    // ESPCN has no skip connection and needs more steps to pass bicubic.
    for ((arch, arch_config), steps) in cases.into_iter().zip([300, 1200]) {
        let out = dir.path().join(format!("{arch}.safetensors"));
        let cfg = TrainConfig {
            arch: arch.into(),
            arch_config,
            patch: 17,
            lr: 1e-3,
            ..config(steps, steps / 2)
        };
        let s = train(&cfg, &out, false, &mut Silent).unwrap();
        eprintln!("{arch}: best Set5 x3 {:.3} dB", s.best_psnr);
        assert!(
            s.best_psnr > 30.39 + 0.1,
            "{arch}: best {:.3} dB",
            s.best_psnr
        );
        let m = Model::load(&out).unwrap();
        assert_eq!(m.meta.arch, arch);
    }
}

/// A network fed the bicubic-upscaled image trains one model on several
/// scales (VDSR's protocol): every scale is validated and logged, their mean
/// ranks the weights, and the model file says which scales it serves.
/// Networks that upscale inside refuse several scales.
/// Records the per-scale scores of each validation.
struct Scores(Vec<Vec<ScaleScore>>);

impl TrainObserver for Scores {
    fn on_scale_scores(&mut self, _step: u64, scores: &[ScaleScore]) {
        self.0.push(scores.to_vec());
    }
}

#[test]
fn pre_upsampling_network_trains_on_several_scales() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ms.safetensors");
    let cfg = TrainConfig {
        arch: "vdsr".into(),
        arch_config: serde_json::json!({"depth": 4, "features": 16, "bias": true}),
        scales: vec![2, 4],
        patch: 24,
        ..config(200, 200)
    };
    let mut seen = Scores(Vec::new());
    let s = train(&cfg, &out, false, &mut seen).unwrap();
    assert_eq!(seen.0.len(), 1);
    assert_eq!(
        seen.0[0].iter().map(|r| r.scale).collect::<Vec<_>>(),
        [2, 4]
    );
    let m = Model::load(&out).unwrap();
    assert_eq!(m.meta.scales, vec![2, 4]);
    let log = std::fs::read_to_string(dir.path().join("ms.log.csv")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        "step,lr,loss,val_psnr,val_ssim,wall_seconds,val_psnr_x2,val_ssim_x2,val_psnr_x4,val_ssim_x4"
    );
    let cells: Vec<f64> = lines[1].split(',').map(|c| c.parse().unwrap()).collect();
    let (x2, x4) = (cells[6], cells[8]);
    assert!((cells[3] - (x2 + x4) / 2.0).abs() < 1e-3, "{log}");
    assert!((s.best_psnr - (x2 + x4) / 2.0).abs() < 1e-3);
    // Published bicubic Set5: 33.66 dB at x2, 28.42 dB at x4; both beaten.
    assert!(x2 > 33.66 + 0.1 && x4 > 28.42 + 0.1, "{log}");
    assert!((seen.0[0][0].psnr - x2).abs() < 1e-3);

    // The CLI takes the scales comma-separated and prints each one's score.
    let o = Command::new(env!("CARGO_BIN_EXE_srkit"))
        .args([
            "-j", "1", "train", "--arch", "vdsr", "--scale", "2,4", "--patch", "24",
        ])
        .args(["--config", r#"{"depth": 3, "features": 8}"#])
        .arg("--train")
        .arg(data("T91"))
        .arg("--val")
        .arg(data("Set5"))
        .arg("--out")
        .arg(dir.path().join("cli.safetensors"))
        .args(["--steps", "5", "--val-every", "5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("(mean of x2 ") && err.contains(", x4 "),
        "{err}"
    );

    let espcn = TrainConfig {
        arch: "espcn".into(),
        arch_config: serde_json::json!({"scale": 2, "n1": 64, "n2": 32}),
        scales: vec![2, 4],
        ..config(1, 1)
    };
    let err = train(
        &espcn,
        &dir.path().join("e.safetensors"),
        false,
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("one scale per model"), "{err}");

    // A checkpoint from before scales were a list records `"scale": 3`.
    let mut old = serde_json::to_value(config(1, 1)).unwrap();
    let map = old.as_object_mut().unwrap();
    map.remove("scales");
    map.insert("scale".into(), 3.into());
    let old: TrainConfig = serde_json::from_value(old).unwrap();
    assert_eq!(old.scales, vec![3]);
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.safetensors");
    let parts = dir.path().join("parts.safetensors");
    // lr decays mid-run, so the schedule must also resume correctly.
    let mut full = config(40, 20);
    full.lr_halve_every = 30;
    train(&full, &whole, false, &mut Silent).unwrap();
    let mut first = full.clone();
    first.steps = 20;
    train(&first, &parts, false, &mut Silent).unwrap();
    // Starting again without --resume would silently discard the run: refused.
    assert!(train(&full, &parts, false, &mut Silent).is_err());
    let mut other = full.clone();
    other.seed = 6;
    assert!(train(&other, &parts, true, &mut Silent).is_err());
    train(&full, &parts, true, &mut Silent).unwrap();
    // Weights and Adam moments of the last checkpoints are identical.
    let ck = |name: &str| checkpoint_tensors(&dir.path().join(name));
    let (a, b) = (ck("whole.ckpt.safetensors"), ck("parts.ckpt.safetensors"));
    assert_eq!(a.len(), 18);
    assert!(a == b, "checkpoint tensors differ after resume");
    assert_eq!(weights(&whole), weights(&parts));
    let log = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
    let strip = |s: String| -> Vec<String> {
        s.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(strip(log("whole.log.csv")), strip(log("parts.log.csv")));

    // Larger patches and scale augmentation for the rest of a run (a
    // schedule change, like the batch size): resumed from step 40, not
    // refused.
    let mut bigger = full.clone();
    bigger.patch += 8;
    bigger.steps = 60;
    bigger.downscale_aug = vec![0.8];
    train(&bigger, &parts, true, &mut Silent).unwrap();
    let rows = log("parts.log.csv");
    assert!(rows.lines().last().unwrap().starts_with("60,"), "{rows}");
    assert_eq!(rows.lines().count(), 4, "{rows}");
}

/// Records the steps at which dead units were revived.
struct Revivals(Vec<(u64, Vec<usize>)>);

impl TrainObserver for Revivals {
    fn on_revival(&mut self, step: u64, revived: &[usize]) {
        self.0.push((step, revived.to_vec()));
    }
}

/// --revive-dead: a learning rate high enough to kill units at once gets
/// them revived at the next interval, and a run resumed at that interval
/// repeats the same revival, so it still equals the uninterrupted run.
#[test]
fn dead_units_are_revived_and_resume_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = config(30, 15);
    full.lr = 1e-2;
    full.revive_dead = true;
    // The weight average's copies of revived units restart with them.
    full.ema_decay = Some(0.9);
    let mut seen = Revivals(Vec::new());
    train(
        &full,
        &dir.path().join("whole.safetensors"),
        false,
        &mut seen,
    )
    .unwrap();
    assert!(
        seen.0
            .iter()
            .any(|(step, n)| *step == 15 && n.iter().sum::<usize>() > 0),
        "{:?}",
        seen.0
    );
    let parts = dir.path().join("parts.safetensors");
    train(
        &TrainConfig {
            steps: 15,
            ..full.clone()
        },
        &parts,
        false,
        &mut Silent,
    )
    .unwrap();
    train(&full, &parts, true, &mut Silent).unwrap();
    let ck = |name: &str| checkpoint_tensors(&dir.path().join(name));
    let whole = ck("whole.ckpt.safetensors");
    assert_eq!(
        whole.iter().filter(|(n, _)| n.starts_with("ema.")).count(),
        6
    );
    assert!(whole == ck("parts.ckpt.safetensors"));
    // Architectures that are not plain conv-ReLU chains are refused.
    let espcn = TrainConfig {
        arch: "espcn".into(),
        arch_config: serde_json::json!({"scale": 3, "n1": 64, "n2": 32}),
        ..full
    };
    assert!(train(
        &espcn,
        &dir.path().join("e.safetensors"),
        false,
        &mut Silent
    )
    .is_err());
}

/// --ema: validation scores, and the best weights keep, the average of the
/// weights, not the last step's; a run may switch it on when resumed.
#[test]
fn weight_average_is_what_validation_keeps() {
    let dir = tempfile::tempdir().unwrap();
    // One validation, at the end, decides the best weights.
    let mut cfg = config(20, 20);
    cfg.ema_decay = Some(0.8);
    let out = dir.path().join("avg.safetensors");
    train(&cfg, &out, false, &mut Silent).unwrap();
    let tensors = checkpoint_tensors(&dir.path().join("avg.ckpt.safetensors"));
    let best = Model::load(&out).unwrap();
    let mut compared = 0;
    for id in best.params.ids() {
        let name = best.params.name(id);
        let kept: Vec<u8> = best
            .params
            .get(id)
            .data()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let find = |n: &str| &tensors.iter().find(|(t, _)| t == n).unwrap().1;
        assert_eq!(&kept, find(&format!("ema.{name}")), "{name}");
        assert_ne!(
            &kept,
            find(name),
            "{name}: the average equals the last weights"
        );
        compared += 1;
    }
    assert_eq!(compared, 6);

    // Switched on at a resume: the checkpoint gains the average.
    let plain = dir.path().join("plain.safetensors");
    let mut first = config(20, 10);
    first.steps = 10;
    train(&first, &plain, false, &mut Silent).unwrap();
    let averages = || {
        checkpoint_tensors(&dir.path().join("plain.ckpt.safetensors"))
            .iter()
            .filter(|(n, _)| n.starts_with("ema."))
            .count()
    };
    assert_eq!(averages(), 0);
    train(
        &TrainConfig {
            ema_decay: Some(0.8),
            ..config(20, 10)
        },
        &plain,
        true,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(averages(), 6);
    // A decay of 1 would never move: refused.
    cfg.ema_decay = Some(1.0);
    assert!(train(&cfg, &dir.path().join("x.safetensors"), false, &mut Silent).is_err());
}

#[test]
fn run_killed_with_sigkill_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.safetensors");
    let ckpt = dir.path().join("k.ckpt.safetensors");
    let args = |steps: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_srkit"));
        c.args([
            "-j",
            "1",
            "train",
            "--variant",
            "915",
            "--scale",
            "3",
            "--seed",
            "5",
        ])
        .arg("--train")
        .arg(data("T91"))
        .arg("--val")
        .arg(data("Set5"))
        .arg("--out")
        .arg(&out)
        .args(["--steps", steps, "--val-every", "10"]);
        c
    };
    let mut child = args("100000").spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("k.log.csv")).unwrap();
    let done: u64 = log
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(done >= 10 && done % 10 == 0);
    let listing = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    // A kill mid-write can leave only a temporary file of the run's own
    // files (hidden, named after its destination), never a partial file.
    for name in listing() {
        assert!(
            name.starts_with("k.") || name.starts_with(".k."),
            "stray file {name}"
        );
    }
    // Whether or not this kill landed mid-write, make sure resume meets one.
    std::fs::write(
        dir.path().join(".k.ckpt.safetensors.srkit-Ab12Cd.tmp"),
        b"half",
    )
    .unwrap();
    let target = (done + 20).to_string();
    let o = args(&target).arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The resumed run clears any the kill left.
    for name in listing() {
        assert!(name.starts_with("k."), "stray file {name} after resume");
    }
    let log = std::fs::read_to_string(dir.path().join("k.log.csv")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=(done + 20) / 10).map(|k| k * 10).collect();
    assert_eq!(steps, expected, "log rows lost or repeated");
}

#[test]
fn same_seed_gives_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    train(&config(20, 20), &a, false, &mut Silent).unwrap();
    train(&config(20, 20), &b, false, &mut Silent).unwrap();
    assert_eq!(weights(&a), weights(&b));
}

#[test]
fn downscale_augmentation_adds_each_image_at_each_factor() {
    use srkit::models::{ColorSpace, NetworkIo};
    use srkit::train::data::prepare_images;
    let io = NetworkIo {
        color: ColorSpace::Y,
        upscale: None,
        shrink: 8,
        context: 0,
        exact_tiling: true,
        multiple: 1,
    };
    let folders = [data("Set5")];
    let plain = prepare_images(&folders, 3, &io, &[]).unwrap();
    let augmented = prepare_images(&folders, 3, &io, &[0.9, 0.6]).unwrap();
    assert_eq!(plain.len(), 5);
    assert_eq!(augmented.len(), 15);
    let files = srkit::eval::Dataset::from_dir(&folders[0]).unwrap().images;
    for (k, im) in plain.iter().enumerate() {
        // Each image, then its copies in the order of the factors.
        let copies = &augmented[3 * k..3 * k + 3];
        assert_eq!(copies[0].target, im.target);
        assert_eq!(copies[0].input, im.input);
        let hr = srkit::io::read_image(&files[k], &Default::default()).unwrap();
        for (copy, factor) in copies[1..].iter().zip([0.9, 0.6]) {
            // MATLAB's output size, ceil(side * factor), cut to a multiple
            // of the scale; the original's sides are cut the same way.
            let side = |n: usize| ((n as f64 * factor).ceil() as usize) / 3 * 3;
            assert_eq!(
                (copy.width, copy.height),
                (side(hr.width()), side(hr.height()))
            );
            // A smaller copy of the same scene: its mean brightness stays
            // within a few grey levels of the original's.
            let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
            assert!((mean(&copy.target) - mean(&im.target)).abs() < 0.02);
        }
    }
    for bad in [0.0, 1.0, 1.5, f64::NAN] {
        let err = prepare_images(&folders, 3, &io, &[0.8, bad]).unwrap_err();
        assert!(err.to_string().contains("downscale-aug"), "{err}");
    }
    // The model file's training record names the augmentation.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("aug.safetensors");
    let mut augmented_run = config(4, 4);
    augmented_run.downscale_aug = vec![0.7];
    train(&augmented_run, &out, false, &mut Silent).unwrap();
    let record = Model::load(&out).unwrap().meta.training;
    assert_eq!(record.downscale_aug, vec![0.7]);
    assert_eq!(record.steps, 4);
}
