//! Times one model's forward pass, for `scripts/bench_archs.py`, which runs
//! PyTorch on the same weights and input size in the same run.
//!
//! Usage: time_model MODEL C H W RUNS THREADS
//! (MODEL: a PyTorch checkpoint or an srkit model file). Prints one JSON
//! line: median wall and process-CPU milliseconds over RUNS runs after one
//! warm-up, and the output shape.

use std::path::Path;
use std::time::Instant;

use srkit::models::{import, Model};
use srkit::nn::{Tensor, CPU};

#[path = "../benches/support/cpu_clock.rs"]
mod cpu_clock;

#[path = "../src/allocator.rs"]
mod allocator;

/// CPU time of the whole process in ms.
fn process_cpu_ms() -> f64 {
    cpu_clock::process_cpu_ns() as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> srkit::Result<()> {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: time_model MODEL C H W RUNS THREADS");
        std::process::exit(2);
    }
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let path = Path::new(&args[1]);
    let model = if path.extension().is_some_and(|e| e == "safetensors") {
        Model::load(path)?
    } else {
        import::load_pytorch(path, None, Some(4))?
    };
    let (c, h, w, runs) = (num(2), num(3), num(4), num(5));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num(6))
        .build()
        .expect("thread pool");
    let data: Vec<f32> = (0..c * h * w)
        .map(|i| (i * 7919 % 1000) as f32 / 1000.0)
        .collect();
    let x = Tensor::new(&[1, c, h, w], data)?;
    let run = || model.network.infer(&CPU, &model.params, &x);
    let shape = pool.install(run)?.shape().to_vec();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c0) = (Instant::now(), process_cpu_ms());
        pool.install(run)?;
        cpu.push(process_cpu_ms() - c0);
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"wall_ms\": {:.2}, \"cpu_ms\": {:.2}, \"out_shape\": {:?}, \"params\": {}}}",
        median(wall),
        median(cpu),
        shape,
        model.params.num_elements()
    );
    Ok(())
}
