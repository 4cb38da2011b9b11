//! Resize throughput: srkit's MATLAB-exact `resize` against
//! `fast_image_resize` 5 (convolution, Catmull-Rom, U8x3) and
//! `image::imageops::resize` (Catmull-Rom), on deterministic synthetic
//! 8-bit RGB images.
//!
//! Catmull-Rom is the cubic with a = -0.5, i.e. MATLAB's `'bicubic'`; all
//! three stretch the kernel when downscaling (antialiasing).
//!
//! What is timed:
//! * `srkit_1t` / `srkit_2t`: `srkit::resample::resize` on a planar f32
//!   `Image` (srkit's in-memory format), in a 1- or 2-thread rayon pool.
//! * `srkit_1t_u8io`: the same plus converting interleaved RGB8 into a
//!   planar `Image` and the result back to interleaved RGB8 — the fair
//!   like-for-like with the two peers, which work on interleaved u8.
//! * `srkit_bytes_1t` / `srkit_bytes_2t`: `srkit::resample::resize_u8` on
//!   the three planes as bytes (same result as `resize`, sample for
//!   sample), in a 1- or 2-thread pool.
//! * `fir_planes_1t`: `fast_image_resize` on the same three byte planes
//!   (`U8`), one after another: the like-for-like of `srkit_bytes_1t`.
//! * `fir_1t`: `fast_image_resize` (no rayon feature: single-threaded),
//!   best CPU extension detected at run time, destination preallocated.
//! * `image_1t`: `image::imageops::resize` (single-threaded).
//!
//! srkit runs with the binary's allocator (`src/allocator.rs`), as
//! `srkit resize` does.
//!
//! Run: `cargo bench --bench resize -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

#[path = "../src/allocator.rs"]
mod allocator;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fast_image_resize as fir;
use srkit::resample::{resize, resize_u8, PlanarU8, ResizeOptions, ResizeTarget};
use srkit::{BitDepth, Image};

/// Deterministic RGB8 test pattern: smooth gradients plus xorshift noise.
fn synthetic_rgb8(w: usize, h: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let g = (x * 255 / w + y * 127 / h + c * 40) % 256;
                let v = (g as u64 * 3 + (state & 63)) / 4;
                out.push(v.min(255) as u8);
            }
        }
    }
    out
}

fn rgb8_to_image(buf: &[u8], w: usize, h: usize) -> Image {
    let n = w * h;
    let mut data = vec![0.0f32; n * 3];
    let (r, rest) = data.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    for (i, px) in buf.chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) / 255.0;
        g[i] = f32::from(px[1]) / 255.0;
        b[i] = f32::from(px[2]) / 255.0;
    }
    Image::from_planar(w, h, 3, BitDepth::U8, data).expect("valid image")
}

fn image_to_rgb8(img: &Image) -> Vec<u8> {
    let n = img.pixel_count();
    let d = img.data();
    let mut out = vec![0u8; n * 3];
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            px[c] = (d[c * n + i] * 255.0).round() as u8;
        }
    }
    out
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn bench_case(c: &mut Criterion, name: &str, src: (usize, usize), dst: (usize, usize)) {
    let (sw, sh) = src;
    let (dw, dh) = dst;
    let rgb = synthetic_rgb8(sw, sh);
    let img = rgb8_to_image(&rgb, sw, sh);
    let target = ResizeTarget::Size {
        width: dw,
        height: dh,
    };
    let opts = ResizeOptions::default();
    let pool1 = pool(1);
    let pool2 = pool(2);

    let mut group = c.benchmark_group(name);
    group.sample_size(10);

    group.bench_function(BenchmarkId::new("srkit_1t", ""), |b| {
        pool1.install(|| b.iter(|| resize(black_box(&img), target, &opts).expect("resize")))
    });
    group.bench_function(BenchmarkId::new("srkit_2t", ""), |b| {
        pool2.install(|| b.iter(|| resize(black_box(&img), target, &opts).expect("resize")))
    });
    group.bench_function(BenchmarkId::new("srkit_1t_u8io", ""), |b| {
        pool1.install(|| {
            b.iter(|| {
                let im = rgb8_to_image(black_box(&rgb), sw, sh);
                let out = resize(&im, target, &opts).expect("resize");
                image_to_rgb8(&out)
            })
        })
    });

    let bytes = PlanarU8 {
        width: sw,
        height: sh,
        channels: 3,
        data: (0..3)
            .flat_map(|c| rgb.iter().skip(c).step_by(3).copied())
            .collect(),
    };
    group.bench_function(BenchmarkId::new("srkit_bytes_1t", ""), |b| {
        pool1.install(|| b.iter(|| resize_u8(black_box(&bytes), target, &opts).expect("resize")))
    });
    group.bench_function(BenchmarkId::new("srkit_bytes_2t", ""), |b| {
        pool2.install(|| b.iter(|| resize_u8(black_box(&bytes), target, &opts).expect("resize")))
    });

    let fir_planes: Vec<_> = bytes
        .data
        .chunks_exact(sw * sh)
        .map(|p| {
            fir::images::Image::from_vec_u8(sw as u32, sh as u32, p.to_vec(), fir::PixelType::U8)
                .expect("fir plane")
        })
        .collect();
    let mut fir_plane_dst: Vec<_> = (0..3)
        .map(|_| fir::images::Image::new(dw as u32, dh as u32, fir::PixelType::U8))
        .collect();

    let fir_src =
        fir::images::Image::from_vec_u8(sw as u32, sh as u32, rgb.clone(), fir::PixelType::U8x3)
            .expect("fir image");
    let mut fir_dst = fir::images::Image::new(dw as u32, dh as u32, fir::PixelType::U8x3);
    let fir_opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::CatmullRom));
    let mut resizer = fir::Resizer::new();
    group.bench_function(BenchmarkId::new("fir_1t", ""), |b| {
        b.iter(|| {
            resizer
                .resize(black_box(&fir_src), &mut fir_dst, &fir_opts)
                .expect("fir resize")
        })
    });

    group.bench_function(BenchmarkId::new("fir_planes_1t", ""), |b| {
        b.iter(|| {
            for (src, dst) in fir_planes.iter().zip(fir_plane_dst.iter_mut()) {
                resizer
                    .resize(black_box(src), dst, &fir_opts)
                    .expect("fir resize")
            }
        })
    });

    let buf = image::RgbImage::from_raw(sw as u32, sh as u32, rgb.clone()).expect("image buffer");
    group.bench_function(BenchmarkId::new("image_1t", ""), |b| {
        b.iter(|| {
            image::imageops::resize(
                black_box(&buf),
                dw as u32,
                dh as u32,
                image::imageops::FilterType::CatmullRom,
            )
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    // The binary's allocator, so that srkit is timed as `srkit resize` runs.
    allocator::keep_freed_memory();
    bench_case(c, "upscale_x4_512_to_2048_rgb8", (512, 512), (2048, 2048));
    bench_case(c, "downscale_x4_2048_to_512_rgb8", (2048, 2048), (512, 512));
}

criterion_group!(resize_benches, benches);
criterion_main!(resize_benches);
