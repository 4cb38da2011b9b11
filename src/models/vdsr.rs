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

/// Re-draws `conv`'s weights from N(0, 2 / fan_out), fan_out = C_out · k²
/// (the PyTorch port's `normal_(0, sqrt(2 / n))`), and zeroes its bias.
fn he_normal(store: &mut ParamStore, conv: &Conv2d, rng: &mut impl Rng) {
    let w = store.get_mut(conv.weight);
    let shape = w.shape().to_vec();
    let fan_out = shape[0] * shape[2..].iter().product::<usize>();
    let std = (2.0 / fan_out.max(1) as f64).sqrt();
    for v in w.data_mut() {
        // Box-Muller: one normal sample from two uniform ones in (0, 1].
        let (u1, u2) = (1.0 - rng.gen::<f64>(), rng.gen::<f64>());
        *v = (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
    }
    if let Some(b) = conv.bias {
        store.get_mut(b).data_mut().fill(0.0);
    }
}

impl Vdsr {
    /// Registers the layers in `store`, initialised as the paper (He et
    /// al.'s normal initialisation) and the PyTorch port do: weights drawn
    /// from N(0, 2 / (9 · C_out)), biases zero. PyTorch's default
    /// (uniform, a third of that variance) shrinks the signal through 20
    /// ReLU layers until the residual branch starts at almost zero and
    /// learns nothing for the first 500+ steps (measured: Set5 at exactly
    /// bicubic's PSNR after 500 Adam steps at 2e-4, x2/x3/x4).
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
        for conv in &layers {
            he_normal(store, conv, rng);
        }
        Ok(Vdsr { config, layers })
    }

    /// Bicubic-upscaled Y in and out, same size.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(ColorSpace::Y, None, self.config.receptive_radius(), false)
    }

    /// The convolutions in order: a plain chain `conv, ReLU, …, conv` (the
    /// global skip adds the input after the last).
    pub fn relu_chain(&self) -> Vec<Conv2d> {
        self.layers.clone()
    }

    /// Forward pass: `[N, 1, H, W]` → `[N, 1, H, W]`, input + residual.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let (last, hidden) = self
            .layers
            .split_last()
            .ok_or_else(|| Error::Model("empty VDSR".into()))?;
        let mut h = None;
        for conv in hidden {
            h = Some(conv.forward_relu(o, store, h.as_ref().unwrap_or(x))?);
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

    #[test]
    fn weights_start_he_normal_and_biases_zero() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut store = ParamStore::new();
        let net = Vdsr::new(&mut store, VdsrConfig::default(), &mut rng).unwrap();
        let hidden = &net.layers[5];
        let w = store.get(hidden.weight).data();
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = w
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        // 36,864 samples of N(0, 2 / 576): the std within 2 %.
        let want = (2.0f64 / 576.0).sqrt();
        assert!(mean.abs() < 0.01 * want * 10.0, "mean {mean}");
        assert!((var.sqrt() / want - 1.0).abs() < 0.02, "std {}", var.sqrt());
        let b = hidden.bias.map(|b| store.get(b).data().to_vec()).unwrap();
        assert!(b.iter().all(|&v| v == 0.0));
    }
}
