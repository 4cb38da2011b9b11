//! RRDBNet, the generator of ESRGAN: "ESRGAN: Enhanced Super-Resolution
//! Generative Adversarial Networks", Xintao Wang, Ke Yu, Shixiang Wu, Jinjin
//! Gu, Yihao Liu, Chao Dong, Chen Change Loy, Yu Qiao, Xiaoou Tang, ECCV
//! Workshops (PIRM) 2018 (arXiv:1809.00219); also the network of
//! Real-ESRGAN ("Real-ESRGAN: Training Real-World Blind Super-Resolution with
//! Pure Synthetic Data", Xintao Wang, Liangbin Xie, Chao Dong, Ying Shan,
//! ICCV Workshops 2021, arXiv:2107.10833). Reference code: BasicSR
//! (XPixelGroup/BasicSR, `basicsr/archs/rrdbnet_arch.py`), whose
//! `state_dict` keys are the parameter names here: Real-ESRGAN's
//! `RealESRGAN_x4plus.pth` / `RealESRGAN_x2plus.pth` (`params_ema`) use them.
//! The original ESRGAN release (github.com/xinntao/ESRGAN) names the same
//! layers `RRDB_trunk`, `trunk_conv`, `upconv1`, ... and needs renaming.
//!
//! RGB in `[0, 1]` in and out, no mean shift or range scaling:
//!
//! ```text
//! feat = conv_first(x)                       3 → F, 3x3 (after pixel unshuffle at x2, x1)
//! feat = feat + conv_body(body(feat))        body: B × RRDB
//! feat = lrelu(conv_up1(nearest×2(feat)))
//! feat = lrelu(conv_up2(nearest×2(feat)))
//! y    = conv_last(lrelu(conv_hr(feat)))     F → 3
//! ```
//!
//! LeakyReLU slope 0.2 throughout. A `ResidualDenseBlock` has five 3x3 convs
//! (`conv1`..`conv5`), conv i seeing the input and the i − 1 previous outputs
//! concatenated (F + (i − 1)·G channels, G = `num_grow_ch`), LeakyReLU after
//! the first four; it returns `conv5 · 0.2 + x`. An `RRDB` chains three
//! (`rdb1`..`rdb3`) and returns `out · 0.2 + x`.
//!
//! The upsampling always enlarges by 4; BasicSR's x2 and x1 models first
//! fold the input with a pixel unshuffle by 2 or 4 (3·4 or 3·16 input
//! channels to `conv_first`), so **their input height and width must be
//! multiples of 2 (x2) or 4 (x1)**.
//!
//! ESRGAN / Real-ESRGAN x4plus ([`RrdbNetConfig::esrgan`], [`Default`]):
//! F = 64, B = 23, G = 32, x4: 16,697,987 parameters (16,703,171 at x2,
//! 16,723,907 at x1); the 6-block anime model
//! ([`RrdbNetConfig::real_esrgan_anime_6b`]) 4,467,779 (PyTorch's counts,
//! `scripts/make_arch_fixtures.py`).
//!
//! **Receptive field.** With u the unshuffle factor (1 at x4, 2 at x2, 4 at
//! x1), an output pixel sees u·(15B + 4) input pixels on each side (349 for
//! ESRGAN): conv_first, 15 convs per RRDB and conv_body at 1/u of the input
//! resolution, and the four upsampling-path convs worth two more such pixels.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2d, Ops, ParamStore};

/// LeakyReLU slope used throughout ESRGAN.
const LRELU: Activation = Activation::LeakyRelu(0.2);
/// ESRGAN's residual scaling, a constant of the architecture.
const RES_SCALE: f32 = 0.2;

/// RRDBNet hyper-parameters (BasicSR `RRDBNet` arguments; 3 input and output
/// channels, RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RrdbNetConfig {
    /// Upscaling factor: 4, 2 or 1.
    pub scale: usize,
    /// Feature channels F (ESRGAN: 64).
    pub num_feat: usize,
    /// RRDBs B (ESRGAN: 23; Real-ESRGAN anime: 6).
    pub num_block: usize,
    /// Growth channels G of each dense-block conv (ESRGAN: 32).
    pub num_grow_ch: usize,
}

impl Default for RrdbNetConfig {
    /// ESRGAN's generator (Real-ESRGAN x4plus).
    fn default() -> Self {
        Self::esrgan()
    }
}

impl RrdbNetConfig {
    /// ESRGAN's generator, also Real-ESRGAN's `RealESRGAN_x4plus`: x4, 23
    /// blocks, 64 channels, growth 32.
    pub fn esrgan() -> Self {
        RrdbNetConfig {
            scale: 4,
            num_feat: 64,
            num_block: 23,
            num_grow_ch: 32,
        }
    }

    /// Real-ESRGAN's `RealESRGAN_x2plus`: the same network at x2 (input
    /// pixel-unshuffled by 2).
    pub fn real_esrgan_x2plus() -> Self {
        RrdbNetConfig {
            scale: 2,
            ..Self::esrgan()
        }
    }

