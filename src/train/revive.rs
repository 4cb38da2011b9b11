//! Reviving dead ReLU units.
//!
//! A unit (a channel of a convolution followed by a ReLU) whose
//! pre-activation is negative on every input outputs zero, gets no gradient
//! and never recovers: its filter is lost capacity for the rest of the run.
//! Adam's early large steps kill many this way: SRCNN 9-5-5 trained from
//! PyTorch's initialisation at learning rate 1e-3 had lost 13-25 of its 64
//! first-layer and 19-23 of its 32 second-layer units by the end (on Set5
//! and on BSD200 patches alike; their outgoing weights still at their
//! initial values).
//!
//! [`revive_dead_units`] finds the units that never fire on a probe set of
//! training patches and gives them a fresh start, as ReDo does (Sokar et al.,
//! "The Dormant Neuron Phenomenon in Deep Reinforcement Learning", ICML
//! 2023, arXiv:2302.12902): incoming weights and bias re-drawn from the
//! layer's initial distribution, outgoing weights set to zero, and their Adam
//! moments cleared. A dead unit contributed nothing, and a revived one
//! contributes nothing until its zero outgoing weights move, so the network
//! computes exactly the same function afterwards; only its gradients change.
//!
//! It applies to networks that are a plain chain `conv, ReLU, conv, ReLU, …,
//! conv` ([`Network::relu_chain`](crate::models::Network::relu_chain)).

use std::ops::Range;

use rand::Rng;

use crate::error::{Error, Result};
use crate::nn::{Adam, Conv2d, Eager, ParamId, ParamStore, Tensor, CPU};

/// What one [`revive_dead_units`] pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revival {
    /// Units revived in each hidden layer.
    pub per_layer: Vec<usize>,
    /// The elements of each parameter it rewrote, for state kept per weight
    /// besides Adam's (a [`WeightAverage`](crate::nn::WeightAverage)).
    pub rewritten: Vec<(ParamId, Range<usize>)>,
}

impl Revival {
    /// Units revived in all layers.
    pub fn total(&self) -> usize {
        self.per_layer.iter().sum()
    }
}

/// Finds the hidden units of `chain` (every convolution but the last, each
/// followed by a ReLU) whose output is zero on every sample of every
/// `probes` batch, and re-initialises them (see the module docs), clearing
/// their Adam moments.
pub fn revive_dead_units(
    chain: &[Conv2d],
    store: &mut ParamStore,
    adam: &mut Adam,
    probes: &[Tensor],
    rng: &mut impl Rng,
) -> Result<Revival> {
    let mut revival = Revival::default();
    let Some((_, hidden)) = chain.split_last() else {
        return Ok(revival);
    };
    if chain.iter().any(|c| c.config.groups != 1) {
        return Err(Error::Model(
            "dead-unit revival needs ungrouped convolutions".into(),
        ));
    }
    let alive = firing_units(hidden, store, probes)?;
    for (layer, (producer, consumer)) in hidden.iter().zip(&chain[1..]).enumerate() {
        let dead: Vec<usize> = (0..alive[layer].len())
            .filter(|&c| !alive[layer][c])
            .collect();
        for &unit in &dead {
            redraw_filter(producer, unit, store, rng, &mut revival.rewritten);
            silence_input(consumer, unit, store, &mut revival.rewritten);
        }
        revival.per_layer.push(dead.len());
    }
    for (id, range) in &revival.rewritten {
        adam.reset_moments(*id, range.clone());
    }
    Ok(revival)
}

/// For each hidden layer, whether each of its units is positive anywhere on
/// the probes.
fn firing_units(
    hidden: &[Conv2d],
    store: &ParamStore,
    probes: &[Tensor],
) -> Result<Vec<Vec<bool>>> {
    let mut alive: Vec<Vec<bool>> = hidden
        .iter()
        .map(|c| vec![false; store.get(c.weight).shape()[0]])
        .collect();
    let mut eager = Eager::new(&CPU);
    for x in probes {
        let mut h = x.clone();
        for (conv, alive) in hidden.iter().zip(&mut alive) {
            h = conv.forward_relu(&mut eager, store, &h)?;
            let (n, c) = (h.shape()[0], h.shape()[1]);
            let plane = h.numel() / (n * c).max(1);
            for (k, values) in h.data().chunks_exact(plane.max(1)).enumerate() {
                if values.iter().any(|&v| v > 0.0) {
                    alive[k % c] = true;
                }
            }
        }
    }
    Ok(alive)
}

/// Re-draws output channel `unit` of `conv` (its filter and bias) from
/// PyTorch's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, noting the
/// elements in `rewritten`.
fn redraw_filter(
    conv: &Conv2d,
    unit: usize,
    store: &mut ParamStore,
    rng: &mut impl Rng,
    rewritten: &mut Vec<(ParamId, Range<usize>)>,
) {
    let weight = store.get_mut(conv.weight);
    let per_unit = weight.numel() / weight.shape()[0];
    let bound = 1.0 / (per_unit.max(1) as f32).sqrt();
    let range = unit * per_unit..(unit + 1) * per_unit;
    for w in &mut weight.data_mut()[range.clone()] {
        *w = rng.gen_range(-bound..bound);
    }
    rewritten.push((conv.weight, range));
    if let Some(bias) = conv.bias {
        store.get_mut(bias).data_mut()[unit] = rng.gen_range(-bound..bound);
        rewritten.push((bias, unit..unit + 1));
    }
}

