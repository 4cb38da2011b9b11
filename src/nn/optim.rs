//! Optimisers.

use super::backend::{AdamStep, Backend, CPU};
use super::params::{Gradients, ParamId, ParamStore};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Adam hyper-parameters; the defaults are PyTorch's `torch.optim.Adam`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Decay of the first moment (0.9).
    pub beta1: f32,
    /// Decay of the second moment (0.999).
    pub beta2: f32,
    /// Denominator guard (1e-8).
    pub eps: f32,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Serializable optimiser state: one first- and second-moment buffer per
/// parameter (in [`ParamStore`] order) and the number of steps taken.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdamState {
    /// Steps taken so far.
    pub step: u64,
    /// First-moment estimates, one `Vec` per parameter.
    pub m: Vec<Vec<f32>>,
    /// Second-moment estimates, one `Vec` per parameter.
    pub v: Vec<Vec<f32>>,
}

/// Adam (Kingma & Ba, 2015, "Adam: A Method for Stochastic Optimization",
/// arXiv:1412.6980), with bias correction exactly as PyTorch's
/// single-tensor implementation. Parameters without a gradient in a step
/// are left untouched (their moments too), as in PyTorch.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Hyper-parameters (the learning rate may be changed between steps).
    pub config: AdamConfig,
    state: AdamState,
}

impl Adam {
    /// A fresh optimiser for the parameters of `store`.
    pub fn new(store: &ParamStore, config: AdamConfig) -> Self {
        let zeros: Vec<Vec<f32>> = store
            .ids()
            .map(|id| vec![0.0; store.get(id).numel()])
            .collect();
        Adam {
            config,
            state: AdamState {
                step: 0,
                m: zeros.clone(),
                v: zeros,
            },
        }
    }

    /// Restores an optimiser from a checkpointed state, checking it matches
    /// `store`'s parameter sizes.
    pub fn from_state(store: &ParamStore, config: AdamConfig, state: AdamState) -> Result<Self> {
        if state.m.len() != store.len() || state.v.len() != store.len() {
            return Err(Error::Model(format!(
                "optimiser state has {} parameters, the model {}",
                state.m.len(),
                store.len()
            )));
        }
        for id in store.ids() {
            let n = store.get(id).numel();
            if state.m[id.index()].len() != n || state.v[id.index()].len() != n {
                return Err(Error::Model(format!(
                    "optimiser state for {:?} has the wrong size",
                    store.name(id)
                )));
            }
        }
        Ok(Adam { config, state })
    }

    /// The state, for checkpointing.
    pub fn state(&self) -> &AdamState {
        &self.state
    }

    /// Clears both moments of elements `range` of parameter `id`, as if they
    /// had never had a gradient (for re-initialised weights).
    pub fn reset_moments(&mut self, id: ParamId, range: std::ops::Range<usize>) {
        let i = id.index();
        for moments in [&mut self.state.m[i], &mut self.state.v[i]] {
            if let Some(part) = moments.get_mut(range.clone()) {
                part.fill(0.0);
            }
        }
    }

    /// Applies one update to every parameter of `store` that has a gradient.
    pub fn step(&mut self, store: &mut ParamStore, grads: &Gradients) -> Result<()> {
        self.step_with(&CPU, store, grads)
    }

    /// [`step`](Self::step) on a given backend.
    pub fn step_with(
        &mut self,
        backend: &dyn Backend,
        store: &mut ParamStore,
        grads: &Gradients,
    ) -> Result<()> {
        if self.state.m.len() != store.len() {
            return Err(Error::Model("optimiser built for another model".into()));
        }
        self.state.step += 1;
        let hp = AdamStep {
            lr: self.config.lr,
            beta1: self.config.beta1,
            beta2: self.config.beta2,
            eps: self.config.eps,
            weight_decay: self.config.weight_decay,
            step: self.state.step,
        };
        let ids: Vec<_> = store.ids().collect();
        for id in ids {
            let Some(g) = grads.get(id) else { continue };
            let i = id.index();
            backend.adam_update(
                store.get_mut(id).data_mut(),
                g.data(),
                &mut self.state.m[i],
                &mut self.state.v[i],
                hp,
            )?;
        }
        Ok(())
    }
}

/// An exponential moving average of a model's weights, updated after every
/// optimiser step: `average = decay * average + (1 - decay) * weights`,
/// starting from the weights it is created with. Evaluating the average
/// instead of the last weights smooths out the step-to-step noise of the
/// optimiser, as BasicSR's `ema_decay` (0.999 for its EDSR, RCAN and
/// ESRGAN recipes) and Polyak averaging do.
#[derive(Debug, Clone)]
pub struct WeightAverage {
    decay: f32,
    average: ParamStore,
}

impl WeightAverage {
    /// An average that starts at `store`'s weights.
    pub fn new(store: &ParamStore, decay: f32) -> Result<Self> {
        Self::resume(store, store.clone(), decay)
    }

    /// An average continued from `average` (e.g. a checkpoint's), checked
    /// against `store`'s parameter names and shapes.
    pub fn resume(store: &ParamStore, average: ParamStore, decay: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::invalid(
                "ema",
                format!("decay {decay} must be in [0, 1)"),
            ));
        }
        let same_layout = average.len() == store.len()
            && store.ids().all(|id| {
                average.name(id) == store.name(id)
                    && average.get(id).shape() == store.get(id).shape()
            });
        if !same_layout {
            return Err(Error::Model(
                "weight average built for another model".into(),
            ));
        }
        Ok(WeightAverage { decay, average })
    }

    /// The averaged weights.
    pub fn weights(&self) -> &ParamStore {
        &self.average
    }

    /// Moves the average towards `store`'s current weights.
    pub fn update(&mut self, store: &ParamStore) {
        let rate = 1.0 - self.decay;
        for id in store.ids() {
            let current = store.get(id).data();
            for (a, &w) in self.average.get_mut(id).data_mut().iter_mut().zip(current) {
                *a += rate * (w - *a);
            }
        }
    }

    /// Sets elements `range` of parameter `id` to `store`'s values, for
    /// weights re-initialised outside the optimiser, whose history no
    /// longer describes them.
    pub fn reset_to(&mut self, store: &ParamStore, id: ParamId, range: std::ops::Range<usize>) {
        let source = &store.get(id).data()[range.clone()];
        self.average.get_mut(id).data_mut()[range].copy_from_slice(source);
    }
}
