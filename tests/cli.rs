//! The `srkit` binary end to end: MATLAB-exact `degrade`, and every kind of
//! bad input ending in a one-line error, a non-zero exit and no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn srkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srkit"))
        .args(args)
        .output()
        .expect("run srkit")
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts failure with a one-line message mentioning `needle`, and that
/// nothing was written at `out`.
fn assert_fails(out: &Output, needle: &str, written: Option<&Path>) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr {err:?} lacks {needle:?}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    if let Some(p) = written {
        assert!(!p.exists(), "{} was written", p.display());
    }
}

fn small_png(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 13 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    let p = dir.join(name);
    img.save(&p).unwrap();
    p
}

#[test]
fn degrade_bi_reproduces_matlab_set5_lr_images() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["baby", "bird", "butterfly", "head", "woman"];
    for scale in [2, 3, 4] {
        for (i, name) in names.iter().enumerate() {
            let hr = data(&format!("Set5/{name}.png"));
            let out = dir.path().join(format!("{name}_x{scale}.png"));
            let o = srkit(&[
                "degrade",
                s(&hr),
                "-o",
                s(&out),
                "--scale",
                &scale.to_string(),
                "--kind",
                "bi",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let ours = image::open(&out).unwrap().to_rgb8();
            let matlab = image::open(data(&format!(
                "reference/Set5_LR_MATLAB/img_00{}_SRF_{scale}_LR.png",
                i + 1
            )))
            .unwrap()
            .to_rgb8();
            assert_eq!(ours.dimensions(), matlab.dimensions(), "{name} x{scale}");
            let differing = ours
                .as_raw()
                .iter()
                .zip(matlab.as_raw())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(differing, 0, "{name} x{scale}: {differing} samples differ");
        }
    }
}

#[test]
fn upscale_resize_and_metrics_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_png(dir.path(), "in.png", 20, 12);
    let up = dir.path().join("up.png");
    let o = srkit(&["upscale", s(&input), "-o", s(&up), "--scale", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::image_dimensions(&up).unwrap(), (60, 36));

    let down = dir.path().join("down.jpg");
    let o = srkit(&["resize", s(&up), "-o", s(&down), "--size", "20x12"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::image_dimensions(&down).unwrap(), (20, 12));

    let o = srkit(&["metrics", s(&input), s(&input), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["psnr"].is_null(),
        "identical images: PSNR is +inf -> null"
    );
    assert!((v["ssim"].as_f64().unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn eval_prints_table_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = srkit(&[
        "eval",
        "--method",
        "bicubic",
        "--scale",
        "2,4",
        "--dataset",
        s(&data("Set5")),
        "--json",
        s(&json),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("Set5") && table.contains("x2") && table.contains("x4"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["method"], "bicubic");
    assert_eq!(results[0]["dataset"], "Set5");
    assert_eq!(results[0]["scale"], 2);
    assert_eq!(results[0]["images"].as_array().unwrap().len(), 5);
    assert_eq!(results[0]["images"][0]["name"], "baby");
    let psnr = results[0]["psnr"].as_f64().unwrap();
    assert!((psnr - 33.66).abs() < 0.02, "Set5 x2 bicubic {psnr}");
}

#[test]
fn bad_inputs_fail_with_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = small_png(d, "good.png", 16, 16);
    let out = d.join("out.png");

    let empty = d.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(
        &srkit(&["upscale", s(&empty), "-o", s(&out)]),
        "empty.png",
        Some(&out),
    );

    let text = d.join("notes.png");
    std::fs::write(&text, b"this is not an image\n").unwrap();
    assert_fails(
        &srkit(&["upscale", s(&text), "-o", s(&out)]),
        "decode",
        Some(&out),
    );

    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &srkit(&["upscale", s(&truncated), "-o", s(&out)]),
        "truncated.png",
        Some(&out),
    );

    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let corrupt_path = d.join("corrupt.png");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    assert_fails(
        &srkit(&["upscale", s(&corrupt_path), "-o", s(&out)]),
        "corrupt.png",
        Some(&out),
    );

    let missing = d.join("missing.png");
    assert_fails(
        &srkit(&["upscale", s(&missing), "-o", s(&out)]),
        "missing.png",
        Some(&out),
    );

    // Scales: zero, negative, NaN, absurd.
    for bad in ["0", "-2", "NaN", "1e9", "inf"] {
        let o = srkit(&["resize", s(&good), "-o", s(&out), "--scale", bad]);
        assert_fails(&o, "scale", Some(&out));
        let o = srkit(&["upscale", s(&good), "-o", s(&out), "--scale", bad]);
        assert_fails(&o, "scale", Some(&out));
    }

    // An output above the pixel limit is refused before any work.
    let o = srkit(&[
        "upscale",
        s(&good),
        "-o",
        s(&out),
        "--scale",
        "16",
        "--max-pixels",
        "1000",
    ]);
    assert_fails(&o, "limit", Some(&out));
    let o = srkit(&["resize", s(&good), "-o", s(&out), "--size", "100000x100000"]);
    assert_fails(&o, "limit", Some(&out));

    // The output is a directory (upscale puts its result in one instead).
    assert_fails(
        &srkit(&["resize", s(&good), "-o", s(d), "--scale", "2"]),
        "directory",
        None,
    );

    // Overwriting the input needs --force.
    let before = std::fs::read(&good).unwrap();
    assert_fails(
        &srkit(&["upscale", s(&good), "-o", s(&good)]),
        "--force",
        None,
    );
    assert_eq!(std::fs::read(&good).unwrap(), before);

    // metrics: size mismatch.
    let other = small_png(d, "other.png", 16, 15);
    assert_fails(&srkit(&["metrics", s(&good), s(&other)]), "mismatch", None);

    // No stray temporary files were left behind.
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "corrupt.png",
            "empty.png",
            "good.png",
            "notes.png",
            "other.png",
            "truncated.png"
        ]
    );
}

/// Outputs that would clobber inputs or pollute data folders, and settings
/// that would hang or exhaust the machine, are refused up front, before any
/// work; weights that are not finite are refused on load.
#[test]
fn risky_outputs_and_settings_are_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data_dir = d.join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let img = small_png(&data_dir, "a.png", 24, 24);
    let before = std::fs::read(&img).unwrap();

    // eval --json must be a .json file in an existing folder.
    let ds = s(&data_dir);
    assert_fails(
        &srkit(&["eval", "-d", ds, "-s", "2", "--json", s(&img)]),
        "must end in .json",
        None,
    );
    assert_eq!(std::fs::read(&img).unwrap(), before);
    let nowhere = d.join("nowhere/r.json");
    assert_fails(
        &srkit(&["eval", "-d", ds, "-s", "2", "--json", s(&nowhere)]),
        "does not exist",
        None,
    );
    assert_fails(
        &srkit(&[
            "eval", "-d", ds, "-s", "3", "--model", "srcnn-x3", "--record",
        ]),
        "model files",
        None,
    );

    // train --out must be a .safetensors file outside the data folders.
    let train = |out: &Path| {
        srkit(&[
            "train",
            "--train",
            ds,
            "--val",
            ds,
            "--scale",
            "2",
            "--steps",
            "1",
            "--out",
            s(out),
        ])
    };
    assert_fails(&train(&img), "must end in .safetensors", None);
    assert_eq!(std::fs::read(&img).unwrap(), before);
    let inside = data_dir.join("m.safetensors");
    assert_fails(&train(&inside), "inside the data folder", Some(&inside));

    // Tiles too small to be worth their overlap, absurd thread counts.
    let out = d.join("o.png");
    assert_fails(
        &srkit(&[
            "upscale",
            s(&img),
            "-o",
            s(&out),
            "--model",
            "srcnn-x2",
            "--tile",
            "1",
        ]),
        "below 64",
        Some(&out),
    );
    assert_fails(
        &srkit(&[
            "-j",
            "100000",
            "resize",
            s(&img),
            "-o",
            s(&out),
            "--scale",
            "2",
        ]),
        "threads",
        Some(&out),
    );

    // A 16-bit JPEG does not exist.
    let jpg = d.join("o.jpg");
    assert_fails(
        &srkit(&[
            "resize",
            s(&img),
            "-o",
            s(&jpg),
            "--scale",
            "2",
            "--depth",
            "16",
        ]),
        "needs a .png",
        Some(&jpg),
    );

    // --arch belongs to a PyTorch --model, not to an interpolation.
    let refused = srkit(&[
        "upscale",
        s(&img),
        "-o",
        s(&out),
        "--method",
        "bicubic",
        "--arch",
        "rdn",
    ]);
    assert!(!refused.status.success() && !out.exists());
    // A .pth that is no checkpoint says so, not that it is no safetensors.
    let junk = d.join("junk.pth");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert_fails(
        &srkit(&["upscale", s(&img), "-o", s(&out), "--model", s(&junk)]),
        "not a PyTorch checkpoint",
        Some(&out),
    );
    // A batch in which every image fails leaves no new, empty folder.
    let (broken, broken2) = (d.join("broken.png"), d.join("broken2.png"));
    std::fs::write(&broken, b"not a png").unwrap();
    std::fs::write(&broken2, b"not a png either").unwrap();
    let new_folder = d.join("new_folder");
    let all_failed = srkit(&[
        "upscale",
        s(&broken),
        s(&broken2),
        "-o",
        &format!("{}/", new_folder.display()),
        "--method",
        "bicubic",
    ]);
    let err = String::from_utf8_lossy(&all_failed.stderr);
    assert!(err.contains("2 of 2 images failed"), "{err}");
    assert!(!new_folder.exists(), "an empty output folder was left");

    // A model file with a NaN weight.
    let config = serde_json::to_value(srkit::models::srcnn::SrcnnConfig::default()).unwrap();
    let mut model = srkit::models::Model::new("srcnn", config, vec![2], 1).unwrap();
    let id = model.params.ids().next().unwrap();
    model.params.get_mut(id).data_mut()[0] = f32::NAN;
    let nan_model = d.join("nan.safetensors");
    model.save(&nan_model).unwrap();
    assert_fails(
        &srkit(&["upscale", s(&img), "-o", s(&out), "--model", s(&nan_model)]),
        "non-finite",
        Some(&out),
    );
}

#[test]
fn every_subcommand_has_help() {
    for cmd in [
        "upscale", "resize", "degrade", "metrics", "eval", "train", "models", "convert",
    ] {
        let o = srkit(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Usage:") && text.len() > 300, "{cmd}: {text}");
    }
}

/// Several inputs or a folder go into an output folder under their own
/// names; a bad file is reported by name, the others are still written, and
/// the exit status is a failure.
#[test]
fn upscale_batches_folders_and_reports_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = d.join("in");
    std::fs::create_dir(&inputs).unwrap();
    small_png(&inputs, "a.png", 12, 10);
    small_png(&inputs, "b.png", 7, 9);
    image::RgbImage::from_pixel(5, 6, image::Rgb([9, 8, 7]))
        .save(inputs.join("c.jpg"))
        .unwrap();
    std::fs::write(inputs.join("notes.txt"), "not an image").unwrap();
    let extra = small_png(d, "extra.bmp", 4, 4);
    let out = d.join("out");
    let bicubic = |inputs: &[&Path], out: &Path, scale: &str| {
        let mut args = vec!["upscale"];
        args.extend(inputs.iter().map(|p| s(p)));
        args.extend(["-o", s(out), "-m", "bicubic", "--scale", scale]);
        srkit(&args)
    };
    let o = bicubic(&[&inputs, &extra], &out, "3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let size = |name: &str| image::image_dimensions(out.join(name)).unwrap();
    assert_eq!(size("a.png"), (36, 30));
    assert_eq!(size("b.png"), (21, 27));
    assert_eq!(size("c.jpg"), (15, 18));
    assert_eq!(size("extra.png"), (12, 12));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);

    // One input file into an existing folder keeps its name.
    let o = bicubic(&[&extra], &out, "2");
    assert!(o.status.success());
    assert_eq!(size("extra.png"), (8, 8));
    // So does one into a folder yet to be made, named with a final slash.
    let fresh = format!("{}/", d.join("fresh").display());
    let o = bicubic(&[&extra], Path::new(&fresh), "2");
    assert!(o.status.success());
    assert!(d.join("fresh/extra.png").exists());

    // A corrupt image: named in the error, the good ones still written.
    std::fs::write(inputs.join("broken.png"), b"\x89PNG garbage").unwrap();
    let out2 = d.join("out2");
    let o = bicubic(&[&inputs], &out2, "4");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("broken.png") && err.contains("1 of 4 images failed"),
        "{err}"
    );
    assert!(out2.join("a.png").exists() && !out2.join("broken.png").exists());

    // Refused before any work: an output file for several inputs, two
    // inputs with one output name, an empty folder.
    let a = inputs.join("a.png");
    assert_fails(&bicubic(&[&a, &extra], &a, "2"), "must be a folder", None);
    let o3 = d.join("o3");
    assert_fails(&bicubic(&[&a, &a], &o3, "2"), "both be written", Some(&o3));
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = srkit(&["upscale", s(&empty), "-o", s(&d.join("o4"))]);
    assert_fails(&o, "no images", Some(&d.join("o4")));
}

#[test]
fn builtin_models_upscale_list_and_share_the_eval_table() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_png(dir.path(), "in.png", 24, 20);
    let out = dir.path().join("out.png");
    // No --model: the built-in model for the scale.
    let o = srkit(&["upscale", s(&input), "-o", s(&out), "--scale", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::image_dimensions(&out).unwrap(), (48, 40));
    let o = srkit(&[
        "upscale",
        s(&input),
        "-o",
        s(&out),
        "--model",
        "srcnn-x3",
        "--scale",
        "2",
    ]);
    assert_fails(&o, "x2", None);
    let o = srkit(&["upscale", s(&input), "-o", s(&out), "--model", "nosuch-x9"]);
    assert_fails(&o, "no built-in model", None);

    let o = srkit(&["models"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for name in ["srcnn-x2", "srcnn-x3", "srcnn-x4"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("57281"));

    let o = srkit(&[
        "eval",
        "--method",
        "bicubic",
        "--model",
        "srcnn-x3",
        "--scale",
        "3",
        "--dataset",
        s(&data("Set5")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    let row = |m: &str| -> f64 {
        let line = table.lines().find(|l| l.contains(m)).unwrap();
        line.split('|')
            .nth(3)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(row("srcnn-x3") > row("bicubic") + 0.5, "{table}");
}

#[test]
fn pytorch_checkpoints_upscale_and_convert_without_python() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_png(dir.path(), "in.png", 20, 16);
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/weights");
    let fsrcnn = weights.join("fsrcnn-pytorch/fsrcnn_x3.pth");
    let anime = weights.join("realesr-animevideov3/realesr-animevideov3.pth");

    // The model's own scale is the default: x3 from FSRCNN's file name,
    // x4 from SRVGGNetCompact's last layer.
    let out = dir.path().join("f.png");
    let o = srkit(&["upscale", s(&input), "-o", s(&out), "--model", s(&fsrcnn)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::image_dimensions(&out).unwrap(), (60, 48));
    let out = dir.path().join("a.png");
    let o = srkit(&["upscale", s(&input), "-o", s(&out), "--model", s(&anime)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::image_dimensions(&out).unwrap(), (80, 64));
    let o = srkit(&[
        "upscale",
        s(&input),
        "-o",
        s(&out),
        "--model",
        s(&anime),
        "--scale",
        "2",
    ]);
    assert_fails(&o, "x2", None);

    // convert writes an srkit model that gives the same image.
    let converted = dir.path().join("anime.safetensors");
    let o = srkit(&["convert", s(&anime), "-o", s(&converted)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out2 = dir.path().join("a2.png");
    let o = srkit(&[
        "upscale",
        s(&input),
        "-o",
        s(&out2),
        "--model",
        s(&converted),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
    let o = srkit(&["convert", s(&anime), "-o", s(&converted)]);
    assert_fails(&o, "exists", None);

    // A checkpoint that would run code is refused, in one line.
    let evil =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pth/malicious_os_system.pth");
    let bad_out = dir.path().join("evil.safetensors");
    let o = srkit(&["convert", s(&evil), "-o", s(&bad_out)]);
    assert_fails(&o, "refusing to call", Some(&bad_out));
    let o = srkit(&["upscale", s(&input), "-o", s(&out), "--model", s(&evil)]);
    assert_fails(&o, "refusing to call", None);
}

/// A run killed by a signal while writing its output leaves no temporary
/// file behind, and exits with 130.
#[cfg(unix)]
#[test]
fn a_signal_during_a_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = small_png(d, "in.png", 40, 40);
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("big.png");
    // A 36-megapixel PNG takes seconds to encode on one thread.
    let mut child = Command::new(env!("CARGO_BIN_EXE_srkit"))
        .args([
            "-j",
            "1",
            "resize",
            s(&img),
            "-o",
            s(&out),
            "--size",
            "6000x6000",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let temp_files = || {
        std::fs::read_dir(&out_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    };
    let start = std::time::Instant::now();
    while temp_files() == 0 && start.elapsed().as_secs() < 60 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let writing = child.try_wait().unwrap().is_none() && temp_files() > 0;
    if writing {
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    let status = child.wait().unwrap();
    if writing {
        assert_eq!(status.code(), Some(130));
        assert!(
            !out.exists(),
            "a half-written output was renamed into place"
        );
    } else {
        eprintln!("the write finished before it could be interrupted");
    }
    assert_eq!(temp_files(), 0, "a temporary file was left behind");
}
