//! Finite-difference gradient checks for every op, and error paths.
//!
//! Each check registers all operands (inputs included) as parameters, so the
//! tape differentiates w.r.t. every one of them. The loss is
//! `sum((f(params) - target)²)`; the numerical side evaluates it in f64 from
//! the f32 forward output with central differences.

use super::*;
use crate::error::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type Build = dyn Fn(&mut Graph<'_>, &[Var]) -> Result<Var>;

fn forward(store: &ParamStore, f: &Build) -> Result<Tensor> {
    let mut g = Graph::new();
    let vars: Vec<Var> = store.ids().map(|id| g.param(store, id)).collect();
    let y = f(&mut g, &vars)?;
    Ok(g.value(y).clone())
}

fn sq_loss(y: &Tensor, t: &Tensor) -> f64 {
    y.data()
        .iter()
        .zip(t.data())
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum()
}

/// Checks analytic against numerical gradients of every parameter of
/// `store` (at most 60 sampled elements each).
fn check(mut store: ParamStore, f: &Build, h: f32, tol: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let y0 = forward(&store, f).expect("forward");
    let target = Tensor::uniform(y0.shape(), -1.0, 1.0, &mut rng);
    let mut g = Graph::new();
    let vars: Vec<Var> = store.ids().map(|id| g.param(&store, id)).collect();
    let y = f(&mut g, &vars).expect("forward");
    let t = g.input(target.clone());
    let l = g.mse_loss(y, t).expect("loss");
    let l = g.scale(l, y0.numel() as f32);
    let grads = g.backward(l).expect("backward");
    let ids: Vec<ParamId> = store.ids().collect();
    for id in ids {
        let n = store.get(id).numel();
        let ga = grads
            .get(id)
            .expect("every operand gets a gradient")
            .clone();
        assert_eq!(ga.shape(), store.get(id).shape());
        let scale = ga
            .data()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs() as f64))
            .max(1e-3);
        let picks: Vec<usize> = if n <= 60 {
            (0..n).collect()
        } else {
            (0..60).map(|i| (i * 7919 + 13) % n).collect()
        };
        for i in picks {
            let orig = store.get(id).data()[i];
            store.get_mut(id).data_mut()[i] = orig + h;
            let lp = sq_loss(&forward(&store, f).expect("fwd"), &target);
            store.get_mut(id).data_mut()[i] = orig - h;
            let lm = sq_loss(&forward(&store, f).expect("fwd"), &target);
            store.get_mut(id).data_mut()[i] = orig;
            let num = (lp - lm) / (2.0 * h as f64);
            let ana = ga.data()[i] as f64;
            assert!(
                (num - ana).abs() <= tol * scale,
                "{}[{i}]: analytic {ana} vs numerical {num} (scale {scale})",
                store.name(id)
            );
        }
    }
}

fn store_of(shapes: &[(&str, &[usize])], seed: u64) -> ParamStore {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = ParamStore::new();
    for (name, shape) in shapes {
        s.add(*name, Tensor::uniform(shape, -1.0, 1.0, &mut rng))
            .expect("add");
    }
    s
}

#[test]
fn grad_conv2d() {
    // (k, stride, padding, groups, h, w, bias)
    for &(k, s, p, gr, h, w, bias) in &[
        (3, 1, 1, 1, 7, 9, true),
        (3, 2, 1, 2, 9, 7, true),
        (5, 1, 2, 1, 6, 5, false),
        (1, 1, 0, 2, 5, 5, true),
        (3, 2, 0, 1, 8, 7, true),
        (2, 2, 2, 2, 5, 6, false),
        (3, 1, 0, 1, 30, 11, true),
    ] {
        for (cin, cout) in [(4, 6), (4, 2), (2, 2)] {
            let mut shapes: Vec<(&str, &[usize])> = vec![];
            let xs = [2, cin, h, w];
            let ws = [cout, cin / gr, k, k];
            let bs = [cout];
            shapes.push(("x", &xs));
            shapes.push(("w", &ws));
            if bias {
                shapes.push(("b", &bs));
            }
            let cfg = Conv2dConfig {
                stride: s,
                padding: p,
                groups: gr,
            };
            let f =
                move |g: &mut Graph<'_>, v: &[Var]| g.conv2d(v[0], v[1], v.get(2).copied(), cfg);
            check(store_of(&shapes, 1), &f, 1e-2, 2e-3);
        }
    }
}

