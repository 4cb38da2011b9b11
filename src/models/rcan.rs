//! RCAN: "Image Super-Resolution Using Very Deep Residual Channel Attention
//! Networks", Yulun Zhang, Kunpeng Li, Kai Li, Lichen Wang, Bineng Zhong, Yun
//! Fu, ECCV 2018 (arXiv:1807.02758). Reference code: the authors' release
//! (github.com/yulunzhang/RCAN, built on EDSR-PyTorch); srkit follows BasicSR's
//! port (XPixelGroup/BasicSR, `basicsr/archs/rcan_arch.py`), whose
//! `state_dict` keys are the parameter names here.
//!
//! RGB in `[0, 1]` in and out, with EDSR's mean shift and range (see
//! [`super::edsr`]). Building blocks, as in BasicSR:
//!
//! - `ChannelAttention`: global average pool → 1x1 conv F → F/r → ReLU →
//!   1x1 conv F/r → F → sigmoid, multiplied into the features
//!   (`attention.1`, `attention.3`; r = `squeeze_factor`).
//! - `RCAB`: `x + res_scale · CA(conv(relu(conv(x))))` (`rcab.0`, `rcab.2`,
//!   `rcab.3`).
//! - `ResidualGroup`: `x + conv(RCAB × B (x))` (`residual_group.{i}`, `conv`).
//! - `RCAN`: conv_first, G residual groups (`body.{g}`), conv_after_body plus
//!   the long skip, BasicSR `Upsample`, conv_last.
//!
//! The paper's model ([`RcanConfig::paper`], [`Default`] at x4): F = 64,
//! G = 10 groups of B = 20 RCABs, r = 16, res_scale 1, img_range 255:
//! 15,444,643 / 15,629,283 / 15,592,355 parameters at x2 / x3 / x4
//! (PyTorch's counts, `scripts/make_arch_fixtures.py`). BasicSR's `RCAN`
//! defaults to `num_block = 16`; its training configs, like the paper, use 20.
//!
//! **Receptive field.** Each output pixel sees G·(2B + 1) + 4 input pixels on
//! each side through the convolutions (414 for the paper's model), and the
//! whole image through channel attention's global pooling, so tiled inference
//! only approximates whole-image inference.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::edsr::{check_range, scaled, ResidualFrame, Upsample, DIV2K_RGB_MEAN};
use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2d, Ops, ParamStore};

/// RCAN hyper-parameters (BasicSR `RCAN` arguments; 3 input and output
/// channels, RGB).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RcanConfig {
    /// Feature channels F (paper: 64).
    pub num_feat: usize,
    /// Residual groups G (paper: 10).
    pub num_group: usize,
    /// RCABs per group B (paper: 20).
    pub num_block: usize,
    /// Channel-attention reduction r: the squeezed width is F / r, rounded
    /// down (paper: 16).
    pub squeeze_factor: usize,
    /// Upscaling factor: 2ⁿ or 3.
    pub upscale: usize,
    /// Scale of each RCAB's residual branch (paper: 1).
    pub res_scale: f32,
    /// Value range the network computes in (255 for the released weights).
    pub img_range: f32,
    /// RGB mean subtracted from the input and added back, in `[0, 1]`.
    pub rgb_mean: [f32; 3],
}

impl Default for RcanConfig {
    /// The paper's RCAN at x4.
    fn default() -> Self {
        Self::paper(4)
    }
}

impl RcanConfig {
    /// The paper's RCAN: 10 groups of 20 RCABs, 64 channels, reduction 16.
    pub fn paper(upscale: usize) -> Self {
        RcanConfig {
            num_feat: 64,
            num_group: 10,
            num_block: 20,
            squeeze_factor: 16,
            upscale,
            res_scale: 1.0,
            img_range: 255.0,
            rgb_mean: DIV2K_RGB_MEAN,
        }
    }

    /// Input pixels each output pixel sees on every side through the
    /// convolutions: G·(2B + 1) + 4 (one less at x1); channel attention adds
    /// the whole image.
    pub fn receptive_radius(&self) -> usize {
        self.num_group * (2 * self.num_block + 1) + 3 + usize::from(self.upscale > 1)
    }

