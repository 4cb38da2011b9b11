//! Benchmarks of the NN core, matched by `scripts/bench_torch.py` (and, for
//! inference, `scripts/bench_onnx.py`):
//!
//! - `srcnn_infer`: SRCNN 9-5-5 inference on a 512x512 Y plane at x3 (the
//!   bicubic-upscaled image; the network only): 528x528 edge-padded input
//!   (radius 8, as `srkit::infer` pads) -> 512x512 output,
//!   2*(1*64*81 + 64*32*25 + 32*1*25)*512*512 = 29.98 GFLOP per call;
//! - `conv3x3_64x64_256`: 3x3, 64 -> 64, padding 1 convolution forward on
//!   1x64x256x256 (2*64*64*9*256*256 = 4.83 GFLOP per call);
//! - `srcnn_train_step`: one SRCNN 9-5-5 (1 -> 64 -> 32 -> 1, valid
//!   convolutions, ReLU) training step on a batch of 16 33x33 patches:
//!   forward, MSE, backward, Adam update;
//! - `conv_winograd`: 3x3 stride-1 padding-1 convolutions of SR-network
//!   shapes and SRCNN's 5x5 64 -> 32 layer (forward, the input
//!   gradient's convolution, and a table of weight gradients), the default
//!   path (Winograd F(2x2, 3x3) / F(2x2, 5x5)) against
//!   `Cpu::conv2d_gemm` (the GEMM path), 1 thread, interleaved
//!   thread-CPU-time medians; `NN_WINOGRAD_SWEEP=1` adds the small shapes
//!   the dispatch thresholds in `src/nn/kernels/winograd.rs` come from;
//!   `NN_WEIGHT_GRAD_ONLY=1` runs only the weight-gradient table.
//!
//! Each with 2 and 1 rayon threads. Inputs are deterministic (seeded).
//! `NN_BREAKDOWN=1` adds single-thread CPU-time figures and a per-layer
//! breakdown; `NN_PROFILE_STEP=<n>` only runs n single-thread steps (perf).
//!
//! # Results (2026-11-27)
//!
//! 2-core Zen 3 (AVX2 + FMA), FP32 peak ~111.5 GFLOP/s per core, ~223 for
//! both. The machine was loaded (a training job holds about one core, other
//! benchmarks ran), so 2 threads gain nothing and wall times swing by 1.5x
//! between runs: the thread-CPU-time column (median of
//! `CLOCK_THREAD_CPUTIME_ID` per run, 1 thread) is the comparable one.
//! torch 2.15.0 (CPU), onnxruntime 1.32.0 (CPU EP, all graph optimisations).
//!
//! SRCNN 9-5-5 inference, 528x528 -> 512x512 (29.98 GFLOP); % of the peak
//! of the threads used:
//!
//! | engine | threads | wall median | GFLOP/s | % peak | 1t thread CPU time | GFLOP/s | % peak |
//! |---|---|---|---|---|---|---|---|
//! | srkit | 1 | 734 ms | 40.8 | 37 % | 647 ms | 46.3 | 42 % |
//! | srkit | 2 | 712 ms | 42.1 | 19 % | | | |
//! | PyTorch | 1 | 704 ms | 42.6 | 38 % | 687 ms | 43.6 | 39 % |
//! | PyTorch | 2 | 797 ms | 37.6 | 17 % | | | |
//! | onnxruntime | 1 | 401 ms | 74.7 | 67 % | 409 ms | 73.2 | 66 % |
//! | onnxruntime | 2 | 416 ms | 72.1 | 32 % | | | |
//!
//! (srkit before the tap-wise kernels: 721 ms thread CPU time, 41.6 GFLOP/s.)
//!
//! SRCNN training step (batch 16 of 33x33), 1 thread, thread CPU time:
//!
//! | | srkit before | srkit after | PyTorch |
//! |---|---|---|---|
//! | step, fresh process | 58.9 ms | 48.5-50.0 ms | |
//! | step, after the 256x256 conv bench | | 41.4 ms (wall 41.8) | 45.9-46.6 ms (wall 46.4) |
//! | conv 64->32 k5, fwd + bwd-input + bwd-weight | 14.7 + 13.7 + 17.1 ms | 11.2 + 11.9 + 10.4 ms | |
//! | conv 32->1 k5, fwd + bwd-input + bwd-weight | 1.4 + 1.5 + 1.8 ms | 0.56 + 0.62 + 0.64 ms | |
//! | conv3x3 64->64 256x256 fwd | 74.0 ms (65 GFLOP/s) | 65.3 ms (74 GFLOP/s) | 78.3 ms (62) |
//!
//! "Fresh process": the first steps of a process page-fault their
//! activations (glibc serves them with mmap until a large free raises its
//! threshold); after the big-conv bench, as in `bench_torch.py`'s order,
//! they come from the heap. The loaded machine moves single runs by
//! +-20 % (one later steady-state run read 68 ms); compare figures from
//! back-to-back runs only.
//!
//! # Winograd F(2x2, 3x3) (2026-11-27)
//!
//! Same machine, same load. `cargo bench --bench nn -- conv_winograd`,
//! 1 thread, effective GFLOP/s = direct-convolution FLOPs / thread CPU
//! time; one representative run of four (the speed-ups of the four runs:
//! 1.79-1.93x, 2.04-2.10x, 1.71-2.00x, 2.11-2.18x; absolute times moved by
//! up to 30 % with the load):
//!
//! | conv 3x3, padding 1 | GEMM path | GFLOP/s | Winograd | GFLOP/s | speed-up |
//! |---|---|---|---|---|---|
//! | 64->64 1x64x256x256 | 69.70 ms | 69.3 | 37.40 ms | 129.2 | 1.86x |
//! | 64->64 1x64x128x128 | 18.01 ms | 67.1 | 8.81 ms | 137.1 | 2.04x |
//! | 32->32 1x32x128x128 | 4.85 ms | 62.2 | 2.76 ms | 109.4 | 1.76x |
//! | 192->64 1x192x128x128 | 47.63 ms | 76.1 | 22.41 ms | 161.7 | 2.13x |
//!
//! The input gradient of a 3x3 stride-1 layer is the same Winograd
//! convolution (flipped, transposed weights): `NN_BREAKDOWN=1`, 64->64 on
//! 1x64x256x256, bwd-input 70.6 ms (68 GFLOP/s) -> 35.7 ms (135 GFLOP/s);
//! the weight gradient is unchanged (66 ms).
//!
//! Whole networks, `scripts/bench_archs.py 1 3` (process CPU time, 1
//! thread, PyTorch 2.15 in the same run), Winograd off (thresholds set out
//! of reach) and on, back to back:
//!
//! | network | input | srkit off | vs PyTorch | srkit on | vs PyTorch | speed-up |
//! |---|---|---|---|---|---|---|
//! | RRDBNet x4 (23 blocks) | 3x128x128 | 9564 ms | 0.90x | 6182 ms | 1.39x | 1.55x |
//! | RCAN x4 (10x20, 64) | 3x128x128 | 8604 ms | 0.80x | 4285 ms | 1.62x | 2.01x |
//! | RDN x4 (D16 C8 G64) | 3x128x128 | 11282 ms | 0.94x | 6812 ms | 1.59x | 1.66x |
//! | EDSR-baseline x4 | 3x128x128 | 1032 ms | 1.04x | 603 ms | 1.74x | 1.71x |
//! | VDSR (20x64) | 1x512x512 | 6804 ms | 1.12x | 4241 ms | 1.78x | 1.60x |
//! | SRVGGNetCompact x4 | 3x128x128 | 318 ms | 0.81x | 165 ms | 1.54x | 1.93x |
//! | FSRCNN x3 | 1x256x256 | 63 ms | 1.96x | 55 ms | 2.15x | 1.15x |
//! | ESPCN x3 | 1x256x256 | 101 ms | 0.68x | 77 ms | 0.83x | 1.31x |

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../src/allocator.rs"]
mod allocator;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use srkit::models::{Srcnn as SrcnnNet, SrcnnConfig};
use srkit::nn::{Adam, AdamConfig, Backend, Conv2dConfig, Eager, Graph, ParamStore, Tensor, CPU};
use std::time::Duration;

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu_ns;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn conv(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Tensor::uniform(&[1, 64, 256, 256], -1.0, 1.0, &mut rng);
    let w = Tensor::uniform(&[64, 64, 3, 3], -0.05, 0.05, &mut rng);
    let b = Tensor::uniform(&[64], -0.05, 0.05, &mut rng);
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let flop = 2.0 * 64.0 * 64.0 * 9.0 * 256.0 * 256.0;
    let mut group = c.benchmark_group("conv3x3_64x64_256");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    for threads in [2, 1] {
        let p = pool(threads);
        group.bench_function(format!("{threads}t"), |bch| {
            p.install(|| bch.iter(|| CPU.conv2d(&x, &w, Some(&b), cfg).expect("conv")))
        });
        // Plain median, printed as GFLOP/s for the report.
        let mut ts: Vec<f64> = (0..15)
            .map(|_| {
                let t = std::time::Instant::now();
                p.install(|| CPU.conv2d(&x, &w, Some(&b), cfg).expect("conv"));
                t.elapsed().as_secs_f64()
            })
            .collect();
        ts.sort_by(f64::total_cmp);
        let med = ts[ts.len() / 2];
        println!(
            "conv3x3 64->64 1x64x256x256 {threads}t: median {:.1} ms, {:.1} GFLOP/s",
            med * 1e3,
            flop / med / 1e9
        );
    }
    group.finish();
}

