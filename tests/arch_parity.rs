//! Parity of srkit's EDSR, RCAN, RDN and RRDBNet with PyTorch.
//!
//! The fixture `tests/fixtures/arch_parity.safetensors` comes from
//! `scripts/make_arch_fixtures.py`: small configs of each architecture
//! (BasicSR's modules, and EDSR-PyTorch's RDN) with random weights, a random
//! `[1, 3, 12, 10]` input in `[0, 1]` and the float64 PyTorch output stored as
//! f32. Every case builds the srkit network from the same config, loads the
//! weights by their `state_dict` keys (each key must name a parameter and
//! each parameter must have a key), and must reproduce the output within
//! [`TOLERANCE`], eagerly and on a tape. The fixture also records PyTorch's
//! parameter counts of the papers' default models.
//!
//! A last test checks each architecture's documented receptive radius
//! against the pixels a one-pixel input change actually reaches.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use srkit::models::edsr::{Edsr, EdsrConfig};
use srkit::models::rcan::{Rcan, RcanConfig};
use srkit::models::rdn::{Rdn, RdnConfig};
use srkit::models::rrdbnet::{RrdbNet, RrdbNetConfig};
use srkit::nn::{tensor_from_view, Eager, Graph, Ops, ParamStore, Tensor, CPU};

const FIXTURE: &[u8] = include_bytes!("fixtures/arch_parity.safetensors");

/// Max |srkit − PyTorch| over the `[0, 1]` output (f32 arithmetic against
/// a float64 reference).
const TOLERANCE: f32 = 1e-4;

/// One of the four architectures, built from a fixture config.
enum Net {
    Edsr(Edsr),
    Rcan(Rcan),
    Rdn(Rdn),
    RrdbNet(RrdbNet),
}

impl Net {
    /// Builds `arch` with its default config overridden by `kwargs` (the
    /// PyTorch constructor arguments, which carry srkit's field names).
    fn build(arch: &str, kwargs: &Value, store: &mut ParamStore) -> Net {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        match arch {
            "edsr" => Net::Edsr(Edsr::new(store, config::<EdsrConfig>(kwargs), &mut rng).unwrap()),
            "rcan" => Net::Rcan(Rcan::new(store, config::<RcanConfig>(kwargs), &mut rng).unwrap()),
            "rdn" => Net::Rdn(Rdn::new(store, config::<RdnConfig>(kwargs), &mut rng).unwrap()),
            "rrdbnet" => Net::RrdbNet(
                RrdbNet::new(store, config::<RrdbNetConfig>(kwargs), &mut rng).unwrap(),
            ),
            other => panic!("unknown arch {other}"),
        }
    }

    fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> O::Value {
        match self {
            Net::Edsr(n) => n.forward(o, store, x),
            Net::Rcan(n) => n.forward(o, store, x),
            Net::Rdn(n) => n.forward(o, store, x),
            Net::RrdbNet(n) => n.forward(o, store, x),
        }
        .expect("forward")
    }
}

/// `C::default()` with the fields named in `kwargs` replaced; a kwarg that is
/// not a field of `C` fails the test.
fn config<C: Default + Serialize + DeserializeOwned>(kwargs: &Value) -> C {
    let mut v = serde_json::to_value(C::default()).unwrap();
    for (k, val) in kwargs.as_object().expect("kwargs object") {
        if k == "arch" {
            continue;
        }
        let field = v
            .get_mut(k)
            .unwrap_or_else(|| panic!("{k} is not a config field"));
        *field = val.clone();
    }
    serde_json::from_value(v).expect("config parses")
}

fn fixture() -> (SafeTensors<'static>, BTreeMap<String, String>) {
    let (_, header) = SafeTensors::read_metadata(FIXTURE).expect("fixture header");
    let meta = header.metadata().clone().expect("fixture metadata");
    let st = SafeTensors::deserialize(FIXTURE).expect("fixture parses");
    (st, meta.into_iter().collect())
}