    /// Checks the config; the error says what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.num_feat == 0 {
            return Err(Error::Model("RCAN num_feat must be positive".into()));
        }
        if self.squeeze_factor == 0 || self.squeeze_factor > self.num_feat {
            return Err(Error::Model(format!(
                "RCAN squeeze_factor must be between 1 and num_feat ({}), got {}",
                self.num_feat, self.squeeze_factor
            )));
        }
        if !Upsample::supports(self.upscale) {
            return Err(Error::Model(format!(
                "RCAN upscale {} is not supported (2^n or 3)",
                self.upscale
            )));
        }
        check_range("RCAN", self.res_scale, self.img_range, self.rgb_mean)
    }
}

/// BasicSR `ChannelAttention`: `x · sigmoid(up(relu(down(gap(x)))))`.
#[derive(Debug, Clone, Copy)]
pub struct ChannelAttention {
    down: Conv2d,
    up: Conv2d,
}

impl ChannelAttention {
    /// Registers `{prefix}.attention.1` (1x1, F → F / `squeeze_factor`) and
    /// `{prefix}.attention.3` (1x1, back to F).
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        num_feat: usize,
        squeeze_factor: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let squeezed = num_feat / squeeze_factor.max(1);
        Ok(ChannelAttention {
            down: Conv2d::same(
                store,
                &format!("{prefix}.attention.1"),
                num_feat,
                squeezed,
                1,
                rng,
            )?,
            up: Conv2d::same(
                store,
                &format!("{prefix}.attention.3"),
                squeezed,
                num_feat,
                1,
                rng,
            )?,
        })
    }

    /// Rescales each channel of `[N, F, H, W]` by its attention weight.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let w = o.global_avg_pool(x)?;
        let w = self.down.forward(o, store, &w)?;
        let w = o.relu(&w);
        let w = self.up.forward(o, store, &w)?;
        let w = o.activation(&w, Activation::Sigmoid);
        o.mul(x, &w)
    }
}

/// BasicSR `RCAB`: `x + res_scale · CA(conv2(relu(conv1(x))))`.
#[derive(Debug, Clone, Copy)]
pub struct Rcab {
    conv1: Conv2d,
    conv2: Conv2d,
    attention: ChannelAttention,
    res_scale: f32,
}

impl Rcab {
    /// Registers `{prefix}.rcab.0`, `{prefix}.rcab.2` and the attention
    /// `{prefix}.rcab.3`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        config: &RcanConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let f = config.num_feat;
        Ok(Rcab {
            conv1: Conv2d::same(store, &format!("{prefix}.rcab.0"), f, f, 3, rng)?,
            conv2: Conv2d::same(store, &format!("{prefix}.rcab.2"), f, f, 3, rng)?,
            attention: ChannelAttention::new(
                store,
                &format!("{prefix}.rcab.3"),
                f,
                config.squeeze_factor,
                rng,
            )?,
            res_scale: config.res_scale,
        })
    }

    /// The block on `[N, F, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = self.conv1.forward_relu(o, store, x)?;
        let h = self.conv2.forward(o, store, &h)?;
        let h = self.attention.forward(o, store, &h)?;
        let h = scaled(o, h, self.res_scale);
        o.add(&h, x)
    }
}

/// BasicSR `ResidualGroup`: `x + conv(RCAB_B(... RCAB_1(x)))`.
#[derive(Debug, Clone)]
pub struct ResidualGroup {
    blocks: Vec<Rcab>,
    conv: Conv2d,
}

