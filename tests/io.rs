//! Integration tests for `srkit::io`: round trips through every layout and
//! depth, reading every supported container, and every error path (with no
//! panic and no trace left on disk).

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat};
use srkit::io::{decode_image, read_image, write_atomic, write_image, ReadOptions, WriteOptions};
use srkit::{BitDepth, Error, Image};

/// A deterministic test image whose samples lie exactly on `depth`'s grid
/// (every plane different, covering 0 and the maximum).
fn grid_image(w: usize, h: usize, channels: usize, depth: BitDepth) -> Image {
    let max = depth.max_value().unwrap_or(65535.0);
    let n = w * h * channels;
    let data = (0..n)
        .map(|i| {
            let k = (i as f64 * 7919.0 + (i / (w * h)) as f64 * 104_729.0) % (max + 1.0);
            let k = if i == 0 {
                0.0
            } else if i == 1 {
                max
            } else {
                k
            };
            (k / max) as f32
        })
        .collect();
    Image::from_planar(w, h, channels, depth, data).unwrap()
}

/// A smooth image (JPEG-friendly) in `[0, 1]`.
fn smooth_image(w: usize, h: usize, channels: usize) -> Image {
    let mut data = Vec::with_capacity(w * h * channels);
    for c in 0..channels {
        for y in 0..h {
            for x in 0..w {
                let v = 0.5
                    + 0.4
                        * ((x as f32 / w as f32) * 3.0 + c as f32).sin()
                        * ((y as f32 / h as f32) * 2.0).cos();
                data.push((v * 255.0).round() / 255.0);
            }
        }
    }
    Image::from_planar(w, h, channels, BitDepth::U8, data).unwrap()
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn save(dir: &Path, name: &str, img: &DynamicImage, format: ImageFormat) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

/// The error's message is one line and names `path`.
fn assert_message_names(err: &Error, path: &Path) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg:?}");
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg:?} does not name {}",
        path.display()
    );
}

#[test]
fn png_round_trip_is_exact_for_every_layout_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    for depth in [BitDepth::U8, BitDepth::U16] {
        for channels in 1..=4 {
            let img = grid_image(13, 7, channels, depth);
            let path = dir.path().join(format!("rt_{channels}_{depth:?}.png"));
            write_image(&img, &path, &WriteOptions::default()).unwrap();
            let back = read_image(&path, &ReadOptions::default()).unwrap();
            assert_eq!(back, img, "{channels} channels, {depth:?}");
        }
    }
}

#[test]
fn sixteen_bit_survives_and_is_not_reduced() {
    let dir = tempfile::tempdir().unwrap();
    // values that differ only below 8-bit precision
    let data: Vec<f32> = (0..64).map(|i| (1000 + i) as f32 / 65535.0).collect();
    let img = Image::from_planar(8, 8, 1, BitDepth::U16, data).unwrap();
    let path = dir.path().join("deep.png");
    write_image(&img, &path, &WriteOptions::default()).unwrap();
    let decoded = image::open(&path).unwrap();
    assert!(matches!(decoded, DynamicImage::ImageLuma16(_)));
    let back = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(back.depth(), BitDepth::U16);
    assert_eq!(back, img);
}

#[test]
fn float_images_become_16_bit_png_and_depth_can_be_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![0.0, 0.25, 0.5, 1.0, -0.5, 1.5, 0.123_456, 0.999_999];
    let img = Image::from_planar(4, 2, 1, BitDepth::F32, data.clone()).unwrap();

    let path = dir.path().join("float.png");
    write_image(&img, &path, &WriteOptions::default()).unwrap();
    let back = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(back.depth(), BitDepth::U16);
    for (&got, &want) in back.data().iter().zip(&data) {
        let want = BitDepth::U16.quantize(f64::from(want));
        assert!((f64::from(got) - want).abs() < 1e-7, "{got} vs {want}");
    }

    let path8 = dir.path().join("float8.png");
    let opts = WriteOptions {
        depth: Some(BitDepth::U8),
        ..Default::default()
    };
    write_image(&img, &path8, &opts).unwrap();
    let back = read_image(&path8, &ReadOptions::default()).unwrap();
    assert_eq!(back.depth(), BitDepth::U8);
    let as_u8: Vec<u8> = back
        .data()
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    // 0.123456 * 255 = 31.48 -> 31; 0.999999 * 255 = 254.9997 -> 255
    assert_eq!(as_u8, vec![0, 64, 128, 255, 0, 255, 31, 255]);
}

