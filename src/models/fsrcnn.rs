//! FSRCNN: "Accelerating the Super-Resolution Convolutional Neural
//! Network", Chao Dong, Chen Change Loy, Xiaoou Tang, ECCV 2016
//! (arXiv:1608.00367). Parameter names follow the widely used PyTorch port
//! yjn870/FSRCNN-pytorch, whose released weights srkit imports.
//!
//! FSRCNN works on the **LR Y channel** in `[0, 1]` and upsamples at the end
//! with a transposed convolution, so it costs a fraction of SRCNN:
//!
//! | part | layers | paper |
//! |---|---|---|
//! | `first_part` | conv 5x5 1→d + PReLU | feature extraction, d = 56 |
//! | `mid_part` | conv 1x1 d→s + PReLU; m x (conv 3x3 s→s + PReLU); conv 1x1 s→d + PReLU | shrinking, mapping, expanding: s = 12, m = 4 |
//! | `last_part` | transposed conv 9x9 d→1, stride = scale, padding 4, output padding scale − 1 | deconvolution |
//!
//! FSRCNN(56, 12, 4) has 12,809 parameters at every scale. Convolutions pad
//! by `k / 2` with zeros, so the output is exactly `scale` times the input.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig, Ops, ParamStore, Prelu};

/// FSRCNN hyper-parameters: FSRCNN(d, s, m) at one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsrcnnConfig {
    /// Upscaling factor (the transposed convolution's stride).
    pub scale: usize,
    /// Feature maps after extraction and expansion (paper: 56).
    pub d: usize,
    /// Feature maps in the shrunk mapping space (paper: 12).
    pub s: usize,
    /// Mapping layers (paper: 4).
    pub m: usize,
}

impl FsrcnnConfig {
    /// The paper's FSRCNN(56, 12, 4) at `scale`.
    pub fn paper(scale: usize) -> Self {
        FsrcnnConfig {
            scale,
            d: 56,
            s: 12,
            m: 4,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.scale == 0 || self.d == 0 || self.s == 0 {
            return Err(Error::Model(format!(
                "FSRCNN needs a positive scale, d and s, got {self:?}"
            )));
        }
        Ok(())
    }

    /// LR pixels each output pixel depends on, per side: 2 (5x5) + m (3x3)
    /// + what the 9x9 transposed convolution reaches back, ⌈4 / scale⌉ + 1.
    pub fn receptive_radius(&self) -> usize {
        2 + self.m + 4usize.div_ceil(self.scale) + 1
    }
}

impl Default for FsrcnnConfig {
    fn default() -> Self {
        Self::paper(3)
    }
}

/// A convolution followed by a per-channel PReLU.
#[derive(Debug, Clone, Copy)]
struct ConvPrelu {
    conv: Conv2d,
    act: Prelu,
}

/// The FSRCNN network.
#[derive(Debug, Clone)]
pub struct Fsrcnn {
    /// Its hyper-parameters.
    pub config: FsrcnnConfig,
    layers: Vec<ConvPrelu>,
    last: ConvTranspose2d,
}

impl Fsrcnn {
    /// Registers the layers in `store` (PyTorch's default initialisation).
    pub fn new(store: &mut ParamStore, config: FsrcnnConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let FsrcnnConfig { scale, d, s, m } = config;
        let mut layers = Vec::with_capacity(m + 3);
        let mut add =
            |store: &mut ParamStore, conv: &str, act: &str, c_in, c_out, k| -> Result<()> {
                layers.push(ConvPrelu {
                    conv: Conv2d::same(store, conv, c_in, c_out, k, rng)?,
                    act: Prelu::new(store, act, c_out)?,
                });
                Ok(())
            };
        add(store, "first_part.0", "first_part.1", 1, d, 5)?;
        add(store, "mid_part.0", "mid_part.1", d, s, 1)?;
        for i in 0..m {
            let (conv, act) = (
                format!("mid_part.{}", 2 + 2 * i),
                format!("mid_part.{}", 3 + 2 * i),
            );
            add(store, &conv, &act, s, s, 3)?;
        }
        let (conv, act) = (
            format!("mid_part.{}", 2 + 2 * m),
            format!("mid_part.{}", 3 + 2 * m),
        );
        add(store, &conv, &act, s, d, 1)?;
        let last_cfg = ConvTranspose2dConfig {
            stride: scale,
            padding: 4,
            output_padding: scale - 1,
            ..ConvTranspose2dConfig::default()
        };
        let last = ConvTranspose2d::new(store, "last_part", d, 1, 9, true, last_cfg, rng)?;
        Ok(Fsrcnn {
            config,
            layers,
            last,
        })
    }

    /// LR Y in, HR Y out; zero padding keeps sizes exact.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(
            ColorSpace::Y,
            Some(self.config.scale),
            self.config.receptive_radius(),
            false,
        )
    }

    /// Forward pass: `[N, 1, H, W]` → `[N, 1, H scale, W scale]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let mut layers = self.layers.iter();
        let first = layers
            .next()
            .ok_or_else(|| Error::Model("empty FSRCNN".into()))?;
        let mut h = first.conv.forward(o, store, x)?;
        h = first.act.forward(o, store, &h)?;
        for l in layers {
            h = l.conv.forward(o, store, &h)?;
            h = l.act.forward(o, store, &h)?;
        }
        self.last.forward(o, store, &h)
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
        for scale in [2, 3, 4] {
            let mut store = ParamStore::new();
            let net = Fsrcnn::new(&mut store, FsrcnnConfig::paper(scale), &mut rng).unwrap();
            assert_eq!(store.num_elements(), 12_809);
            let x = Tensor::full(&[1, 1, 7, 5], 0.5);
            let y = net.forward(&mut Eager::new(&CPU), &store, &x).unwrap();
            assert_eq!(y.shape(), &[1, 1, 7 * scale, 5 * scale]);
        }
        assert!(Fsrcnn::new(&mut ParamStore::new(), FsrcnnConfig::paper(0), &mut rng).is_err());
    }
}
