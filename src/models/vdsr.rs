//! VDSR: "Accurate Image Super-Resolution Using Very Deep Convolutional
//! Networks", Jiwon Kim, Jung Kwon Lee, Kyoung Mu Lee, CVPR 2016
//! (arXiv:1511.04587). Parameter names follow the common PyTorch port
//! (twtygqyy/pytorch-vdsr: `input`, `residual_layer.{i}.conv`, `output`).
//!
//! VDSR sees the **Y channel of the bicubic-upscaled image** in `[0, 1]`,
//! like SRCNN, and learns only the residual: 20 convolutions of 3x3 with 64
//! channels (ReLU after all but the last, zero padding "to keep the sizes of
//! all feature maps the same"), and the input is added to the output. One
//! model serves several scales (the paper trains x2, x3 and x4 together).
//!
//! With biases (the paper's Caffe model) that is 665,921 parameters; the
//! PyTorch port drops biases (664,704), which the `bias` flag reproduces.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Conv2dConfig, Ops, ParamStore};

/// VDSR hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdsrConfig {
    /// Convolution layers in all (paper: 20).
    pub depth: usize,
    /// Channels of the hidden layers (paper: 64).
    pub features: usize,
    /// Whether the convolutions have biases (paper: yes).
    pub bias: bool,
}

impl Default for VdsrConfig {
    fn default() -> Self {
        VdsrConfig {
            depth: 20,
            features: 64,
            bias: true,
        }
    }
}

impl VdsrConfig {
    /// Output pixels see `depth` pixels on each side (one per 3x3 layer).
    pub fn receptive_radius(&self) -> usize {
        self.depth
    }
}

/// The VDSR network.
#[derive(Debug, Clone)]
pub struct Vdsr {
    /// Its hyper-parameters.
    pub config: VdsrConfig,
    layers: Vec<Conv2d>,
}

impl Vdsr {
    /// Registers the layers in `store` (PyTorch's default initialisation;
    /// the paper's He initialisation matters for plain SGD, less for Adam).
    pub fn new(store: &mut ParamStore, config: VdsrConfig, rng: &mut impl Rng) -> Result<Self> {
        let VdsrConfig {
            depth,
            features: f,
            bias,
        } = config;
        if depth < 2 || f == 0 {
            return Err(Error::Model(format!(
                "VDSR needs at least 2 layers and 1 feature, got {config:?}"
            )));
        }
        let cfg = Conv2dConfig {
            padding: 1,
            ..Conv2dConfig::default()
        };
        let mut layers = vec![Conv2d::new(store, "input", 1, f, 3, bias, cfg, rng)?];
        for i in 0..depth - 2 {
            let name = format!("residual_layer.{i}.conv");
            layers.push(Conv2d::new(store, &name, f, f, 3, bias, cfg, rng)?);
        }
        layers.push(Conv2d::new(store, "output", f, 1, 3, bias, cfg, rng)?);
        Ok(Vdsr { config, layers })
    }

    /// Bicubic-upscaled Y in and out, same size.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(ColorSpace::Y, None, self.config.receptive_radius(), false)
    }

    /// Forward pass: `[N, 1, H, W]` → `[N, 1, H, W]`, input + residual.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let (last, hidden) = self
            .layers
            .split_last()
            .ok_or_else(|| Error::Model("empty VDSR".into()))?;
        let mut h = None;
        for conv in hidden {
            let y = conv.forward(o, store, h.as_ref().unwrap_or(x))?;
            h = Some(o.relu(&y));
        }
        let residual = last.forward(o, store, h.as_ref().unwrap_or(x))?;
        o.add(&residual, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    #[test]
    fn parameter_counts_match_the_paper() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let net = Vdsr::new(&mut store, VdsrConfig::default(), &mut rng).unwrap();
        assert_eq!(store.num_elements(), 665_921);
        let no_bias = VdsrConfig {
            bias: false,
            ..VdsrConfig::default()
        };
        let mut store2 = ParamStore::new();
        Vdsr::new(&mut store2, no_bias, &mut rng).unwrap();
        assert_eq!(store2.num_elements(), 664_704);
        let x = Tensor::full(&[1, 1, 9, 6], 0.5);
        let y = net.forward(&mut Eager::new(&CPU), &store, &x).unwrap();
        assert_eq!(y.shape(), x.shape());
        assert!(net.io().exact_tiling);
    }
}