/// Zeroes the weights by which `conv` reads input channel `unit`, noting
/// them in `rewritten`.
fn silence_input(
    conv: &Conv2d,
    unit: usize,
    store: &mut ParamStore,
    rewritten: &mut Vec<(ParamId, Range<usize>)>,
) {
    let weight = store.get_mut(conv.weight);
    let (c_out, c_in) = (weight.shape()[0], weight.shape()[1]);
    let taps = weight.numel() / (c_out * c_in).max(1);
    for o in 0..c_out {
        let start = (o * c_in + unit) * taps;
        weight.data_mut()[start..start + taps].fill(0.0);
        rewritten.push((conv.weight, start..start + taps));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Model, Network};
    use crate::nn::AdamConfig;
    use rand::SeedableRng;

    fn probe(seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Tensor::uniform(&[2, 1, 24, 24], 0.0, 1.0, &mut rng)
    }

    #[test]
    fn dead_units_are_revived_without_changing_the_output() {
        let mut model = Model::new(
            "srcnn",
            serde_json::json!({"f1": 9, "f2": 5, "f3": 5, "n1": 8, "n2": 4}),
            vec![2],
            1,
        )
        .unwrap();
        let chain = model.network.relu_chain().unwrap();
        let mut adam = Adam::new(&model.params, AdamConfig::default());
        // Kill unit 3 of layer 1 and unit 1 of layer 2: a bias far below
        // anything the weights can reach on inputs in [0, 1].
        model.params.get_mut(chain[0].bias.unwrap()).data_mut()[3] = -100.0;
        model.params.get_mut(chain[1].bias.unwrap()).data_mut()[1] = -100.0;
        // Moments that must be cleared for the revived entries only.
        let before_adam = {
            let mut st = adam.state().clone();
            for m in st.m.iter_mut().chain(st.v.iter_mut()) {
                m.fill(0.5);
            }
            st
        };
        adam = Adam::from_state(&model.params, adam.config, before_adam).unwrap();
        let x = probe(7);
        let out_before = model.network.infer(&CPU, &model.params, &x).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let probes = [probe(1), probe(2)];
        let revived =
            revive_dead_units(&chain, &mut model.params, &mut adam, &probes, &mut rng).unwrap();
        assert_eq!(revived.per_layer, vec![1, 1]);
        assert_eq!(revived.total(), 2);

        let out_after = model.network.infer(&CPU, &model.params, &x).unwrap();
        assert_eq!(
            out_before, out_after,
            "revival must not change the function"
        );
        // Fresh bias within the initial bound, consumer weights zero.
        let b1 = model.params.get(chain[0].bias.unwrap()).data()[3];
        assert!(b1.abs() <= 1.0 / 9.0, "{b1}");
        // (Row 1 of layer 2 is the revived unit 1, re-drawn whole.)
        let w2 = model.params.get(chain[1].weight).data();
        for o in [0, 2, 3] {
            let start = (o * 8 + 3) * 25;
            assert!(w2[start..start + 25].iter().all(|&w| w == 0.0));
        }
        let w3 = model.params.get(chain[2].weight).data();
        assert!(w3[25..50].iter().all(|&w| w == 0.0));
        assert!(w3[..25].iter().any(|&w| w != 0.0));
        // Adam moments: cleared where revived, untouched elsewhere.
        let st = adam.state();
        let bias1 = chain[0].bias.unwrap().index();
        assert_eq!(st.m[bias1][3], 0.0);
        assert_eq!(st.v[bias1][2], 0.5);
        let w1 = chain[0].weight.index();
        assert!(st.v[w1][3 * 81..4 * 81].iter().all(|&v| v == 0.0));
        assert!(st.v[w1][2 * 81..3 * 81].iter().all(|&v| v == 0.5));
        // The healthy units were left alone: a second pass finds nothing
        // dead among them (a re-drawn unit may be dead again by chance, and
        // is then counted, but never a live one).
        let again =
            revive_dead_units(&chain, &mut model.params, &mut adam, &probes, &mut rng).unwrap();
        assert!(again.per_layer.iter().all(|&n| n <= 1), "{again:?}");
    }

    #[test]
    fn only_plain_relu_chains_are_supported() {
        let m = Model::new(
            "vdsr",
            serde_json::json!({"depth": 4, "features": 8, "bias": true}),
            vec![2],
            0,
        )
        .unwrap();
        assert_eq!(m.network.relu_chain().map(|c| c.len()), Some(4));
        let m = Model::new(
            "espcn",
            crate::models::default_config("espcn", 2).unwrap(),
            vec![2],
            0,
        )
        .unwrap();
        assert!(matches!(m.network, Network::Espcn(_)));
        assert!(m.network.relu_chain().is_none());
    }
}
