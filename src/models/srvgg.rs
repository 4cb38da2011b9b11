//! SRVGGNetCompact: the compact VGG-style network of Real-ESRGAN
//! ("Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
//! Synthetic Data", Xintao Wang, Liangbin Xie, Chao Dong, Ying Shan, ICCVW
//! 2021, arXiv:2107.10833; `realesrgan/archs/srvgg_arch.py`), the
//! architecture of the `realesr-animevideov3` and `realesr-general-x4v3`
//! models.
//!
//! It works on **LR RGB** in `[0, 1]`: `body.0` conv 3x3 in→F and its
//! activation at `body.1`, then `num_conv` x (conv 3x3 F→F at `body.{2k}`,
//! activation at `body.{2k+1}`), a last conv F→out·r² at
//! `body.{2·num_conv+2}`, a pixel shuffle by r, plus the input upsampled by
//! nearest neighbour. Defaults (animevideov3): F = 64, 16 convs, PReLU (one slope
//! per channel), x4: 621,424 parameters.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2d, Ops, ParamStore, Prelu};

/// The activation between convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrvggActivation {
    /// Per-channel PReLU (the released models).
    Prelu,
    /// ReLU.
    Relu,
    /// LeakyReLU with slope 0.1.
    Lrelu,
}

/// SRVGGNetCompact hyper-parameters (Real-ESRGAN's argument names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrvggConfig {
    /// Input channels (3).
    pub num_in_ch: usize,
    /// Output channels (3).
    pub num_out_ch: usize,
    /// Hidden channels (64).
    pub num_feat: usize,
    /// Hidden convolutions (16 for animevideov3, 32 for general-x4v3).
    pub num_conv: usize,
    /// Upscaling factor (4).
    pub upscale: usize,
    /// Activation type.
    pub act_type: SrvggActivation,
}

impl Default for SrvggConfig {
    fn default() -> Self {
        SrvggConfig {
            num_in_ch: 3,
            num_out_ch: 3,
            num_feat: 64,
            num_conv: 16,
            upscale: 4,
            act_type: SrvggActivation::Prelu,
        }
    }
}

/// The SRVGGNetCompact network.
#[derive(Debug, Clone)]
pub struct Srvgg {
    /// Its hyper-parameters.
    pub config: SrvggConfig,
    convs: Vec<Conv2d>,
    prelus: Vec<Prelu>,
}

impl Srvgg {
    /// Registers the layers in `store`.
    pub fn new(store: &mut ParamStore, config: SrvggConfig, rng: &mut impl Rng) -> Result<Self> {
        let c = config;
        if c.num_in_ch != 3 || c.num_out_ch != 3 || c.num_feat == 0 || c.upscale == 0 {
            return Err(Error::Model(format!(
                "SRVGGNetCompact: srkit runs 3-channel models with positive width and \
                 scale, got {c:?}"
            )));
        }
        let mut convs = vec![Conv2d::same(
            store,
            "body.0",
            c.num_in_ch,
            c.num_feat,
            3,
            rng,
        )?];
        let mut prelus = Vec::new();
        for k in 0..=c.num_conv {
            if c.act_type == SrvggActivation::Prelu {
                prelus.push(Prelu::new(
                    store,
                    &format!("body.{}", 2 * k + 1),
                    c.num_feat,
                )?);
            }
            let (name, c_out) = if k < c.num_conv {
                (format!("body.{}", 2 * k + 2), c.num_feat)
            } else {
                (
                    format!("body.{}", 2 * k + 2),
                    c.num_out_ch * c.upscale * c.upscale,
                )
            };
            convs.push(Conv2d::same(store, &name, c.num_feat, c_out, 3, rng)?);
        }
        Ok(Srvgg {
            config,
            convs,
            prelus,
        })
    }

    /// LR RGB in, HR RGB out.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(
            ColorSpace::Rgb,
            Some(self.config.upscale),
            self.config.num_conv + 2,
            false,
        )
    }

    /// Forward pass: `[N, 3, H, W]` → `[N, 3, H r, W r]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let (last, hidden) = self
            .convs
            .split_last()
            .ok_or_else(|| Error::Model("empty SRVGGNetCompact".into()))?;
        let mut h = None;
        for (k, conv) in hidden.iter().enumerate() {
            let y = conv.forward(o, store, h.as_ref().unwrap_or(x))?;
            h = Some(match self.config.act_type {
                SrvggActivation::Prelu => self.prelus[k].forward(o, store, &y)?,
                SrvggActivation::Relu => o.relu(&y),
                SrvggActivation::Lrelu => o.activation(&y, Activation::LeakyRelu(0.1)),
            });
        }
        let y = last.forward(o, store, h.as_ref().unwrap_or(x))?;
        let y = o.pixel_shuffle(&y, self.config.upscale)?;
        let base = o.upsample_nearest(x, self.config.upscale)?;
        o.add(&y, &base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    #[test]
    fn parameter_count_and_layout_match_realesr_animevideov3() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let net = Srvgg::new(&mut store, SrvggConfig::default(), &mut rng).unwrap();
        // 3·64·9+64 + 16·(64·64·9+64) + 64·48·9+48 + 17·64 (PReLU slopes).
        assert_eq!(store.num_elements(), 1_792 + 16 * 36_928 + 27_696 + 17 * 64);
        assert_eq!(
            store.get(store.id("body.34.weight").unwrap()).shape(),
            &[48, 64, 3, 3]
        );
        assert_eq!(
            store.get(store.id("body.33.weight").unwrap()).shape(),
            &[64]
        );
        let x = Tensor::full(&[1, 3, 5, 4], 0.5);
        let y = net.forward(&mut Eager::new(&CPU), &store, &x).unwrap();
        assert_eq!(y.shape(), &[1, 3, 20, 16]);
    }
}