/// The 3x3 stride-1 layers large enough for the Winograd forward (and,
/// through it, input gradient): against the GEMM path, and gradients.
#[test]
fn winograd_conv2d_matches_gemm_path_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // (n, cin, cout, h, w, padding)
    for (n, cin, cout, h, w, p) in [
        (2, 64, 64, 17, 23, 1),
        (1, 32, 48, 40, 33, 0),
        (3, 8, 6, 16, 16, 1),
    ] {
        let x = Tensor::uniform(&[n, cin, h, w], -1.0, 1.0, &mut rng);
        let wt = Tensor::uniform(&[cout, cin, 3, 3], -0.2, 0.2, &mut rng);
        let b = Tensor::uniform(&[cout], -0.5, 0.5, &mut rng);
        let cfg = Conv2dConfig {
            padding: p,
            ..Default::default()
        };
        let got = CPU.conv2d(&x, &wt, Some(&b), cfg).expect("conv");
        let want = CPU.conv2d_gemm(&x, &wt, Some(&b), cfg).expect("conv");
        let scale = want.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = got.max_abs_diff(&want).expect("same shape");
        assert!(err <= 1e-4 * scale, "{cin}->{cout} p{p}: {err} vs {scale}");
    }
    for p in [0, 1] {
        let shapes: [(&str, &[usize]); 3] =
            [("x", &[2, 8, 12, 16]), ("w", &[8, 8, 3, 3]), ("b", &[8])];
        let cfg = Conv2dConfig {
            padding: p,
            ..Default::default()
        };
        let f = move |g: &mut Graph<'_>, v: &[Var]| g.conv2d(v[0], v[1], Some(v[2]), cfg);
        check(store_of(&shapes, 2), &f, 1e-2, 2e-3);
    }
}

#[test]
fn grad_conv_transpose2d() {
    // (k, stride, padding, output_padding, groups)
    for &(k, s, p, op, gr) in &[
        (3, 2, 1, 1, 1),
        (4, 2, 1, 0, 2),
        (3, 1, 0, 0, 1),
        (3, 3, 2, 2, 2),
    ] {
        let (cin, cout) = (4, 6);
        let xs = [2, cin, 5, 4];
        let ws = [cin, cout / gr, k, k];
        let bs = [cout];
        let cfg = ConvTranspose2dConfig {
            stride: s,
            padding: p,
            output_padding: op,
            groups: gr,
        };
        let f = move |g: &mut Graph<'_>, v: &[Var]| g.conv_transpose2d(v[0], v[1], Some(v[2]), cfg);
        check(
            store_of(&[("x", &xs), ("w", &ws), ("b", &bs)], 2),
            &f,
            1e-2,
            2e-3,
        );
    }
}

#[test]
fn conv_transpose_shape_matches_pytorch() {
    // PyTorch: (H-1)*s - 2p + k + output_padding.
    let x = Tensor::zeros(&[1, 2, 5, 7]);
    let w = Tensor::zeros(&[2, 3, 3, 3]);
    let cfg = ConvTranspose2dConfig {
        stride: 2,
        padding: 1,
        output_padding: 1,
        groups: 1,
    };
    let y = CPU.conv_transpose2d(&x, &w, None, cfg).expect("convT");
    assert_eq!(y.shape(), &[1, 3, 10, 14]);
}

#[test]
fn grad_pixel_shuffle() {
    for r in [2, 3] {
        let xs = [2, 2 * r * r, 3, 4];
        let f = move |g: &mut Graph<'_>, v: &[Var]| g.pixel_shuffle(v[0], r);
        check(store_of(&[("x", &xs)], 3), &f, 1e-2, 1e-3);
    }
}

