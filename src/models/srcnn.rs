//! SRCNN: "Image Super-Resolution Using Deep Convolutional Networks",
//! Chao Dong, Chen Change Loy, Kaiming He, Xiaoou Tang, TPAMI 2016
//! (arXiv:1501.00092; ECCV 2014 version "Learning a Deep Convolutional
//! Network for Image Super-Resolution"). Reference code: the authors'
//! Caffe/MATLAB release (mmlab.ie.cuhk.edu.hk/projects/SRCNN.html).
//!
//! The network sees the **Y channel of the bicubic-upscaled image** in
//! `[0, 1]` and returns the HR Y channel, through three convolutions:
//!
//! | layer | role | paper default (9-5-5) |
//! |---|---|---|
//! | `conv1` | patch extraction and representation, + ReLU | f1 = 9, n1 = 64 |
//! | `conv2` | non-linear mapping, + ReLU | f2 = 5, n2 = 32 |
//! | `conv3` | reconstruction | f3 = 5, 1 output |
//!
//! 9-5-5 has 57,281 parameters; the paper's 9-1-5 (8,129) and 9-3-5 variants
//! are [`SrcnnConfig::srcnn_915`] and [`SrcnnConfig::srcnn_935`].
//!
//! **Borders.** The paper trains with *valid* convolutions: a 33x33 input
//! patch gives a 21x21 output, compared with the centre of the target. srkit
//! keeps the layers valid and, for whole images, pads the *input* by the
//! receptive radius ((f1 + f2 + f3 − 3) / 2 = 8 for 9-5-5) replicating edge
//! pixels, so the output has the input's size and every output pixel is
//! computed the way training computed it — no zeros enter the network from
//! padding, which would darken the border. The same rule makes tiled
//! inference equal to whole-image inference (see [`crate::infer`]).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Conv2dConfig, Ops, ParamStore};

/// SRCNN hyper-parameters: filter sizes f1-f2-f3 and widths n1, n2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrcnnConfig {
    /// Patch-extraction filter size (paper: 9).
    pub f1: usize,
    /// Non-linear mapping filter size (paper: 1, 3 or 5).
    pub f2: usize,
    /// Reconstruction filter size (paper: 5).
    pub f3: usize,
    /// Feature maps after layer 1 (paper: 64).
    pub n1: usize,
    /// Feature maps after layer 2 (paper: 32).
    pub n2: usize,
}

impl Default for SrcnnConfig {
    fn default() -> Self {
        Self::srcnn_955()
    }
}

impl SrcnnConfig {
    /// The paper's best model, 9-5-5 with n1 = 64, n2 = 32.
    pub fn srcnn_955() -> Self {
        SrcnnConfig {
            f1: 9,
            f2: 5,
            f3: 5,
            n1: 64,
            n2: 32,
        }
    }

    /// The paper's base model, 9-1-5.
    pub fn srcnn_915() -> Self {
        SrcnnConfig {
            f2: 1,
            ..Self::srcnn_955()
        }
    }

    /// The 9-3-5 variant.
    pub fn srcnn_935() -> Self {
        SrcnnConfig {
            f2: 3,
            ..Self::srcnn_955()
        }
    }

    /// Pixels each output pixel sees on every side: (f1 + f2 + f3 − 3) / 2.
    pub fn receptive_radius(&self) -> usize {
        (self.f1 + self.f2 + self.f3 - 3) / 2
    }

    fn validate(&self) -> Result<()> {
        let odd = |f: usize| f % 2 == 1;
        if ![self.f1, self.f2, self.f3].into_iter().all(odd) {
            return Err(Error::Model(format!(
                "SRCNN filter sizes must be odd, got {}-{}-{}",
                self.f1, self.f2, self.f3
            )));
        }
        if self.n1 == 0 || self.n2 == 0 {
            return Err(Error::Model("SRCNN widths must be positive".into()));
        }
        Ok(())
    }
}

/// The SRCNN network. Parameter names follow a PyTorch port
/// (`conv1.weight`, `conv1.bias`, ...).
#[derive(Debug, Clone, Copy)]
pub struct Srcnn {
    /// Its hyper-parameters.
    pub config: SrcnnConfig,
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl Srcnn {
    /// Registers the layers in `store`, initialised as PyTorch does.
    pub fn new(store: &mut ParamStore, config: SrcnnConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let valid = Conv2dConfig::default();
        let c = config;
        Ok(Srcnn {
            config,
            conv1: Conv2d::new(store, "conv1", 1, c.n1, c.f1, true, valid, rng)?,
            conv2: Conv2d::new(store, "conv2", c.n1, c.n2, c.f2, true, valid, rng)?,
            conv3: Conv2d::new(store, "conv3", c.n2, 1, c.f3, true, valid, rng)?,
        })
    }

    /// Input and output: Y of the bicubic-upscaled image, valid
    /// convolutions (see the module docs on borders).
    pub fn io(&self) -> NetworkIo {
        NetworkIo {
            color: ColorSpace::Y,
            upscale: None,
            shrink: self.config.receptive_radius(),
            context: 0,
            exact_tiling: true,
            multiple: 1,
        }
    }

    /// The three convolutions in order: the network is the plain chain
    /// `conv1, ReLU, conv2, ReLU, conv3`.
    pub fn relu_chain(&self) -> Vec<Conv2d> {
        vec![self.conv1, self.conv2, self.conv3]
    }

    /// Forward pass: `[N, 1, H, W]` → `[N, 1, H − 2r, W − 2r]` (valid
    /// convolutions, `r` = receptive radius).
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = self.conv1.forward_relu(o, store, x)?;
        let h = self.conv2.forward_relu(o, store, &h)?;
        self.conv3.forward(o, store, &h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parameter_counts_match_the_paper() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for (cfg, n) in [
            (SrcnnConfig::srcnn_955(), 57_281),
            (SrcnnConfig::srcnn_915(), 8_129),
            (SrcnnConfig::srcnn_935(), 24_513),
        ] {
            let mut store = ParamStore::new();
            Srcnn::new(&mut store, cfg, &mut rng).unwrap();
            assert_eq!(store.num_elements(), n, "{cfg:?}");
        }
        assert_eq!(SrcnnConfig::srcnn_955().receptive_radius(), 8);
        assert_eq!(SrcnnConfig::srcnn_915().receptive_radius(), 6);
    }

    #[test]
    fn valid_convolutions_shrink_by_the_receptive_field() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let net = Srcnn::new(&mut store, SrcnnConfig::default(), &mut rng).unwrap();
        let x = crate::nn::Tensor::full(&[2, 1, 33, 33], 0.5);
        let y = net
            .forward(&mut crate::nn::Eager::new(&crate::nn::CPU), &store, &x)
            .unwrap();
        assert_eq!(y.shape(), &[2, 1, 17, 17]);
        let bad = SrcnnConfig {
            f2: 4,
            ..SrcnnConfig::default()
        };
        assert!(Srcnn::new(&mut ParamStore::new(), bad, &mut rng).is_err());
    }
}
