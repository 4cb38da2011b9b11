//! Whole-model parity of `srkit::nn` with PyTorch.
//!
//! The fixture `tests/fixtures/torch_parity.safetensors` comes from
//! `scripts/make_torch_fixture.py` (PyTorch, float64 reference): a small
//! SRCNN-like net plus a ConvTranspose2d + PReLU + grouped Conv2d +
//! PixelShuffle branch. We check the forward outputs, the loss, every weight
//! gradient and the weights after three Adam steps.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use srkit::nn::{
    tensor_from_view, Adam, AdamConfig, Conv2d, Conv2dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, Eager, Gradients, Graph, Ops, ParamStore, Prelu, Tensor, CPU,
};

const FIXTURE: &[u8] = include_bytes!("fixtures/torch_parity.safetensors");

struct Net {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    up_t: ConvTranspose2d,
    prelu: Prelu,
    up_c: Conv2d,
}

fn build(store: &mut ParamStore) -> Net {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pad = |p| Conv2dConfig {
        padding: p,
        ..Default::default()
    };
    Net {
        conv1: Conv2d::new(store, "conv1", 1, 8, 9, true, pad(4), &mut rng).expect("conv1"),
        conv2: Conv2d::new(store, "conv2", 8, 4, 5, true, pad(2), &mut rng).expect("conv2"),
        conv3: Conv2d::new(store, "conv3", 4, 1, 5, true, pad(2), &mut rng).expect("conv3"),
        up_t: ConvTranspose2d::new(
            store,
            "up_t",
            4,
            4,
            3,
            true,
            ConvTranspose2dConfig {
                stride: 2,
                padding: 1,
                output_padding: 1,
                groups: 1,
            },
            &mut rng,
        )
        .expect("up_t"),
        prelu: Prelu::new(store, "prelu", 4).expect("prelu"),
        up_c: Conv2d::new(
            store,
            "up_c",
            4,
            4,
            3,
            true,
            Conv2dConfig {
                padding: 1,
                groups: 2,
                ..Default::default()
            },
            &mut rng,
        )
        .expect("up_c"),
    }
}

fn get(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture lacks {name}"));
    tensor_from_view(name, &view).expect("f32 tensor")
}

/// Max |a - b| relative to max |b| (the tensor's scale).
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b
        .data()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    a.max_abs_diff(b).expect("same shape") / scale
}

/// The fixture network's forward pass, on a tape or eagerly: returns the
/// SRCNN branch and the upsampling branch.
fn forward<O: Ops>(net: &Net, o: &mut O, store: &ParamStore, x: &O::Value) -> (O::Value, O::Value) {
    let h = net.conv1.forward(o, store, x).expect("conv1");
    let h = o.relu(&h);
    let h = net.conv2.forward(o, store, &h).expect("conv2");
    let h = o.relu(&h);
    let y1 = net.conv3.forward(o, store, &h).expect("conv3");
    let u = net.up_t.forward(o, store, &h).expect("up_t");
    let u = net.prelu.forward(o, store, &u).expect("prelu");
    let u = net.up_c.forward(o, store, &u).expect("up_c");
    let y2 = o.pixel_shuffle(&u, 2).expect("shuffle");
    (y1, y2)
}

/// One forward + backward; returns (out_srcnn, out_up, loss, grads).
fn step(
    net: &Net,
    store: &ParamStore,
    x: &Tensor,
    t1: &Tensor,
    t2: &Tensor,
) -> (Tensor, Tensor, f32, Gradients) {
    let mut g = Graph::new();
    let xv = g.input(x.clone());
    let (y1, y2) = forward(net, &mut g, store, &xv);
    let t1v = g.input(t1.clone());
    let t2v = g.input(t2.clone());
    let l1 = g.mse_loss(y1, t1v).expect("mse");
    let l2 = g.mse_loss(y2, t2v).expect("mse");
    let loss = g.add(l1, l2).expect("add");
    let grads = g.backward(loss).expect("backward");
    (
        g.value(y1).clone(),
        g.value(y2).clone(),
        g.scalar(loss).expect("scalar"),
        grads,
    )
}

#[test]
fn matches_pytorch_forward_backward_and_adam() {
    let st = SafeTensors::deserialize(FIXTURE).expect("fixture parses");
    let mut store = ParamStore::new();
    let net = build(&mut store);
    let names: Vec<String> = store.ids().map(|id| store.name(id).to_owned()).collect();
    for n in &names {
        store
            .set(n, get(&st, &format!("param.{n}")))
            .expect("fixture shape matches");
    }
    let (x, t1, t2) = (
        get(&st, "input"),
        get(&st, "target_srcnn"),
        get(&st, "target_up"),
    );

    let (y1, y2, loss, grads) = step(&net, &store, &x, &t1, &t2);
    let e1 = rel_err(&y1, &get(&st, "out_srcnn"));
    let e2 = rel_err(&y2, &get(&st, "out_up"));
    let want_loss = get(&st, "loss").data()[0];
    eprintln!("forward rel err: srcnn {e1:.2e}, up {e2:.2e}; loss {loss} vs {want_loss}");
    assert!(e1 < 1e-5 && e2 < 1e-5, "forward rel err {e1} {e2}");
    assert!(
        ((loss - want_loss) / want_loss).abs() < 1e-5,
        "loss {loss} vs {want_loss}"
    );

    // The tape-free inference path gives the same outputs.
    let (y1i, y2i) = forward(&net, &mut Eager::new(&CPU), &store, &x);
    assert_eq!((y1i, y2i), (y1, y2));

    for id in store.ids() {
        let n = store.name(id);
        let e = rel_err(
            grads.get(id).expect("gradient"),
            &get(&st, &format!("grad.{n}")),
        );
        eprintln!("grad.{n}: rel err {e:.2e}");
        assert!(e < 1e-4, "grad.{n}: rel err {e}");
    }

    let mut adam = Adam::new(&store, AdamConfig::default());
    adam.step(&mut store, &grads).expect("adam");
    for _ in 0..2 {
        let (_, _, _, grads) = step(&net, &store, &x, &t1, &t2);
        adam.step(&mut store, &grads).expect("adam");
    }
    for id in store.ids() {
        let n = store.name(id);
        let want = get(&st, &format!("adam3.{n}"));
        let e = store.get(id).max_abs_diff(&want).expect("shape");
        eprintln!("adam3.{n}: max abs err {e:.2e}");
        // Adam moves each weight by about lr = 1e-3 per step.
        assert!(e < 2e-5, "adam3.{n}: max abs err {e}");
    }
}
