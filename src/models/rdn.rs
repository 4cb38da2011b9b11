//! RDN: "Residual Dense Network for Image Super-Resolution", Yulun Zhang,
//! Yapeng Tian, Yu Kong, Bineng Zhong, Yun Fu, CVPR 2018 (arXiv:1802.08797).
//! Reference code: the authors' Torch release (github.com/yulunzhang/RDN) and
//! its PyTorch port in EDSR-PyTorch (`src/model/rdn.py`), whose `state_dict`
//! keys are the parameter names here (BasicSR has no RDN).
//!
//! ```text
//! F₋₁ = SFENet1(x)                      3 → G0, 3x3
//! F₀  = SFENet2(F₋₁)                    G0 → G0, 3x3
//! F_d = RDB_d(F_{d−1}), d = 1..D        RDBs.{d−1}
//! F   = GFF(concat(F₁ .. F_D)) + F₋₁    GFF.0: 1x1 D·G0 → G0; GFF.1: 3x3
//! y   = UPNet(F)
//! ```
//!
//! A residual dense block (RDB) grows its input by G channels C times, each
//! `RDBs.{d}.convs.{c}.conv.0` a 3x3 conv (G0 + cG → G) + ReLU whose output is
//! concatenated after its input, then fuses back to G0 with the 1x1
//! `RDBs.{d}.LFF` and adds its input. `UPNet` is, at x2 and x3, `UPNet.0`
//! (3x3, G0 → G·r²), PixelShuffle(r), `UPNet.2` (3x3, G → 3); at x4 two x2
//! stages, `UPNet.0` (G0 → 4G), shuffle, `UPNet.2` (G → 4G), shuffle,
//! `UPNet.4` (G → 3).
//!
//! **Range.** EDSR-PyTorch trains RDN on RGB in `[0, 255]` (`--rgb_range
//! 255`) without a mean shift. srkit's interface is RGB in `[0, 1]`: the
//! network multiplies its input by `img_range` and divides its output by
//! it, so weights trained at `[0, 255]` (`img_range` 255, the default) and at
//! `[0, 1]` (`img_range` 1) both load unchanged.
//!
//! The paper's model ([`RdnConfig::paper`], EDSR-PyTorch's `RDNconfig` "B",
//! [`Default`] at x4): G0 = 64, D = 16, C = 8, G = 64, 3x3 kernels:
//! 22,123,395 / 22,308,035 / 22,271,107 parameters at x2 / x3 / x4. Config
//! "A" ([`RdnConfig::config_a`]: D = 20, C = 6, G = 32) has 5,578,787 at x4
//! (PyTorch's counts, `scripts/make_arch_fixtures.py`). EDSR-PyTorch's
//! `--RDNkSize` (kernel of the SFE, GFF and UP convs, default 3) is fixed
//! at 3.
//!
//! **Receptive field.** An output pixel sees D·C + 5 input pixels on each
//! side (133 for the paper's model): the two SFE convs, C per block, GFF.1,
//! UPNet.0, and the convs at higher resolutions (less than one more input
//! pixel together).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Ops, ParamStore};

/// RDN hyper-parameters (EDSR-PyTorch's `G0`, `RDNconfig` = (D, C, G),
/// `scale`, `rgb_range`; 3 input and output channels, RGB).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RdnConfig {
    /// Feature channels G0 between blocks (paper: 64).
    pub g0: usize,
    /// Residual dense blocks D (paper: 16).
    pub d: usize,
    /// Conv layers per block C (paper: 8).
    pub c: usize,
    /// Growth rate G: channels each conv layer adds (paper: 64).
    pub g: usize,
    /// Upscaling factor: 2, 3 or 4.
    pub upscale: usize,
    /// Value range the network computes in: the input in `[0, 1]` is
    /// multiplied by it, the output divided (EDSR-PyTorch `--rgb_range`: 255).
    pub img_range: f32,
}

impl Default for RdnConfig {
    /// The paper's RDN at x4.
    fn default() -> Self {
        Self::paper(4)
    }
}

