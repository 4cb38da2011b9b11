//! Times `srkit::resample::resize` on the README's two cases (median of N
//! runs, 1 thread) for profiling: `cargo run --release --example
//! time_resize -- [up|down] [runs] [f32|u8] [side]` (`u8`: `resize_u8` on
//! the same samples as bytes; `side`: the larger image's side instead of
//! 2048, a multiple of 4, e.g. to see what a power-of-two row stride costs).

#[path = "../src/allocator.rs"]
mod allocator;

use srkit::resample::{resize, resize_u8, PlanarU8, ResizeOptions, ResizeTarget};
use srkit::{BitDepth, Image};
use std::time::Instant;

fn main() {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let up = args.get(1).map_or(true, |a| a == "up");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let side: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let (sw, sh, dw, dh) = if up {
        (side / 4, side / 4, side, side)
    } else {
        (side, side, side / 4, side / 4)
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<f32> = (0..sw * sh * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let g = ((i % sw) * 255 / sw + (i / sw % sh) * 127 / sh) % 256;
            ((g as u64 * 3 + (state & 63)) / 4).min(255) as f32 / 255.0
        })
        .collect();
    let bytes = PlanarU8 {
        width: sw,
        height: sh,
        channels: 3,
        data: data.iter().map(|&v| (v * 255.0).round() as u8).collect(),
    };
    let u8_path = args.get(3).is_some_and(|a| a == "u8");
    let img = Image::from_planar(sw, sh, 3, BitDepth::U8, data).expect("image");
    let target = ResizeTarget::Size {
        width: dw,
        height: dh,
    };
    let opts = ResizeOptions::default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut times = Vec::new();
    pool.install(|| {
        for _ in 0..runs {
            let t = Instant::now();
            if u8_path {
                std::hint::black_box(resize_u8(&bytes, target, &opts).expect("resize"));
            } else {
                std::hint::black_box(resize(&img, target, &opts).expect("resize"));
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    });
    times.sort_by(f64::total_cmp);
    println!(
        "{} median {:.2} ms (min {:.2})",
        if up { "up" } else { "down" },
        times[runs / 2],
        times[0]
    );
}