fn srcnn(store: &mut ParamStore, rng: &mut ChaCha8Rng) -> SrcnnNet {
    SrcnnNet::new(store, SrcnnConfig::srcnn_955(), rng).expect("srcnn")
}

fn train_step(
    m: &SrcnnNet,
    store: &mut ParamStore,
    adam: &mut Adam,
    x: &Tensor,
    t: &Tensor,
) -> srkit::Result<f32> {
    let mut g = Graph::new();
    let xv = g.input(x.clone());
    let y = m.forward(&mut g, store, &xv)?;
    let tv = g.input(t.clone());
    let loss = g.mse_loss(y, tv)?;
    let grads = g.backward(loss)?;
    adam.step(store, &grads)?;
    g.scalar(loss)
}

fn srcnn_step(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut store = ParamStore::new();
    let m = srcnn(&mut store, &mut rng);
    let mut adam = Adam::new(&store, AdamConfig::default());
    let x = Tensor::uniform(&[16, 1, 33, 33], 0.0, 1.0, &mut rng);
    let t = Tensor::uniform(&[16, 1, 17, 17], 0.0, 1.0, &mut rng);
    let mut group = c.benchmark_group("srcnn_train_step");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    for threads in [2, 1] {
        let p = pool(threads);
        group.bench_function(format!("{threads}t"), |bch| {
            p.install(|| bch.iter(|| train_step(&m, &mut store, &mut adam, &x, &t).expect("step")))
        });
        // Wall and thread-CPU time of the same runs (the CPU time is only
        // the calling thread's: all the work with 1 thread).
        let (mut ts, mut cs): (Vec<f64>, Vec<f64>) = p.install(|| {
            (0..30)
                .map(|_| {
                    let (tm, c0) = (std::time::Instant::now(), thread_cpu_ns());
                    train_step(&m, &mut store, &mut adam, &x, &t).expect("step");
                    (
                        tm.elapsed().as_secs_f64(),
                        (thread_cpu_ns() - c0) as f64 / 1e9,
                    )
                })
                .unzip()
        });
        ts.sort_by(f64::total_cmp);
        cs.sort_by(f64::total_cmp);
        println!(
            "srcnn 9-5-5 train step b16 33x33 {threads}t: median {:.2} ms (thread CPU time {:.2} ms)",
            ts[ts.len() / 2] * 1e3,
            cs[cs.len() / 2] * 1e3
        );
    }
    group.finish();
}