    /// Real-ESRGAN's `RealESRGAN_x4plus_anime_6B`: 6 blocks.
    pub fn real_esrgan_anime_6b() -> Self {
        RrdbNetConfig {
            num_block: 6,
            ..Self::esrgan()
        }
    }

    /// The pixel-unshuffle factor applied to the input: 4 / `scale`.
    pub fn unshuffle(&self) -> usize {
        4 / self.scale.max(1)
    }

    /// Input pixels each output pixel sees on every side: u·(15B + 4), u
    /// the unshuffle factor.
    pub fn receptive_radius(&self) -> usize {
        self.unshuffle() * (15 * self.num_block + 4)
    }

    /// Checks the config; the error says what is wrong.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.scale, 1 | 2 | 4) {
            return Err(Error::Model(format!(
                "RRDBNet scale {} is not supported (4, 2 or 1)",
                self.scale
            )));
        }
        if self.num_feat == 0 || self.num_grow_ch == 0 {
            return Err(Error::Model(format!(
                "RRDBNet num_feat and num_grow_ch must be positive, got {} and {}",
                self.num_feat, self.num_grow_ch
            )));
        }
        Ok(())
    }
}

/// BasicSR `ResidualDenseBlock`: five densely connected 3x3 convs,
/// `conv5 · 0.2 + x`.
#[derive(Debug, Clone, Copy)]
pub struct ResidualDenseBlock {
    convs: [Conv2d; 5],
}

impl ResidualDenseBlock {
    /// Registers `{prefix}.conv1` .. `{prefix}.conv5`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        num_feat: usize,
        num_grow_ch: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut conv = |i: usize| {
            let c_out = if i == 4 { num_feat } else { num_grow_ch };
            let name = format!("{prefix}.conv{}", i + 1);
            Conv2d::same(store, &name, num_feat + i * num_grow_ch, c_out, 3, rng)
        };
        Ok(ResidualDenseBlock {
            convs: [conv(0)?, conv(1)?, conv(2)?, conv(3)?, conv(4)?],
        })
    }

    /// The block on `[N, F, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let mut feats: Vec<O::Value> = Vec::with_capacity(4);
        for conv in &self.convs[..4] {
            let y = {
                let mut inputs: Vec<&O::Value> = vec![x];
                inputs.extend(feats.iter());
                dense_input(o, &inputs, |o, h| conv.forward(o, store, h))?
            };
            feats.push(o.activation(&y, LRELU));
        }
        let mut inputs: Vec<&O::Value> = vec![x];
        inputs.extend(feats.iter());
        let y = dense_input(o, &inputs, |o, h| self.convs[4].forward(o, store, h))?;
        drop(feats);
        let y = o.scale(&y, RES_SCALE);
        o.add(&y, x)
    }
}

/// Applies `f` to the channel concatenation of `inputs` (or to the single
/// input as it is).
fn dense_input<O: Ops>(
    o: &mut O,
    inputs: &[&O::Value],
    f: impl FnOnce(&mut O, &O::Value) -> Result<O::Value>,
) -> Result<O::Value> {
    match inputs {
        [one] => f(o, one),
        many => {
            let cat = o.concat(many)?;
            f(o, &cat)
        }
    }
}

/// BasicSR `RRDB`: three residual dense blocks, `out · 0.2 + x`.
#[derive(Debug, Clone, Copy)]
pub struct Rrdb {
    rdbs: [ResidualDenseBlock; 3],
}

impl Rrdb {
    /// Registers `{prefix}.rdb1` .. `{prefix}.rdb3`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        num_feat: usize,
        num_grow_ch: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut rdb = |i: usize| {
            let name = format!("{prefix}.rdb{i}");
            ResidualDenseBlock::new(store, &name, num_feat, num_grow_ch, rng)
        };
        Ok(Rrdb {
            rdbs: [rdb(1)?, rdb(2)?, rdb(3)?],
        })
    }

    /// The block on `[N, F, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = self.rdbs[0].forward(o, store, x)?;
        let h = self.rdbs[1].forward(o, store, &h)?;
        let h = self.rdbs[2].forward(o, store, &h)?;
        let h = o.scale(&h, RES_SCALE);
        o.add(&h, x)
    }
}

/// The RRDBNet network (parameter names: BasicSR's `state_dict` keys,
/// `conv_first.*`, `body.{i}.rdb{1,2,3}.conv{1..5}.*`, `conv_body.*`,
/// `conv_up1.*`, `conv_up2.*`, `conv_hr.*`, `conv_last.*`).
#[derive(Debug, Clone)]
pub struct RrdbNet {
    /// Its hyper-parameters.
    pub config: RrdbNetConfig,
    conv_first: Conv2d,
    body: Vec<Rrdb>,
    conv_body: Conv2d,
    conv_up1: Conv2d,
    conv_up2: Conv2d,
    conv_hr: Conv2d,
    conv_last: Conv2d,
}