impl RdnConfig {
    /// The paper's RDN (EDSR-PyTorch config "B"): D = 16, C = 8, G = 64,
    /// G0 = 64, range 255.
    pub fn paper(upscale: usize) -> Self {
        RdnConfig {
            g0: 64,
            d: 16,
            c: 8,
            g: 64,
            upscale,
            img_range: 255.0,
        }
    }

    /// EDSR-PyTorch's smaller config "A": D = 20, C = 6, G = 32.
    pub fn config_a(upscale: usize) -> Self {
        RdnConfig {
            d: 20,
            c: 6,
            g: 32,
            ..Self::paper(upscale)
        }
    }

    /// Input pixels each output pixel sees on every side: D·C + 5.
    pub fn receptive_radius(&self) -> usize {
        self.d * self.c + 5
    }

    /// Checks the config; the error says what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.g0 == 0 || self.d == 0 || self.c == 0 || self.g == 0 {
            return Err(Error::Model(format!(
                "RDN G0, D, C and G must be positive, got G0 {} D {} C {} G {}",
                self.g0, self.d, self.c, self.g
            )));
        }
        if !matches!(self.upscale, 2..=4) {
            return Err(Error::Model(format!(
                "RDN upscale {} is not supported (2, 3 or 4)",
                self.upscale
            )));
        }
        if !(self.img_range.is_finite() && self.img_range > 0.0) {
            return Err(Error::Model(format!(
                "RDN img_range must be positive, got {}",
                self.img_range
            )));
        }
        Ok(())
    }
}

/// A residual dense block: C × (3x3 conv + ReLU, concatenated), a 1x1 local
/// feature fusion back to G0, plus the input.
#[derive(Debug, Clone)]
pub struct Rdb {
    convs: Vec<Conv2d>,
    lff: Conv2d,
}

impl Rdb {
    /// Registers `{prefix}.convs.{c}.conv.0` and `{prefix}.LFF`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        config: &RdnConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let RdnConfig { g0, c, g, .. } = *config;
        let convs = (0..c)
            .map(|i| {
                Conv2d::same(
                    store,
                    &format!("{prefix}.convs.{i}.conv.0"),
                    g0 + i * g,
                    g,
                    3,
                    rng,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Rdb {
            convs,
            lff: Conv2d::same(store, &format!("{prefix}.LFF"), g0 + c * g, g0, 1, rng)?,
        })
    }

    /// The block on `[N, G0, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let mut dense: Option<O::Value> = None;
        for conv in &self.convs {
            let h = dense.as_ref().unwrap_or(x);
            let y = conv.forward_relu(o, store, h)?;
            dense = Some(o.concat(&[h, &y])?);
        }
        let y = self.lff.forward(o, store, dense.as_ref().unwrap_or(x))?;
        o.add(&y, x)
    }
}

/// The RDN network (parameter names: EDSR-PyTorch's `state_dict` keys,
/// `SFENet1.*`, `SFENet2.*`, `RDBs.{d}.convs.{c}.conv.0.*`, `RDBs.{d}.LFF.*`,
/// `GFF.{0,1}.*`, `UPNet.{0,2[,4]}.*`).
#[derive(Debug, Clone)]
pub struct Rdn {
    /// Its hyper-parameters.
    pub config: RdnConfig,
    sfe_net1: Conv2d,
    sfe_net2: Conv2d,
    rdbs: Vec<Rdb>,
    gff: [Conv2d; 2],
    /// Upsampling convs, each followed by a pixel shuffle by its factor
    /// (none after the last).
    up_net: Vec<(Conv2d, Option<usize>)>,
}