/// Median CPU time (ms) of `f` over `runs` runs on the current thread, after
/// one warm-up run (the statistic of `scripts/bench_torch.py`).
fn median_cpu_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    f();
    let mut ts: Vec<u64> = (0..runs)
        .map(|_| {
            let t = thread_cpu_ns();
            f();
            thread_cpu_ns() - t
        })
        .collect();
    ts.sort_unstable();
    ts[ts.len() / 2] as f64 / 1e6
}

/// Per-op breakdown of the SRCNN step's convolutions and the big conv, as
/// single-thread CPU time (set `NN_BREAKDOWN=1`).
fn breakdown(_c: &mut Criterion) {
    if std::env::var_os("NN_BREAKDOWN").is_none() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let p = pool(1);
    for (n, cin, cout, k, hw, pad) in [
        (16, 1, 64, 9, 33, 0),
        (16, 64, 32, 5, 25, 0),
        (16, 32, 1, 5, 21, 0),
        (1, 64, 64, 3, 256, 1),
    ] {
        let cfg = Conv2dConfig {
            padding: pad,
            ..Default::default()
        };
        let x = Tensor::uniform(&[n, cin, hw, hw], -1.0, 1.0, &mut rng);
        let w = Tensor::uniform(&[cout, cin, k, k], -0.1, 0.1, &mut rng);
        let y = CPU.conv2d(&x, &w, None, cfg).expect("conv");
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        let gflop = 2.0 * (n * cout * cin * k * k * oh * ow) as f64 / 1e9;
        let runs = (200.0 / gflop).clamp(5.0, 400.0) as usize;
        let (fwd, bi, bw) = p.install(|| {
            (
                median_cpu_ms(|| drop(CPU.conv2d(&x, &w, None, cfg)), runs),
                median_cpu_ms(
                    || drop(CPU.conv2d_backward_input(&y, &w, x.shape(), cfg)),
                    runs,
                ),
                median_cpu_ms(
                    || drop(CPU.conv2d_backward_weight(&x, &y, w.shape(), cfg)),
                    runs,
                ),
            )
        });
        let r = |ms: f64| gflop / ms * 1e3;
        println!(
            "1t cpu conv {cin}->{cout} k{k} on {n}x{hw}x{hw}: fwd {fwd:.2} ms ({:.0} GF/s), \
             bwd-input {bi:.2} ms ({:.0}), bwd-weight {bw:.2} ms ({:.0})",
            r(fwd),
            r(bi),
            r(bw)
        );
    }
}