impl RrdbNet {
    /// Validates `config` and registers the layers in `store`, initialised
    /// with PyTorch's defaults (BasicSR scales the dense blocks' initial
    /// weights by 0.1 for training from scratch; srkit does not).
    pub fn new(store: &mut ParamStore, config: RrdbNetConfig, rng: &mut impl Rng) -> Result<Self> {
        config.validate()?;
        let RrdbNetConfig {
            num_feat: f,
            num_grow_ch: g,
            ..
        } = config;
        let u = config.unshuffle();
        let conv_first = Conv2d::same(store, "conv_first", 3 * u * u, f, 3, rng)?;
        let body = (0..config.num_block)
            .map(|i| Rrdb::new(store, &format!("body.{i}"), f, g, rng))
            .collect::<Result<_>>()?;
        Ok(RrdbNet {
            config,
            conv_first,
            body,
            conv_body: Conv2d::same(store, "conv_body", f, f, 3, rng)?,
            conv_up1: Conv2d::same(store, "conv_up1", f, f, 3, rng)?,
            conv_up2: Conv2d::same(store, "conv_up2", f, f, 3, rng)?,
            conv_hr: Conv2d::same(store, "conv_hr", f, f, 3, rng)?,
            conv_last: Conv2d::same(store, "conv_last", f, 3, 3, rng)?,
        })
    }

    /// Input: the LR image, RGB in `[0, 1]`; output `scale` times larger. At
    /// x2 and x1 the input's sides must be multiples of 2 and 4.
    pub fn io(&self) -> NetworkIo {
        NetworkIo {
            multiple: self.config.unshuffle(),
            ..NetworkIo::padded(
                ColorSpace::Rgb,
                Some(self.config.scale),
                self.config.receptive_radius(),
                false,
            )
        }
    }

    /// Forward pass: `[N, 3, H, W]` → `[N, 3, sH, sW]`, RGB in `[0, 1]`.
    /// At x2 / x1, `H` and `W` not multiples of 2 / 4 are an error.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let feat = match self.config.unshuffle() {
            1 => self.conv_first.forward(o, store, x)?,
            u => {
                let folded = o.pixel_unshuffle(x, u)?;
                self.conv_first.forward(o, store, &folded)?
            }
        };
        let h = super::chain(o, &feat, &self.body, |b, o, h| b.forward(o, store, h))?;
        let body = self.conv_body.forward(o, store, &h)?;
        drop(h);
        let feat = o.add(&feat, &body)?;
        drop(body);
        let feat = self.up_conv(o, store, &feat, &self.conv_up1, true)?;
        let feat = self.up_conv(o, store, &feat, &self.conv_up2, true)?;
        let feat = self.up_conv(o, store, &feat, &self.conv_hr, false)?;
        self.conv_last.forward(o, store, &feat)
    }

    /// `lrelu(conv(x))`, after nearest x2 upsampling if `upsample`.
    fn up_conv<O: Ops>(
        &self,
        o: &mut O,
        store: &ParamStore,
        x: &O::Value,
        conv: &Conv2d,
        upsample: bool,
    ) -> Result<O::Value> {
        let y = if upsample {
            let up = o.upsample_nearest(x, 2)?;
            conv.forward(o, store, &up)?
        } else {
            conv.forward(o, store, x)?
        };
        Ok(o.activation(&y, LRELU))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    fn count(config: RrdbNetConfig) -> usize {
        crate::models::param_count("rrdbnet", config)
    }

    #[test]
    fn parameter_counts_match_pytorch() {
        // PyTorch's counts of BasicSR's RRDBNet (scripts/make_arch_fixtures.py).
        assert_eq!(count(RrdbNetConfig::default()), 16_697_987);
        assert_eq!(count(RrdbNetConfig::real_esrgan_x2plus()), 16_703_171);
        assert_eq!(count(RrdbNetConfig::real_esrgan_anime_6b()), 4_467_779);
        assert_eq!(RrdbNetConfig::default().receptive_radius(), 349);
    }

    #[test]
    fn shapes_and_bad_configs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for scale in [1, 2, 4] {
            let cfg = RrdbNetConfig {
                scale,
                num_feat: 4,
                num_block: 1,
                num_grow_ch: 2,
            };
            let mut store = ParamStore::new();
            let net = RrdbNet::new(&mut store, cfg, &mut rng).expect("builds");
            let x = Tensor::full(&[2, 3, 8, 4], 0.5);
            let y = net
                .forward(&mut Eager::new(&CPU), &store, &x)
                .expect("runs");
            assert_eq!(y.shape(), &[2, 3, 8 * scale, 4 * scale]);
            let odd = Tensor::full(&[1, 3, 6, 6], 0.5);
            assert_eq!(
                net.forward(&mut Eager::new(&CPU), &store, &odd).is_ok(),
                scale != 1,
                "x{scale}: 6x6 input"
            );
        }
        for (cfg, what) in [
            (
                RrdbNetConfig {
                    scale: 3,
                    ..RrdbNetConfig::esrgan()
                },
                "scale 3",
            ),
            (
                RrdbNetConfig {
                    num_grow_ch: 0,
                    ..RrdbNetConfig::esrgan()
                },
                "num_grow_ch",
            ),
        ] {
            let e = RrdbNet::new(&mut ParamStore::new(), cfg, &mut rng).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
