//! ESPCN: "Real-Time Single Image and Video Super-Resolution Using an
//! Efficient Sub-Pixel Convolutional Neural Network", Wenzhe Shi et al.,
//! CVPR 2016 (arXiv:1609.05158). Parameter names follow the PyTorch port
//! yjn870/ESPCN-pytorch (`first_part.{0,2}`, `last_part.0`).
//!
//! ESPCN works on the **LR Y channel** in `[0, 1]`: conv 5x5 1→64 + tanh,
//! conv 3x3 64→32 + tanh, conv 3x3 32→r² and a pixel shuffle by r (the
//! paper's f1 = 5, n1 = 64, f2 = 3, n2 = 32, f3 = 3). 22,729 parameters at
//! x3. Convolutions pad by `k / 2` with zeros.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2d, Ops, ParamStore};

/// ESPCN hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspcnConfig {
    /// Upscaling factor r.
    pub scale: usize,
    /// Feature maps after the first layer (paper: 64).
    pub n1: usize,
    /// Feature maps after the second layer (paper: 32).
    pub n2: usize,
}

impl EspcnConfig {
    /// The paper's network at `scale`.
    pub fn paper(scale: usize) -> Self {
        EspcnConfig {
            scale,
            n1: 64,
            n2: 32,
        }
    }
}

impl Default for EspcnConfig {
    fn default() -> Self {
        Self::paper(3)
    }
}

/// The ESPCN network.
#[derive(Debug, Clone, Copy)]
pub struct Espcn {
    /// Its hyper-parameters.
    pub config: EspcnConfig,
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl Espcn {
    /// Registers the layers in `store`.
    pub fn new(store: &mut ParamStore, config: EspcnConfig, rng: &mut impl Rng) -> Result<Self> {
        let EspcnConfig { scale, n1, n2 } = config;
        if scale == 0 || n1 == 0 || n2 == 0 {
            return Err(Error::Model(format!("bad ESPCN config {config:?}")));
        }
        Ok(Espcn {
            config,
            conv1: Conv2d::same(store, "first_part.0", 1, n1, 5, rng)?,
            conv2: Conv2d::same(store, "first_part.2", n1, n2, 3, rng)?,
            conv3: Conv2d::same(store, "last_part.0", n2, scale * scale, 3, rng)?,
        })
    }

    /// LR Y in, HR Y out.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(ColorSpace::Y, Some(self.config.scale), 4, false)
    }

    /// Forward pass: `[N, 1, H, W]` → `[N, 1, H r, W r]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = self.conv1.forward(o, store, x)?;
        let h = o.activation(&h, Activation::Tanh);
        let h = self.conv2.forward(o, store, &h)?;
        let h = o.activation(&h, Activation::Tanh);
        let h = self.conv3.forward(o, store, &h)?;
        o.pixel_shuffle(&h, self.config.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    #[test]
    fn parameter_count_and_output_size() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let net = Espcn::new(&mut store, EspcnConfig::paper(3), &mut rng).unwrap();
        assert_eq!(store.num_elements(), 22_729);
        let x = Tensor::full(&[1, 1, 4, 5], 0.5);
        let y = net.forward(&mut Eager::new(&CPU), &store, &x).unwrap();
        assert_eq!(y.shape(), &[1, 1, 12, 15]);
    }
}