/// Single-thread CPU time of the SRCNN step and the big conv, comparable
/// under load with `scripts/bench_torch.py`'s `thread_time` figures (set
/// `NN_BREAKDOWN=1`).
fn cpu_time_totals(_c: &mut Criterion) {
    if std::env::var_os("NN_BREAKDOWN").is_none() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut store = ParamStore::new();
    let m = srcnn(&mut store, &mut rng);
    let mut adam = Adam::new(&store, AdamConfig::default());
    let x = Tensor::uniform(&[16, 1, 33, 33], 0.0, 1.0, &mut rng);
    let t = Tensor::uniform(&[16, 1, 17, 17], 0.0, 1.0, &mut rng);
    let xc = Tensor::uniform(&[1, 64, 256, 256], -1.0, 1.0, &mut rng);
    let w = Tensor::uniform(&[64, 64, 3, 3], -0.05, 0.05, &mut rng);
    let b = Tensor::uniform(&[64], -0.05, 0.05, &mut rng);
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let (step, conv) = pool(1).install(|| {
        (
            median_cpu_ms(
                || {
                    train_step(&m, &mut store, &mut adam, &x, &t).expect("step");
                },
                100,
            ),
            median_cpu_ms(
                || drop(CPU.conv2d(&xc, &w, Some(&b), cfg).expect("conv")),
                30,
            ),
        )
    });
    let flop = 2.0 * 64.0 * 64.0 * 9.0 * 256.0 * 256.0;
    println!(
        "1t cpu-time: srcnn step {step:.2} ms; conv3x3 {conv:.1} ms = {:.1} GFLOP/s",
        flop / conv / 1e6
    );
}

