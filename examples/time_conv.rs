//! Runs one convolution kernel in a loop, for profilers (`perf record`,
//! `valgrind --tool=callgrind`): `benches/nn.rs` times the same shapes
//! side by side but runs many cases in one process.
//!
//! Usage: time_conv OP N CIN COUT H W K PAD RUNS
//! (OP: `fwd`, `dw` or `dw-gemm`: forward, weight gradient, weight
//! gradient without Winograd). One thread. Prints the median wall time.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srkit::nn::{Backend, Conv2dConfig, Tensor, CPU};

#[path = "../src/allocator.rs"]
mod allocator;

fn main() -> srkit::Result<()> {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 10 {
        eprintln!("usage: time_conv fwd|dw|dw-gemm N CIN COUT H W K PAD RUNS");
        std::process::exit(2);
    }
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (n, cin, cout, h, w, k, pad, runs) = (
        num(2),
        num(3),
        num(4),
        num(5),
        num(6),
        num(7),
        num(8),
        num(9),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Tensor::uniform(&[n, cin, h, w], -1.0, 1.0, &mut rng);
    let wt = Tensor::uniform(&[cout, cin, k, k], -0.05, 0.05, &mut rng);
    let (oh, ow) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    let dy = Tensor::uniform(&[n, cout, oh, ow], -1.0, 1.0, &mut rng);
    let cfg = Conv2dConfig {
        padding: pad,
        ..Default::default()
    };
    let ws = [cout, cin, k, k];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let mut times: Vec<f64> = pool.install(|| {
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = match args[1].as_str() {
                    "fwd" => CPU.conv2d(&x, &wt, None, cfg),
                    "dw" => CPU.conv2d_backward_weight(&x, &dy, &ws, cfg),
                    "dw-gemm" => CPU.conv2d_backward_weight_gemm(&x, &dy, &ws, cfg),
                    op => panic!("unknown op {op}"),
                };
                drop(out.expect("conv"));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    });
    times.sort_by(f64::total_cmp);
    println!("median {:.3} ms over {runs} runs", times[times.len() / 2]);
    Ok(())
}