#[test]
fn quantisation_rounds_half_away_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<f32> = [0.5, 1.5, 2.5, 253.51, 254.49]
        .iter()
        .map(|v| v / 255.0)
        .collect();
    let img = Image::from_planar(5, 1, 1, BitDepth::U8, data).unwrap();
    let path = dir.path().join("q.png");
    write_image(&img, &path, &WriteOptions::default()).unwrap();
    let raw = image::open(&path).unwrap().into_luma8().into_raw();
    assert_eq!(raw, vec![1, 2, 3, 254, 254]);
}

#[test]
fn jpeg_round_trip_has_small_error_and_drops_alpha() {
    let dir = tempfile::tempdir().unwrap();
    for channels in 1..=4 {
        let img = smooth_image(48, 40, channels);
        let path = dir.path().join(format!("j{channels}.JPG"));
        write_image(&img, &path, &WriteOptions::default()).unwrap();
        let back = read_image(&path, &ReadOptions::default()).unwrap();
        assert_eq!(back.depth(), BitDepth::U8);
        assert_eq!(back.channels(), img.color_channels(), "{channels} channels");
        assert_eq!((back.width(), back.height()), (48, 40));
        let colour = img.without_alpha();
        let max_err = back
            .data()
            .iter()
            .zip(colour.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 0.04, "{channels} channels: max error {max_err}");
    }
}

#[test]
fn jpeg_quality_changes_size_and_16_bit_is_written_as_8_bit() {
    let dir = tempfile::tempdir().unwrap();
    let img = grid_image(32, 32, 3, BitDepth::U16);
    let hi = dir.path().join("hi.jpeg");
    let lo = dir.path().join("lo.jpeg");
    write_image(&img, &hi, &WriteOptions::default()).unwrap();
    let opts = WriteOptions {
        jpeg_quality: 10,
        ..Default::default()
    };
    write_image(&img, &lo, &opts).unwrap();
    assert!(fs::metadata(&lo).unwrap().len() < fs::metadata(&hi).unwrap().len());
    assert_eq!(
        read_image(&hi, &ReadOptions::default()).unwrap().depth(),
        BitDepth::U8
    );
}

#[test]
fn reads_bmp_tiff_webp_and_guesses_format_from_content() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = ImageBuffer::from_fn(9, 5, |x, y| image::Rgb([x as u8 * 20, y as u8 * 40, 7]));
    let rgb = DynamicImage::ImageRgb8(rgb);
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(9, 5, |x, y| {
        image::Rgba([x as u8, y as u8, 200, (x * y) as u8])
    }));
    let gray16 = DynamicImage::ImageLuma16(ImageBuffer::from_fn(9, 5, |x, y| {
        image::Luma([(x * 7000 + y) as u16])
    }));
    let rgbf = DynamicImage::ImageRgb32F(ImageBuffer::from_fn(9, 5, |x, y| {
        image::Rgb([x as f32 / 8.0, y as f32 / 4.0, 1.25])
    }));

    let cases = [
        (
            save(dir.path(), "a.bmp", &rgb, ImageFormat::Bmp),
            &rgb,
            BitDepth::U8,
        ),
        (
            save(dir.path(), "a.webp", &rgba, ImageFormat::WebP),
            &rgba,
            BitDepth::U8,
        ),
        (
            save(dir.path(), "a.tif", &rgb, ImageFormat::Tiff),
            &rgb,
            BitDepth::U8,
        ),
        (
            save(dir.path(), "g.tiff", &gray16, ImageFormat::Tiff),
            &gray16,
            BitDepth::U16,
        ),
        (
            save(dir.path(), "f.tiff", &rgbf, ImageFormat::Tiff),
            &rgbf,
            BitDepth::F32,
        ),
        // PNG content behind a misleading extension
        (
            save(dir.path(), "png.jpg", &rgba, ImageFormat::Png),
            &rgba,
            BitDepth::U8,
        ),
        (
            save(dir.path(), "noext", &gray16, ImageFormat::Png),
            &gray16,
            BitDepth::U16,
        ),
    ];
    for (path, want, depth) in cases {
        let got = read_image(&path, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(got.depth(), depth, "{}", path.display());
        assert_eq!(
            got.channels(),
            usize::from(want.color().channel_count()),
            "{}",
            path.display()
        );
        let want_f = want.to_rgba32f();
        for y in 0..5 {
            for x in 0..9 {
                let p = want_f.get_pixel(x, y).0;
                let (x, y) = (x as usize, y as usize);
                let got_px: Vec<f32> = (0..got.channels()).map(|c| got.get(x, y, c)).collect();
                let want_px: Vec<f32> = match got.channels() {
                    1 => vec![p[0]],
                    3 => p[..3].to_vec(),
                    _ => p.to_vec(),
                };
                for (g, w) in got_px.iter().zip(&want_px) {
                    assert!((g - w).abs() < 1e-6, "{}: {g} vs {w}", path.display());
                }
            }
        }
    }
}