/// Runs only the single-thread SRCNN step, `NN_PROFILE_STEP` times, for a
/// profiler (`NN_PROFILE_STEP=300 perf record ... --bench zzz`).
fn profile_step(_c: &mut Criterion) {
    let Some(n) = std::env::var("NN_PROFILE_STEP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut store = ParamStore::new();
    let m = srcnn(&mut store, &mut rng);
    let mut adam = Adam::new(&store, AdamConfig::default());
    let x = Tensor::uniform(&[16, 1, 33, 33], 0.0, 1.0, &mut rng);
    let t = Tensor::uniform(&[16, 1, 17, 17], 0.0, 1.0, &mut rng);
    pool(1).install(|| {
        for _ in 0..n {
            train_step(&m, &mut store, &mut adam, &x, &t).expect("step");
        }
    });
    std::process::exit(0);
}

/// Whether a bench named `name` is selected by the command line's filter
/// (for the hand-timed benches, which criterion's filter does not see).
fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// Interleaved single-thread CPU-time medians (ms) of two functions: `runs`
/// alternating runs each after one warm-up, so that load changes on the
/// shared machine hit both alike.
fn median_cpu_ms_pair(mut a: impl FnMut(), mut b: impl FnMut(), runs: usize) -> (f64, f64) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let t = thread_cpu_ns();
        a();
        ta.push(thread_cpu_ns() - t);
        let t = thread_cpu_ns();
        b();
        tb.push(thread_cpu_ns() - t);
    }
    ta.sort_unstable();
    tb.sort_unstable();
    (ta[runs / 2] as f64 / 1e6, tb[runs / 2] as f64 / 1e6)
}

/// One convolution shape of [`conv_winograd`]'s tables (stride 1).
struct ConvCase {
    cfg: Conv2dConfig,
    /// Output height and width.
    out: (usize, usize),
    /// Direct-convolution work, GFLOP.
    gflop: f64,
    /// Timed runs: about 20 GFLOP in all, odd.
    runs: usize,
    label: String,
}

impl ConvCase {
    fn new(n: usize, cin: usize, cout: usize, h: usize, w: usize, k: usize, pad: usize) -> Self {
        let out = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
        let gflop = 2.0 * (n * cin * cout * k * k * out.0 * out.1) as f64 / 1e9;
        ConvCase {
            cfg: Conv2dConfig {
                padding: pad,
                ..Default::default()
            },
            out,
            gflop,
            runs: ((20.0 / gflop) as usize).clamp(7, 301) | 1,
            label: format!("{k}x{k} p{pad} {cin}->{cout} {n}x{cin}x{h}x{w}"),
        }
    }
}

/// One row of [`conv_winograd`]'s tables: times and GFLOP/s of the GEMM
/// path (`old`) and the default path (`new`), and the speed-up.
fn print_speedup_row(label: &str, gflop: f64, old: f64, new: f64) {
    println!(
        "| {label} | {old:.2} ms | {:.1} | {new:.2} ms | {:.1} | {:.2}x |",
        gflop / old * 1e3,
        gflop / new * 1e3,
        old / new
    );
}