impl ResidualGroup {
    /// Registers `{prefix}.residual_group.{i}` and `{prefix}.conv`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        config: &RcanConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let blocks = (0..config.num_block)
            .map(|i| Rcab::new(store, &format!("{prefix}.residual_group.{i}"), config, rng))
            .collect::<Result<_>>()?;
        let f = config.num_feat;
        Ok(ResidualGroup {
            blocks,
            conv: Conv2d::same(store, &format!("{prefix}.conv"), f, f, 3, rng)?,
        })
    }

    /// The group on `[N, F, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = super::chain(o, x, &self.blocks, |b, o, h| b.forward(o, store, h))?;
        let res = self.conv.forward(o, store, &h)?;
        o.add(&res, x)
    }
}

/// The RCAN network (parameter names: BasicSR's `state_dict` keys,
/// `conv_first.*`, `body.{g}.residual_group.{b}.rcab.{0,2}.*`,
/// `body.{g}.residual_group.{b}.rcab.3.attention.{1,3}.*`, `body.{g}.conv.*`,
/// `conv_after_body.*`, `upsample.{0,2,..}.*`, `conv_last.*`).
#[derive(Debug, Clone)]
pub struct Rcan {
    /// Its hyper-parameters.
    pub config: RcanConfig,
    frame: ResidualFrame,
    body: Vec<ResidualGroup>,
}

impl Rcan {
    /// Validates `config` and registers the layers in `store`, initialised
    /// as PyTorch does.
    pub fn new(store: &mut ParamStore, config: RcanConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let c = config;
        let (frame, body) = ResidualFrame::new(
            store,
            c.num_feat,
            c.upscale,
            c.img_range,
            c.rgb_mean,
            rng,
            |store, rng| {
                (0..c.num_group)
                    .map(|g| ResidualGroup::new(store, &format!("body.{g}"), &c, rng))
                    .collect::<Result<Vec<_>>>()
            },
        )?;
        Ok(Rcan {
            config,
            frame,
            body,
        })
    }

    /// Input: the LR image, RGB in `[0, 1]`; output `upscale` times larger.
    /// Channel attention pools over the whole input (`global`).
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(
            ColorSpace::Rgb,
            Some(self.config.upscale),
            self.config.receptive_radius(),
            true,
        )
    }

    /// Forward pass: `[N, 3, H, W]` → `[N, 3, sH, sW]`, RGB in `[0, 1]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        self.frame.forward(o, store, x, |o, x| {
            super::chain(o, x, &self.body, |g, o, h| g.forward(o, store, h))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    #[test]
    fn parameter_count_matches_pytorch() {
        // PyTorch's count of BasicSR's RCAN with num_block 20 at x4
        // (scripts/make_arch_fixtures.py); the paper reports 15.59M.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let net = Rcan::new(&mut store, RcanConfig::default(), &mut rng).expect("builds");
        assert_eq!(store.num_elements(), 15_592_355);
        assert_eq!(net.config, RcanConfig::paper(4));
        assert_eq!(net.config.receptive_radius(), 414);
        assert!(!net.io().exact_tiling);
    }

    #[test]
    fn shapes_and_bad_configs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let small = |upscale| RcanConfig {
            num_feat: 8,
            num_group: 1,
            num_block: 1,
            squeeze_factor: 4,
            ..RcanConfig::paper(upscale)
        };
        for upscale in [2, 3] {
            let mut store = ParamStore::new();
            let net = Rcan::new(&mut store, small(upscale), &mut rng).expect("builds");
            let x = Tensor::full(&[2, 3, 5, 4], 0.5);
            let y = net
                .forward(&mut Eager::new(&CPU), &store, &x)
                .expect("runs");
            assert_eq!(y.shape(), &[2, 3, 5 * upscale, 4 * upscale]);
        }
        let mut bad = |cfg: RcanConfig, what: &str| {
            let e = Rcan::new(&mut ParamStore::new(), cfg, &mut rng).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        };
        bad(small(6), "upscale 6");
        bad(
            RcanConfig {
                squeeze_factor: 0,
                ..small(2)
            },
            "squeeze_factor",
        );
        bad(
            RcanConfig {
                squeeze_factor: 9,
                ..small(2)
            },
            "squeeze_factor",
        );
        bad(
            RcanConfig {
                img_range: -1.0,
                ..small(2)
            },
            "img_range",
        );
    }
}