fn get(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let view = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture lacks {name}"));
    tensor_from_view(name, &view).expect("f32 tensor")
}

/// Builds a case's network and loads its weights; every fixture weight must
/// be a parameter and every parameter must be in the fixture.
fn load_case(st: &SafeTensors<'_>, case: &str, kwargs: &Value) -> (Net, ParamStore) {
    let mut store = ParamStore::new();
    let net = Net::build(kwargs["arch"].as_str().unwrap(), kwargs, &mut store);
    let prefix = format!("{case}.param.");
    let mut loaded = BTreeSet::new();
    for name in st.names() {
        if let Some(key) = name.strip_prefix(&prefix) {
            store
                .set(key, get(st, name))
                .unwrap_or_else(|e| panic!("{case}: fixture key {key}: {e}"));
            loaded.insert(key.to_owned());
        }
    }
    for id in store.ids() {
        assert!(
            loaded.contains(store.name(id)),
            "{case}: parameter {} is not in the fixture",
            store.name(id)
        );
    }
    assert_eq!(loaded.len(), store.len(), "{case}");
    (net, store)
}

#[test]
fn matches_pytorch_eager_and_taped() {
    let (st, meta) = fixture();
    let configs: BTreeMap<String, Value> =
        serde_json::from_str(&meta["configs"]).expect("configs JSON");
    assert_eq!(configs.len(), 9, "cases in the fixture");
    let mut report = Vec::new();
    for (case, kwargs) in &configs {
        let (net, store) = load_case(&st, case, kwargs);
        let x = get(&st, &format!("{case}.input"));
        let want = get(&st, &format!("{case}.output"));

        let eager = net.forward(&mut Eager::new(&CPU), &store, &x);
        assert_eq!(eager.shape(), want.shape(), "{case}");
        let err = eager.max_abs_diff(&want).unwrap();

        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let yv = net.forward(&mut g, &store, &xv);
        let taped_vs_eager = g.value(yv).max_abs_diff(&eager).unwrap();

        report.push(format!(
            "{case}: max |srkit - torch| = {err:.2e}, taped vs eager {taped_vs_eager:.1e}"
        ));
        assert!(err <= TOLERANCE, "{case}: max error {err} > {TOLERANCE}");
        assert!(
            taped_vs_eager <= 1e-6,
            "{case}: taped and eager differ by {taped_vs_eager}"
        );
    }
    println!("{}", report.join("\n"));
}

#[test]
fn default_parameter_counts_match_pytorch() {
    let (_, meta) = fixture();
    let counts: BTreeMap<String, usize> =
        serde_json::from_str(&meta["default_param_counts"]).expect("counts JSON");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut ours = BTreeMap::new();
    let mut count = |name: &str, build: &dyn Fn(&mut ParamStore, &mut ChaCha8Rng)| {
        let mut store = ParamStore::new();
        build(&mut store, &mut rng);
        ours.insert(name.to_owned(), store.num_elements());
    };
    count("edsr", &|s, r| {
        Edsr::new(s, EdsrConfig::default(), r).map(drop).unwrap()
    });
    count("edsr_baseline", &|s, r| {
        Edsr::new(s, EdsrConfig::baseline(4), r).map(drop).unwrap()
    });
    count("rcan", &|s, r| {
        Rcan::new(s, RcanConfig::default(), r).map(drop).unwrap()
    });
    count("rdn", &|s, r| {
        Rdn::new(s, RdnConfig::default(), r).map(drop).unwrap()
    });
    count("rrdbnet", &|s, r| {
        RrdbNet::new(s, RrdbNetConfig::default(), r)
            .map(drop)
            .unwrap()
    });
    assert_eq!(ours, counts);
}