impl Rdn {
    /// Validates `config` and registers the layers in `store`, initialised
    /// as PyTorch does.
    pub fn new(store: &mut ParamStore, config: RdnConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let RdnConfig { g0, d, g, .. } = config;
        let sfe_net1 = Conv2d::same(store, "SFENet1", 3, g0, 3, rng)?;
        let sfe_net2 = Conv2d::same(store, "SFENet2", g0, g0, 3, rng)?;
        let rdbs = (0..d)
            .map(|i| Rdb::new(store, &format!("RDBs.{i}"), &config, rng))
            .collect::<Result<_>>()?;
        let gff = [
            Conv2d::same(store, "GFF.0", d * g0, g0, 1, rng)?,
            Conv2d::same(store, "GFF.1", g0, g0, 3, rng)?,
        ];
        let factors = match config.upscale {
            4 => vec![2, 2],
            r => vec![r],
        };
        let mut up_net = Vec::new();
        let mut c_in = g0;
        for (i, &r) in factors.iter().enumerate() {
            let conv = Conv2d::same(store, &format!("UPNet.{}", 2 * i), c_in, g * r * r, 3, rng)?;
            up_net.push((conv, Some(r)));
            c_in = g;
        }
        let last = format!("UPNet.{}", 2 * factors.len());
        up_net.push((Conv2d::same(store, &last, g, 3, 3, rng)?, None));
        Ok(Rdn {
            config,
            sfe_net1,
            sfe_net2,
            rdbs,
            gff,
            up_net,
        })
    }

    /// Input: the LR image, RGB in `[0, 1]`; output `upscale` times larger.
    pub fn io(&self) -> NetworkIo {
        NetworkIo::padded(
            ColorSpace::Rgb,
            Some(self.config.upscale),
            self.config.receptive_radius(),
            false,
        )
    }

    /// Forward pass: `[N, 3, H, W]` → `[N, 3, sH, sW]`, RGB in `[0, 1]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let range = self.config.img_range;
        let x = o.scale(x, range);
        let f_1 = self.sfe_net1.forward(o, store, &x)?;
        drop(x);
        let mut outs: Vec<O::Value> = Vec::with_capacity(self.rdbs.len());
        let mut h = self.sfe_net2.forward(o, store, &f_1)?;
        for rdb in &self.rdbs {
            let next = rdb.forward(o, store, &h)?;
            outs.push(std::mem::replace(&mut h, next));
        }
        outs.push(h);
        // outs = [F0, F1, .., FD]; GFF fuses F1..FD.
        let fused = {
            let refs: Vec<&O::Value> = outs[1..].iter().collect();
            o.concat(&refs)?
        };
        drop(outs);
        let y = self.gff[0].forward(o, store, &fused)?;
        drop(fused);
        let y = self.gff[1].forward(o, store, &y)?;
        let mut y = o.add(&y, &f_1)?;
        drop(f_1);
        for (conv, shuffle) in &self.up_net {
            y = conv.forward(o, store, &y)?;
            if let Some(r) = shuffle {
                y = o.pixel_shuffle(&y, *r)?;
            }
        }
        Ok(o.scale(&y, 1.0 / range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    fn count(config: RdnConfig) -> usize {
        crate::models::param_count("rdn", config)
    }

    #[test]
    fn parameter_counts_match_pytorch() {
        // PyTorch's counts of EDSR-PyTorch's RDN (scripts/make_arch_fixtures.py).
        assert_eq!(count(RdnConfig::default()), 22_271_107);
        assert_eq!(count(RdnConfig::paper(2)), 22_123_395);
        assert_eq!(count(RdnConfig::config_a(4)), 5_578_787);
        assert_eq!(RdnConfig::default().receptive_radius(), 133);
    }

    #[test]
    fn shapes_and_bad_configs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let small = |upscale| RdnConfig {
            g0: 4,
            d: 2,
            c: 2,
            g: 3,
            upscale,
            img_range: 1.0,
        };
        for upscale in [2, 3, 4] {
            let mut store = ParamStore::new();
            let net = Rdn::new(&mut store, small(upscale), &mut rng).expect("builds");
            let x = Tensor::full(&[2, 3, 5, 4], 0.5);
            let y = net
                .forward(&mut Eager::new(&CPU), &store, &x)
                .expect("runs");
            assert_eq!(y.shape(), &[2, 3, 5 * upscale, 4 * upscale]);
        }
        let mut bad = |cfg: RdnConfig, what: &str| {
            let e = Rdn::new(&mut ParamStore::new(), cfg, &mut rng).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        };
        bad(small(8), "upscale 8");
        bad(RdnConfig { d: 0, ..small(2) }, "D 0");
        bad(
            RdnConfig {
                img_range: 0.0,
                ..small(2)
            },
            "img_range",
        );
    }
}