#[test]
fn decode_image_reads_bytes_and_gray_alpha() {
    let la = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(3, 2, |x, y| {
        image::LumaA([x as u8 * 100, y as u8 * 255])
    }));
    let mut bytes = Vec::new();
    la.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    let img = decode_image(&bytes, Path::new("mem.png"), &ReadOptions::default()).unwrap();
    assert_eq!(img.shape_string(), "3x2x2");
    assert!(img.has_alpha());
    assert_eq!(
        img.plane(0),
        &[
            0.0,
            100.0 / 255.0,
            200.0 / 255.0,
            0.0,
            100.0 / 255.0,
            200.0 / 255.0
        ]
    );
    assert_eq!(img.plane(1), &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

/// CRC-32 (IEEE), for patching PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG whose header claims `w x h` pixels.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let small = DynamicImage::ImageLuma8(ImageBuffer::new(4, 4));
    let mut bytes = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    // signature (8) + length (4) + "IHDR" (4) + width, height
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn pixel_limit_is_checked_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.png");
    write_image(
        &grid_image(20, 10, 3, BitDepth::U8),
        &path,
        &WriteOptions::default(),
    )
    .unwrap();
    let tight = ReadOptions { max_pixels: 199 };
    match read_image(&path, &tight) {
        Err(Error::TooLarge {
            width,
            height,
            pixels,
            limit,
            ..
        }) => assert_eq!((width, height, pixels, limit), (20, 10, 200, 199)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(read_image(&path, &ReadOptions { max_pixels: 200 }).is_ok());

    // A tiny file claiming 100000 x 100000 pixels: rejected without decoding.
    let bomb = dir.path().join("bomb.png");
    fs::write(&bomb, png_claiming(100_000, 100_000)).unwrap();
    match read_image(&bomb, &ReadOptions::default()) {
        Err(Error::TooLarge { pixels, .. }) => assert_eq!(pixels, 10_000_000_000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn missing_path_and_directory_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let err = read_image(&missing, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_message_names(&err, &missing);

    let err = read_image(dir.path(), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_message_names(&err, dir.path());
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn bad_contents_are_decode_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = smooth_image(64, 48, 3);
    let png = dir.path().join("good.png");
    let jpg = dir.path().join("good.jpg");
    write_image(&img, &png, &WriteOptions::default()).unwrap();
    write_image(&img, &jpg, &WriteOptions::default()).unwrap();
    let png_bytes = fs::read(&png).unwrap();
    let jpg_bytes = fs::read(&jpg).unwrap();

    let dynamic = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 48, |x, y| {
        image::Rgb([x as u8, y as u8, (x ^ y) as u8])
    }));
    let bmp_bytes = fs::read(save(dir.path(), "a.bmp", &dynamic, ImageFormat::Bmp)).unwrap();
    let webp_bytes = fs::read(save(dir.path(), "a.webp", &dynamic, ImageFormat::WebP)).unwrap();
    let tif_bytes = fs::read(save(dir.path(), "a.tif", &dynamic, ImageFormat::Tiff)).unwrap();

    let mut random = Vec::with_capacity(4096);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..4096 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        random.push(state as u8);
    }

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.png", vec![]),
        ("truncated.png", png_bytes[..png_bytes.len() / 2].to_vec()),
        ("header_only.png", png_bytes[..40].to_vec()),
        ("truncated.jpg", jpg_bytes[..jpg_bytes.len() / 2].to_vec()),
        ("header_only.jpg", jpg_bytes[..300].to_vec()),
        ("random.png", random),
        ("truncated.bmp", bmp_bytes[..bmp_bytes.len() / 2].to_vec()),
        (
            "truncated.webp",
            webp_bytes[..webp_bytes.len() / 2].to_vec(),
        ),
        ("truncated.tif", tif_bytes[..tif_bytes.len() / 2].to_vec()),
        ("notes.txt", b"this is a text file, not an image\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &bytes).unwrap();
        let result = read_image(&path, &ReadOptions::default());
        let err = match result {
            Err(e) => e,
            Ok(img) => panic!("{name}: decoded as {}", img.shape_string()),
        };
        assert!(matches!(err, Error::Decode { .. }), "{name}: {err:?}");
        assert_message_names(&err, &path);
    }
}

#[test]
fn recognised_but_unsupported_formats_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    // A minimal GIF header: recognised by its magic, but GIF is not enabled.
    let gif = dir.path().join("anim.gif");
    let mut bytes = b"GIF89a".to_vec();
    bytes.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0x3b]);
    fs::write(&gif, bytes).unwrap();
    let err = read_image(&gif, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert_message_names(&err, &gif);
}

#[test]
fn write_errors_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let img = grid_image(8, 8, 3, BitDepth::U8);
    let opts = WriteOptions::default();

    // Existing directory as output.
    let as_dir = dir.path().join("out.png");
    fs::create_dir(&as_dir).unwrap();
    let err = write_image(&img, &as_dir, &opts).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_message_names(&err, &as_dir);
    assert!(as_dir.is_dir() && listing(&as_dir).is_empty());

    // Missing parent folder.
    let orphan = dir.path().join("no/such/folder/out.png");
    let err = write_image(&img, &orphan, &opts).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_message_names(&err, &orphan);

    // Unsupported extension and invalid quality: checked before any I/O.
    let bmp = dir.path().join("out.bmp");
    let err = write_image(&img, &bmp, &opts).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert_message_names(&err, &bmp);
    for q in [0, 101] {
        let bad_q = WriteOptions {
            jpeg_quality: q,
            ..Default::default()
        };
        let err = write_image(&img, &dir.path().join("q.jpg"), &bad_q).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
    }

    // An encoder failure (JPEG is limited to 65535 pixels a side) over an
    // existing destination: the destination is untouched.
    let dest = dir.path().join("keep.jpg");
    fs::write(&dest, b"previous contents").unwrap();
    let wide = Image::zeros(70_000, 1, 1, BitDepth::U8).unwrap();
    let err = write_image(&wide, &dest, &opts).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err:?}");
    assert_message_names(&err, &dest);
    assert_eq!(fs::read(&dest).unwrap(), b"previous contents");

    assert_eq!(listing(dir.path()), vec!["keep.jpg", "out.png"]);
}