#[test]
fn pixel_shuffle_layout() {
    // out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]
    let x = Tensor::new(&[1, 4, 1, 2], (0..8).map(|v| v as f32).collect()).expect("t");
    let y = CPU.pixel_shuffle(&x, 2).expect("ps");
    assert_eq!(y.shape(), &[1, 1, 2, 4]);
    assert_eq!(y.data(), &[0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
}

#[test]
fn grad_pixel_unshuffle() {
    for r in [2, 4] {
        let xs = [2, 3, 2 * r, 3 * r];
        let f = move |g: &mut Graph<'_>, v: &[Var]| g.pixel_unshuffle(v[0], r);
        check(store_of(&[("x", &xs)], 4), &f, 1e-2, 1e-3);
    }
}

#[test]
fn pixel_unshuffle_layout() {
    // PyTorch PixelUnshuffle: out[n, c*r*r + i*r + j, h, w] = in[n, c, h*r + i, w*r + j],
    // so it undoes pixel_shuffle exactly.
    let x = Tensor::new(&[1, 1, 2, 4], (0..8).map(|v| v as f32).collect()).expect("t");
    let y = CPU.pixel_unshuffle(&x, 2).expect("pu");
    assert_eq!(y.shape(), &[1, 4, 1, 2]);
    assert_eq!(y.data(), &[0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    assert_eq!(CPU.pixel_shuffle(&y, 2).expect("ps"), x);
    assert!(CPU.pixel_unshuffle(&x, 3).is_err());
}

#[test]
fn grad_upsample_nearest() {
    for r in [2, 3] {
        let f = move |g: &mut Graph<'_>, v: &[Var]| g.upsample_nearest(v[0], r);
        check(store_of(&[("x", &[2, 3, 3, 4])], 5), &f, 1e-2, 1e-3);
    }
}

#[test]
fn upsample_nearest_layout() {
    // PyTorch: F.interpolate(x, scale_factor=2, mode="nearest") repeats
    // every pixel into a 2x2 block.
    let x = Tensor::new(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).expect("t");
    let y = CPU.upsample_nearest(&x, 2).expect("up");
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    #[rustfmt::skip]
    assert_eq!(y.data(), &[
        1.0, 1.0, 2.0, 2.0,
        1.0, 1.0, 2.0, 2.0,
        3.0, 3.0, 4.0, 4.0,
        3.0, 3.0, 4.0, 4.0,
    ]);
    assert!(CPU.upsample_nearest_backward(&y, 3).is_err());
}

#[test]
fn grad_activations() {
    for act in [
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Sigmoid,
        Activation::Tanh,
    ] {
        let xs = [2, 3, 5, 3];
        let f = move |g: &mut Graph<'_>, v: &[Var]| Ok(g.activation(v[0], act));
        check(store_of(&[("x", &xs)], 4), &f, 1e-3, 1e-2);
    }
}

#[test]
fn grad_prelu() {
    for a in [[3usize], [1]] {
        let xs = [2, 3, 4, 5];
        let f = |g: &mut Graph<'_>, v: &[Var]| g.prelu(v[0], v[1]);
        check(store_of(&[("x", &xs), ("a", &a)], 5), &f, 1e-3, 1e-2);
    }
}

#[test]
fn grad_batch_norm() {
    for training in [true, false] {
        let xs = [3, 4, 3, 5];
        let f = move |g: &mut Graph<'_>, v: &[Var]| {
            let mut rs = RunningStats::new(4);
            rs.mean = vec![0.1, -0.2, 0.3, 0.0];
            rs.var = vec![0.5, 1.5, 0.8, 1.0];
            g.batch_norm(v[0], v[1], v[2], &mut rs, 0.1, 1e-5, training)
        };
        check(
            store_of(&[("x", &xs), ("gamma", &[4]), ("beta", &[4])], 6),
            &f,
            1e-2,
            5e-3,
        );
    }
}

#[test]
fn batch_norm_running_stats() {
    let mut g = Graph::new();
    let x = Tensor::new(&[2, 1, 1, 2], vec![1.0, 2.0, 3.0, 6.0]).expect("t");
    let xv = g.input(x);
    let gamma = g.input(Tensor::full(&[1], 1.0));
    let beta = g.input(Tensor::full(&[1], 0.0));
    let mut rs = RunningStats::new(1);
    g.batch_norm(xv, gamma, beta, &mut rs, 0.1, 1e-5, true)
        .expect("bn");
    // mean 3, unbiased var (4+1+0+9)/3
    assert!((rs.mean[0] - 0.3).abs() < 1e-6);
    assert!((rs.var[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-5);
}

#[test]
fn grad_pool_concat_add_mul_scale() {
    let xs = [2, 3, 4, 5];
    let cs = [2, 2, 4, 5];
    let bs = [2, 3, 1, 1];
    let f = |g: &mut Graph<'_>, v: &[Var]| {
        let p = g.global_avg_pool(v[0])?; // [2,3,1,1]
        let s = g.activation(p, Activation::Sigmoid);
        let att = g.mul(v[0], s)?; // channel broadcast
        let m = g.mul(att, v[0])?; // same shape
        let a = g.add(m, v[2])?; // channel broadcast
        let a = g.add(a, v[0])?; // same shape
        let a = g.scale(a, 0.7);
        g.concat(&[a, v[1]])
    };
    check(
        store_of(&[("x", &xs), ("c", &cs), ("b", &bs)], 7),
        &f,
        1e-3,
        1e-2,
    );
}

#[test]
fn grad_losses() {
    let xs = [2, 1, 3, 3];
    let f = |g: &mut Graph<'_>, v: &[Var]| {
        let l1 = g.l1_loss(v[0], v[1])?;
        let mse = g.mse_loss(v[0], v[1])?;
        let s = g.add(l1, mse)?;
        Ok(s)
    };
    check(store_of(&[("x", &xs), ("t", &xs)], 8), &f, 1e-3, 1e-2);
}

#[test]
fn shared_param_gradients_accumulate() {
    let mut store = ParamStore::new();
    let id = store.add("w", Tensor::full(&[1], 3.0)).expect("add");
    let mut g = Graph::new();
    let a = g.param(&store, id);
    let b = g.param(&store, id);
    let p = g.mul(a, b).expect("mul");
    let t = g.input(Tensor::full(&[1], 0.0));
    let l = g.mse_loss(p, t).expect("loss"); // w^4, d/dw = 4 w^3
    let grads = g.backward(l).expect("bwd");
    assert!((grads.get(id).expect("grad").data()[0] - 108.0).abs() < 1e-3);
}

#[test]
fn shape_errors_are_errors() {
    let x = Tensor::zeros(&[1, 3, 8, 8]);
    let w = Tensor::zeros(&[4, 2, 3, 3]);
    assert!(CPU.conv2d(&x, &w, None, Conv2dConfig::default()).is_err());
    let w = Tensor::zeros(&[4, 3, 9, 9]);
    assert!(CPU.conv2d(&x, &w, None, Conv2dConfig::default()).is_err());
    assert!(CPU.pixel_shuffle(&x, 2).is_err());
    assert!(Tensor::new(&[2, 2], vec![0.0; 3]).is_err());
    assert!(CPU.add(&x, &Tensor::zeros(&[1, 3, 8, 7])).is_err());
    let mut g = Graph::new();
    let xv = g.input(x);
    assert!(g.backward(xv).is_err());
}

#[test]
fn adam_matches_pytorch_formula() {
    // Two steps on one scalar with constant gradient g = 0.5, PyTorch
    // defaults: after step t, p = p0 - sum_t lr * m̂_t / (sqrt(v̂_t) + eps)
    // with m̂ = v̂^(1/2) = g for a constant gradient -> each step moves lr.
    let mut store = ParamStore::new();
    let id = store.add("p", Tensor::full(&[1], 1.0)).expect("add");
    let mut adam = Adam::new(&store, AdamConfig::default());
    let grads = Gradients {
        grads: vec![Some(Tensor::full(&[1], 0.5))],
    };
    adam.step(&mut store, &grads).expect("step");
    adam.step(&mut store, &grads).expect("step");
    assert!((store.get(id).data()[0] - (1.0 - 2e-3)).abs() < 1e-6);
    assert_eq!(adam.state().step, 2);
    let resumed = Adam::from_state(&store, adam.config, adam.state().clone()).expect("resume");
    assert_eq!(resumed.state(), adam.state());
}

#[test]
fn weight_average_follows_its_recurrence() {
    // Decay 0.5 towards weights that jump from 0 to 1: the average is
    // 1 - 0.5^t after t updates (exact in binary floating point).
    let mut store = ParamStore::new();
    let id = store.add("p", Tensor::zeros(&[2])).expect("add");
    let mut average = WeightAverage::new(&store, 0.5).expect("average");
    store.get_mut(id).data_mut().fill(1.0);
    for t in 1..=3 {
        average.update(&store);
        let expected = 1.0 - 0.5f32.powi(t);
        assert_eq!(average.weights().get(id).data(), &[expected, expected]);
    }
    // Re-initialised elements restart from the weights; the rest keep
    // their history.
    store.get_mut(id).data_mut()[1] = 7.0;
    average.reset_to(&store, id, 1..2);
    assert_eq!(average.weights().get(id).data(), &[0.875, 7.0]);
    // Continued from a saved average: the same; from another model's, or
    // with a decay outside [0, 1): refused.
    let saved = average.weights().clone();
    let resumed = WeightAverage::resume(&store, saved, 0.5).expect("resume");
    assert_eq!(resumed.weights().get(id), average.weights().get(id));
    let other = store_of(&[("p", &[3])], 1);
    assert!(WeightAverage::resume(&store, other, 0.5).is_err());
    assert!(WeightAverage::new(&store, 1.0).is_err());
    assert!(WeightAverage::new(&store, -0.1).is_err());
}

#[test]
fn param_store_safetensors_roundtrip() {
    let store = store_of(&[("a.weight", &[2, 3]), ("a.bias", &[3])], 9);
    let bytes = store.to_safetensors().expect("save");
    let mut other = store_of(&[("a.weight", &[2, 3]), ("a.bias", &[3])], 10);
    other.load_safetensors(&bytes).expect("load");
    for id in store.ids() {
        assert_eq!(store.get(id), other.get(id));
    }
    let mut wrong = store_of(&[("a.weight", &[3, 2]), ("a.bias", &[3])], 10);
    assert!(wrong.load_safetensors(&bytes).is_err());
}