/// 3x3 stride-1 padding-1 convolutions (with bias) of SR-network shapes and
/// SRCNN's 5x5 layer: the default path (Winograd F(2x2, 3x3) / F(2x2, 5x5)
/// at these sizes) against [`Cpu::conv2d_gemm`](srkit::nn::Cpu::conv2d_gemm)
/// (tap-wise / im2col GEMMs), then a table of weight gradients (Winograd
/// against [`Cpu::conv2d_backward_weight_gemm`](srkit::nn::Cpu::conv2d_backward_weight_gemm)), 1 thread, interleaved
/// thread-CPU-time medians. GFLOP/s are direct-convolution FLOPs
/// (`2 C_in C_out K² H W`) per second for both. `NN_WINOGRAD_SWEEP=1` adds
/// the small shapes the dispatch thresholds were chosen from.
fn conv_winograd(_c: &mut Criterion) {
    if !selected("conv_winograd") {
        return;
    }
    let mut cases: Vec<(usize, usize, usize, usize, usize)> = vec![
        (1, 64, 64, 256, 256),
        (1, 64, 64, 128, 128),
        (1, 32, 32, 128, 128),
        (1, 192, 64, 128, 128),
    ];
    // (n, cin, cout, h, w, kernel, padding): 3x3 padding 1 for the above.
    let mut cases: Vec<(usize, usize, usize, usize, usize, usize, usize)> = cases
        .drain(..)
        .map(|(n, ci, co, h, w)| (n, ci, co, h, w, 3, 1))
        .collect();
    cases.extend([
        // SRCNN 9-5-5's middle layer: a training batch (forward, and the
        // input gradient's padding-4 convolution) and whole-image inference.
        (16, 64, 32, 25, 25, 5, 0),
        (16, 32, 64, 21, 21, 5, 4),
        (1, 64, 32, 256, 256, 5, 2),
    ]);
    if std::env::var_os("NN_WINOGRAD_SWEEP").is_some() {
        cases.extend(
            [
                (1, 4, 4, 128, 128),
                (1, 6, 6, 128, 128),
                (1, 8, 8, 128, 128),
                (1, 12, 12, 128, 128),
                (1, 3, 8, 128, 128),
                (1, 3, 16, 128, 128),
                (1, 3, 32, 128, 128),
                (1, 8, 3, 128, 128),
                (1, 16, 3, 128, 128),
                (1, 32, 3, 128, 128),
                (1, 4, 64, 128, 128),
                (1, 64, 4, 128, 128),
                (1, 6, 64, 128, 128),
                (1, 64, 6, 128, 128),
                (1, 64, 12, 128, 128),
                (1, 64, 256, 64, 64),
                (16, 64, 64, 12, 12),
                (16, 64, 64, 16, 16),
                (64, 64, 64, 6, 6),
                (1, 16, 16, 128, 128),
                (1, 24, 24, 128, 128),
                (1, 3, 64, 128, 128),
                (1, 64, 3, 128, 128),
                (1, 64, 16, 128, 128),
                (1, 16, 64, 128, 128),
                (16, 64, 64, 24, 24),
                (16, 64, 64, 8, 8),
                (64, 64, 64, 4, 4),
                (1, 64, 64, 6, 300),
            ]
            .map(|(n, ci, co, h, w)| (n, ci, co, h, w, 3, 1)),
        );
    }
    if std::env::var_os("NN_WEIGHT_GRAD_ONLY").is_some() {
        cases.clear();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let p = pool(1);
    println!("| conv | gemm path | GFLOP/s | winograd | GFLOP/s | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (n, cin, cout, h, w, k, pad) in cases {
        let x = Tensor::uniform(&[n, cin, h, w], -1.0, 1.0, &mut rng);
        let wt = Tensor::uniform(&[cout, cin, k, k], -0.05, 0.05, &mut rng);
        let b = Tensor::uniform(&[cout], -0.05, 0.05, &mut rng);
        let c = ConvCase::new(n, cin, cout, h, w, k, pad);
        let (old, new) = p.install(|| {
            median_cpu_ms_pair(
                || drop(CPU.conv2d_gemm(&x, &wt, Some(&b), c.cfg).expect("conv")),
                || drop(CPU.conv2d(&x, &wt, Some(&b), c.cfg).expect("conv")),
                c.runs,
            )
        });
        print_speedup_row(&c.label, c.gflop, old, new);
    }
    println!();
    println!("| weight gradient | gemm path | GFLOP/s | winograd | GFLOP/s | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (n, cin, cout, h, w, k, pad) in [
        (1, 64, 64, 256, 256, 3, 1),
        // Training batches of 24², 32² and 48² patches.
        (16, 64, 64, 24, 24, 3, 1),
        (16, 64, 64, 32, 32, 3, 1),
        (16, 64, 64, 48, 48, 3, 1),
        // SRCNN 9-5-5's middle layer: training batches of 33², 41² and 48²
        // patches (valid), and a whole image.
        (16, 64, 32, 25, 25, 5, 0),
        (16, 64, 32, 33, 33, 5, 0),
        (32, 64, 32, 40, 40, 5, 0),
        (1, 64, 32, 256, 256, 5, 2),
    ] {
        let c = ConvCase::new(n, cin, cout, h, w, k, pad);
        let x = Tensor::uniform(&[n, cin, h, w], -1.0, 1.0, &mut rng);
        let dy = Tensor::uniform(&[n, cout, c.out.0, c.out.1], -1.0, 1.0, &mut rng);
        let ws = [cout, cin, k, k];
        let (old, new) = p.install(|| {
            median_cpu_ms_pair(
                || {
                    drop(
                        CPU.conv2d_backward_weight_gemm(&x, &dy, &ws, c.cfg)
                            .expect("dw"),
                    )
                },
                || drop(CPU.conv2d_backward_weight(&x, &dy, &ws, c.cfg).expect("dw")),
                c.runs,
            )
        });
        print_speedup_row(&c.label, c.gflop, old, new);
    }
}

/// SRCNN 9-5-5 inference on a 512x512 Y plane (x3: the bicubic-upscaled
/// image), the network only: the 528x528 edge-padded input (radius 8, as
/// `srkit::infer` pads) gives the 512x512 output. Wall-time medians with 2
/// and 1 threads, and single-thread CPU time (robust to load).
fn srcnn_infer(_c: &mut Criterion) {
    if !selected("srcnn_infer") {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut store = ParamStore::new();
    let net = SrcnnNet::new(&mut store, SrcnnConfig::srcnn_955(), &mut rng).expect("srcnn");
    let x = Tensor::uniform(&[1, 1, 528, 528], 0.0, 1.0, &mut rng);
    let flop = 2.0 * (64.0 * 81.0 + 64.0 * 32.0 * 25.0 + 32.0 * 25.0) * 512.0 * 512.0;
    let run = || {
        let y = net
            .forward(&mut Eager::new(&CPU), &store, &x)
            .expect("infer");
        assert_eq!(y.shape(), &[1, 1, 512, 512]);
    };
    for threads in [2, 1] {
        let p = pool(threads);
        let mut ts: Vec<f64> = p.install(|| {
            run();
            (0..11)
                .map(|_| {
                    let t = std::time::Instant::now();
                    run();
                    t.elapsed().as_secs_f64()
                })
                .collect()
        });
        ts.sort_by(f64::total_cmp);
        let med = ts[ts.len() / 2];
        println!(
            "srcnn_infer 9-5-5 528x528 -> 512x512 {threads}t: median {:.1} ms, {:.1} GFLOP/s",
            med * 1e3,
            flop / med / 1e9
        );
    }
    let cpu = pool(1).install(|| median_cpu_ms(run, 7));
    println!(
        "srcnn_infer 1t cpu-time: {cpu:.1} ms = {:.1} GFLOP/s",
        flop / cpu / 1e6
    );
}

/// Runs first: the binary's allocator setup, so that srkit is timed as
/// `srkit train` and `srkit upscale` run.
fn use_binary_allocator(_c: &mut Criterion) {
    allocator::keep_freed_memory();
}

criterion_group!(
    benches,
    use_binary_allocator,
    profile_step,
    srcnn_infer,
    cpu_time_totals,
    breakdown,
    conv_winograd,
    conv,
    srcnn_step
);
criterion_main!(benches);