#[test]
fn write_atomic_replaces_on_success_only() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("report.json");
    fs::write(&dest, b"old").unwrap();

    // A writer that fails half-way leaves the old file and no temp file.
    let err = write_atomic(&dest, |w| {
        w.write_all(b"partial")?;
        Err(std::io::Error::other("disk on fire"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(fs::read(&dest).unwrap(), b"old");
    assert_eq!(listing(dir.path()), vec!["report.json"]);

    // A writer that panics: same.
    let caught = std::panic::catch_unwind(|| {
        let _ = write_atomic(&dest, |w| {
            w.write_all(b"partial")?;
            panic!("writer bug");
        });
    });
    assert!(caught.is_err());
    assert_eq!(fs::read(&dest).unwrap(), b"old");
    assert_eq!(listing(dir.path()), vec!["report.json"]);

    // Success replaces the contents.
    write_atomic(&dest, |w| w.write_all(b"{\"new\": true}")).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"{\"new\": true}");
    assert_eq!(listing(dir.path()), vec!["report.json"]);
}

#[test]
fn stale_temp_files_of_one_destination_are_removed_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("run.ckpt.safetensors");
    // The name write_atomic really gives its temporary file, seen mid-write:
    // a SIGKILL at that moment would leave exactly this file behind.
    let mut seen = Vec::new();
    write_atomic(&dest, |w| {
        seen = listing(dir.path());
        w.write_all(b"x")
    })
    .unwrap();
    let temp: Vec<_> = seen
        .into_iter()
        .filter(|n| n != "run.ckpt.safetensors")
        .collect();
    assert_eq!(temp.len(), 1, "{temp:?}");
    assert!(
        temp[0].starts_with(".run.ckpt.safetensors.srkit-"),
        "{temp:?}"
    );
    fs::write(dir.path().join(&temp[0]), b"half").unwrap();
    // Files that must stay: the destination itself, another destination's
    // temporary file, and look-alikes that write_atomic would never name.
    for keep in [
        ".run.safetensors.srkit-abc123.tmp",
        ".run.ckpt.safetensors.srkit-abc1234.tmp",
        ".run.ckpt.safetensors.srkit-abc123.tmp.bak",
        "run.ckpt.safetensors.srkit-abc123.tmp",
    ] {
        fs::write(dir.path().join(keep), b"keep").unwrap();
    }
    assert_eq!(srkit::io::remove_stale_temp_files(&dest).unwrap(), 1);
    let left = listing(dir.path());
    assert!(!left.contains(&temp[0]), "{left:?}");
    assert_eq!(left.len(), 5, "{left:?}");
    // Nothing left to remove; a missing folder is not an error.
    assert_eq!(srkit::io::remove_stale_temp_files(&dest).unwrap(), 0);
    let gone = dir.path().join("no-such-folder").join("x.png");
    assert_eq!(srkit::io::remove_stale_temp_files(&gone).unwrap(), 0);
}

#[cfg(unix)]
#[test]
fn write_atomic_gives_ordinary_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("plain");
    fs::File::create(&reference).unwrap();
    let atomic = dir.path().join("atomic.csv");
    write_atomic(&atomic, |w| w.write_all(b"a,b\n")).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&atomic), mode(&reference));
}