/// Sets every weight to 1 / fan-in and every bias to 0: each conv then
/// averages, nothing cancels and no (leaky) ReLU cuts a path, so an output
/// pixel is non-zero exactly where a non-negative input can reach it.
fn averaging_weights(store: &mut ParamStore) {
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        let t = store.get_mut(id);
        let v = match *t.shape() {
            [_, c_in, kh, kw] => 1.0 / (c_in * kh * kw) as f32,
            _ => 0.0,
        };
        t.data_mut().fill(v);
    }
}

/// The largest distance, in input pixels, from a changed input pixel to the
/// LR pixel of an output pixel it changes (over `u` alignments of the
/// changed pixel), for a net of scale `s` on `n x n` inputs.
fn measured_radius(net: &Net, store: &ParamStore, s: usize, u: usize, n: usize) -> usize {
    let mut radius = 0;
    for offset in 0..u {
        let c = n / 2 + offset;
        let mut x = Tensor::zeros(&[1, 3, n, n]);
        for ch in 0..3 {
            x.data_mut()[(ch * n + c) * n + c] = 1.0;
        }
        let y = net.forward(&mut Eager::new(&CPU), store, &x);
        let m = n * s;
        for (i, v) in y.data().iter().enumerate() {
            if *v != 0.0 {
                let (py, px) = ((i / m) % m, i % m);
                radius = radius.max((py / s).abs_diff(c)).max((px / s).abs_diff(c));
            }
        }
    }
    radius
}

#[test]
fn receptive_radius_is_what_the_pixels_see() {
    let no_shift = serde_json::json!({"img_range": 1.0, "rgb_mean": [0.0, 0.0, 0.0]});
    let merge = |a: Value, b: &Value| {
        let mut a = a;
        for (k, v) in b.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    let cases = [
        (
            "edsr",
            merge(
                serde_json::json!({"num_feat": 4, "num_block": 1, "upscale": 2}),
                &no_shift,
            ),
            2,
            1,
        ),
        (
            "edsr",
            merge(
                serde_json::json!({"num_feat": 4, "num_block": 2, "upscale": 3}),
                &no_shift,
            ),
            3,
            1,
        ),
        (
            "edsr",
            merge(
                serde_json::json!({"num_feat": 4, "num_block": 1, "upscale": 8}),
                &no_shift,
            ),
            8,
            1,
        ),
        (
            "rdn",
            serde_json::json!({"g0": 4, "d": 2, "c": 2, "g": 4, "upscale": 4, "img_range": 1.0}),
            4,
            1,
        ),
        (
            "rdn",
            serde_json::json!({"g0": 4, "d": 1, "c": 3, "g": 4, "upscale": 3, "img_range": 1.0}),
            3,
            1,
        ),
        (
            "rrdbnet",
            serde_json::json!({"scale": 4, "num_feat": 4, "num_block": 1, "num_grow_ch": 4}),
            4,
            1,
        ),
        (
            "rrdbnet",
            serde_json::json!({"scale": 2, "num_feat": 4, "num_block": 1, "num_grow_ch": 4}),
            2,
            2,
        ),
        (
            "rrdbnet",
            serde_json::json!({"scale": 1, "num_feat": 4, "num_block": 1, "num_grow_ch": 4}),
            1,
            4,
        ),
    ];
    for (arch, kwargs, s, u) in cases {
        let mut kwargs = kwargs;
        kwargs["arch"] = arch.into();
        let mut store = ParamStore::new();
        let net = Net::build(arch, &kwargs, &mut store);
        let documented = match &net {
            Net::Edsr(n) => n.config.receptive_radius(),
            Net::Rcan(n) => n.config.receptive_radius(),
            Net::Rdn(n) => n.config.receptive_radius(),
            Net::RrdbNet(n) => n.config.receptive_radius(),
        };
        averaging_weights(&mut store);
        // Room for the radius on both sides, a multiple of the unshuffle.
        let n = (2 * (documented + u) + 8).next_multiple_of(4);
        let got = measured_radius(&net, &store, s, u, n);
        assert_eq!(got, documented, "{arch} {kwargs}");
    }
}
