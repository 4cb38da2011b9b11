//! EDSR: "Enhanced Deep Residual Networks for Single Image Super-Resolution",
//! Bee Lim, Sanghyun Son, Heewon Kim, Seungjun Nah, Kyoung Mu Lee, CVPR
//! Workshops (NTIRE) 2017 (arXiv:1707.02921). Reference code: the authors'
//! EDSR-PyTorch (github.com/sanghyun-son/EDSR-PyTorch); srkit follows BasicSR's
//! port (XPixelGroup/BasicSR, `basicsr/archs/edsr_arch.py` with
//! `ResidualBlockNoBN` and `Upsample` from `arch_util.py`), whose
//! `state_dict` keys are the parameter names here, so BasicSR checkpoints
//! (including its conversions of the official weights) load as they are.
//!
//! The network sees **RGB in `[0, 1]`** and returns RGB in `[0, 1]`, `upscale`
//! times larger. Inside, as in BasicSR:
//!
//! ```text
//! x = (x − rgb_mean) · img_range                      DIV2K mean, range 255
//! x = conv_first(x)                                   3 → F, 3x3
//! res = conv_after_body(body(x)) + x                  body: B × ResidualBlockNoBN
//! y = conv_last(upsample(res)) / img_range + rgb_mean F → 3, 3x3
//! ```
//!
//! `ResidualBlockNoBN` is conv-ReLU-conv with the residual scaled by
//! `res_scale`; `upsample` is log2(s) × (conv F → 4F, PixelShuffle(2)) for
//! s = 2ⁿ, or conv F → 9F, PixelShuffle(3) for s = 3.
//!
//! | preset | F | B | res_scale | parameters at x2 / x3 / x4 |
//! |---|---|---|---|---|
//! | [`EdsrConfig::full`] (the paper's EDSR, [`Default`] at x4) | 256 | 32 | 0.1 | 40,729,603 / 43,680,003 / 43,089,923 |
//! | [`EdsrConfig::baseline`] (BasicSR's defaults) | 64 | 16 | 1 | 1,369,859 / 1,554,499 / 1,517,571 |
//!
//! The counts are PyTorch's for the same modules (`scripts/make_arch_fixtures.py`).
//!
//! **Receptive field.** Every convolution is 3x3 `same`-padded: an output
//! pixel sees 2B + 4 input pixels on each side (conv_first, 2 per block,
//! conv_after_body, the first upsampling conv, and the convolutions at the
//! higher resolutions together less than one more input pixel); 36 for the
//! baseline, 68 for the full model.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{ColorSpace, NetworkIo};
use crate::error::{Error, Result};
use crate::nn::{Conv2d, Ops, ParamStore};

/// The RGB mean of DIV2K's training images, which EDSR, RCAN and BasicSR
/// subtract from the input (in `[0, 1]`; EDSR-PyTorch `common.MeanShift`).
pub const DIV2K_RGB_MEAN: [f32; 3] = [0.4488, 0.4371, 0.4040];

/// EDSR hyper-parameters (BasicSR `EDSR` arguments; 3 input and output
/// channels, RGB).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EdsrConfig {
    /// Feature channels F (paper: 256; baseline: 64).
    pub num_feat: usize,
    /// Residual blocks B (paper: 32; baseline: 16).
    pub num_block: usize,
    /// Upscaling factor: 2ⁿ or 3.
    pub upscale: usize,
    /// Scale of each block's residual branch (paper: 0.1; baseline: 1).
    pub res_scale: f32,
    /// Value range the network computes in: inputs in `[0, 1]` are
    /// multiplied by it after the mean shift (255 for the released weights).
    pub img_range: f32,
    /// RGB mean subtracted from the input and added back to the output,
    /// in `[0, 1]` ([`DIV2K_RGB_MEAN`]).
    pub rgb_mean: [f32; 3],
}

impl Default for EdsrConfig {
    /// The paper's EDSR at x4.
    fn default() -> Self {
        Self::full(4)
    }
}

impl EdsrConfig {
    /// The paper's EDSR: 32 blocks of 256 channels, residual scale 0.1.
    pub fn full(upscale: usize) -> Self {
        EdsrConfig {
            num_feat: 256,
            num_block: 32,
            upscale,
            res_scale: 0.1,
            img_range: 255.0,
            rgb_mean: DIV2K_RGB_MEAN,
        }
    }

    /// The paper's EDSR baseline (BasicSR's defaults): 16 blocks of 64
    /// channels, no residual scaling.
    pub fn baseline(upscale: usize) -> Self {
        EdsrConfig {
            num_feat: 64,
            num_block: 16,
            res_scale: 1.0,
            ..Self::full(upscale)
        }
    }

    /// Input pixels each output pixel sees on every side: 2B + 4 (2B + 3
    /// at x1, where there is no upsampling conv).
    pub fn receptive_radius(&self) -> usize {
        2 * self.num_block + 3 + usize::from(self.upscale > 1)
    }

    /// Checks the config; the error says what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.num_feat == 0 {
            return Err(Error::Model("EDSR num_feat must be positive".into()));
        }
        if !Upsample::supports(self.upscale) {
            return Err(Error::Model(format!(
                "EDSR upscale {} is not supported (2^n or 3)",
                self.upscale
            )));
        }
        check_range("EDSR", self.res_scale, self.img_range, self.rgb_mean)
    }
}

/// Rejects non-finite residual scales, means and non-positive ranges
/// (shared by EDSR and RCAN, whose configs carry the same three fields).
pub(crate) fn check_range(
    arch: &str,
    res_scale: f32,
    img_range: f32,
    rgb_mean: [f32; 3],
) -> Result<()> {
    if !res_scale.is_finite() {
        return Err(Error::Model(format!(
            "{arch} res_scale must be finite, got {res_scale}"
        )));
    }
    if !(img_range.is_finite() && img_range > 0.0) {
        return Err(Error::Model(format!(
            "{arch} img_range must be positive, got {img_range}"
        )));
    }
    if !rgb_mean.iter().all(|m| m.is_finite()) {
        return Err(Error::Model(format!(
            "{arch} rgb_mean must be finite, got {rgb_mean:?}"
        )));
    }
    Ok(())
}

/// BasicSR `Upsample`: `upscale = 2ⁿ`: n × (3x3 conv F → 4F, PixelShuffle(2));
/// `upscale = 3`: 3x3 conv F → 9F, PixelShuffle(3); `upscale = 1`: nothing.
/// The convs are `{prefix}.0`, `{prefix}.2`, ... (the `nn.Sequential`
/// indices, shuffles taking the odd ones). Shared with RCAN.
#[derive(Debug, Clone)]
pub struct Upsample {
    /// Each stage's conv and its shuffle factor.
    stages: Vec<(Conv2d, usize)>,
}

impl Upsample {
    /// Whether `scale` is one `Upsample` can build (2ⁿ or 3).
    pub fn supports(scale: usize) -> bool {
        scale.is_power_of_two() || scale == 3
    }

    /// Registers the stages for `scale` on `num_feat` channels.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        scale: usize,
        num_feat: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let factors = if scale == 3 {
            vec![3]
        } else if scale.is_power_of_two() {
            vec![2; scale.trailing_zeros() as usize]
        } else {
            return Err(Error::Model(format!(
                "upsampling scale {scale} is not supported (2^n or 3)"
            )));
        };
        let stages = factors
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let name = format!("{prefix}.{}", 2 * i);
                Ok((
                    Conv2d::same(store, &name, num_feat, r * r * num_feat, 3, rng)?,
                    r,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Upsample { stages })
    }

    /// `[N, F, H, W]` → `[N, F, sH, sW]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let mut h: Option<O::Value> = None;
        for (conv, r) in &self.stages {
            let y = conv.forward(o, store, h.as_ref().unwrap_or(x))?;
            h = Some(o.pixel_shuffle(&y, *r)?);
        }
        match h {
            Some(h) => Ok(h),
            // x1: no stage; a scale by 1 is an exact copy.
            None => Ok(o.scale(x, 1.0)),
        }
    }
}

/// BasicSR `ResidualBlockNoBN`: `x + conv2(relu(conv1(x))) · res_scale`,
/// both convs 3x3 F → F (EDSR's `ResBlock` without batch norm).
#[derive(Debug, Clone, Copy)]
pub struct ResidualBlockNoBn {
    conv1: Conv2d,
    conv2: Conv2d,
    res_scale: f32,
}

impl ResidualBlockNoBn {
    /// Registers `{prefix}.conv1` and `{prefix}.conv2`.
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        num_feat: usize,
        res_scale: f32,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Ok(ResidualBlockNoBn {
            conv1: Conv2d::same(
                store,
                &format!("{prefix}.conv1"),
                num_feat,
                num_feat,
                3,
                rng,
            )?,
            conv2: Conv2d::same(
                store,
                &format!("{prefix}.conv2"),
                num_feat,
                num_feat,
                3,
                rng,
            )?,
            res_scale,
        })
    }

    /// The block on `[N, F, H, W]`.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        let h = self.conv1.forward_relu(o, store, x)?;
        let h = self.conv2.forward(o, store, &h)?;
        let h = scaled(o, h, self.res_scale);
        o.add(x, &h)
    }
}

/// `s · x`, skipping the pass when `s` is 1 (exact either way).
pub(crate) fn scaled<O: Ops>(o: &mut O, x: O::Value, s: f32) -> O::Value {
    if s == 1.0 {
        x
    } else {
        o.scale(&x, s)
    }
}

/// Maps `[0, 1]` RGB to the network's range: `(x − mean) · img_range`.
pub(crate) fn to_network_range<O: Ops>(
    o: &mut O,
    x: &O::Value,
    img_range: f32,
    rgb_mean: [f32; 3],
) -> Result<O::Value> {
    let x = o.shift_channels(x, &rgb_mean.map(|m| -m))?;
    Ok(o.scale(&x, img_range))
}

/// Maps the network's output back to `[0, 1]`: `y / img_range + mean`.
pub(crate) fn from_network_range<O: Ops>(
    o: &mut O,
    y: &O::Value,
    img_range: f32,
    rgb_mean: [f32; 3],
) -> Result<O::Value> {
    let y = o.scale(y, 1.0 / img_range);
    o.shift_channels(&y, &rgb_mean)
}

/// The frame EDSR and RCAN share (BasicSR's layout): mean shift and range
/// scaling, `conv_first`, a body with a long skip closed by
/// `conv_after_body`, `upsample`, `conv_last`, and back to `[0, 1]`. The
/// architectures differ only in their body.
#[derive(Debug, Clone)]
pub struct ResidualFrame {
    conv_first: Conv2d,
    conv_after_body: Conv2d,
    upsample: Upsample,
    conv_last: Conv2d,
    img_range: f32,
    rgb_mean: [f32; 3],
}

impl ResidualFrame {
    /// Registers the frame's layers around the body `make_body` registers
    /// (in PyTorch's order: `conv_first`, the body, then the rest, so fresh
    /// weights match a PyTorch model seeded alike).
    pub fn new<B, R: Rng>(
        store: &mut ParamStore,
        num_feat: usize,
        upscale: usize,
        img_range: f32,
        rgb_mean: [f32; 3],
        rng: &mut R,
        make_body: impl FnOnce(&mut ParamStore, &mut R) -> Result<B>,
    ) -> Result<(Self, B)> {
        let f = num_feat;
        let conv_first = Conv2d::same(store, "conv_first", 3, f, 3, rng)?;
        let body = make_body(store, rng)?;
        let frame = ResidualFrame {
            conv_first,
            conv_after_body: Conv2d::same(store, "conv_after_body", f, f, 3, rng)?,
            upsample: Upsample::new(store, "upsample", upscale, f, rng)?,
            conv_last: Conv2d::same(store, "conv_last", f, 3, 3, rng)?,
            img_range,
            rgb_mean,
        };
        Ok((frame, body))
    }

    /// Forward pass around `body`: `[N, 3, H, W]` → `[N, 3, sH, sW]`, RGB
    /// in `[0, 1]`. Intermediates are dropped as soon as they are used, so
    /// eager inference holds few full-size activations at once.
    pub fn forward<O: Ops>(
        &self,
        o: &mut O,
        store: &ParamStore,
        x: &O::Value,
        body: impl FnOnce(&mut O, &O::Value) -> Result<O::Value>,
    ) -> Result<O::Value> {
        let x = to_network_range(o, x, self.img_range, self.rgb_mean)?;
        let x = self.conv_first.forward(o, store, &x)?;
        let h = body(o, &x)?;
        let res = self.conv_after_body.forward(o, store, &h)?;
        drop(h);
        let res = o.add(&res, &x)?;
        drop(x);
        let y = self.upsample.forward(o, store, &res)?;
        drop(res);
        let y = self.conv_last.forward(o, store, &y)?;
        from_network_range(o, &y, self.img_range, self.rgb_mean)
    }
}

/// The EDSR network (parameter names: BasicSR's `state_dict` keys,
/// `conv_first.weight`, `body.{i}.conv{1,2}.*`, `conv_after_body.*`,
/// `upsample.{0,2,..}.*`, `conv_last.*`).
#[derive(Debug, Clone)]
pub struct Edsr {
    /// Its hyper-parameters.
    pub config: EdsrConfig,
    frame: ResidualFrame,
    body: Vec<ResidualBlockNoBn>,
}

impl Edsr {
    /// Validates `config` and registers the layers in `store`, initialised
    /// as PyTorch does (BasicSR's EDSR keeps PyTorch's default init).
    pub fn new(store: &mut ParamStore, config: EdsrConfig, rng: &mut impl Rng) -> Result<Self> {
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
                (0..c.num_block)
                    .map(|i| {
                        ResidualBlockNoBn::new(
                            store,
                            &format!("body.{i}"),
                            c.num_feat,
                            c.res_scale,
                            rng,
                        )
                    })
                    .collect::<Result<Vec<_>>>()
            },
        )?;
        Ok(Edsr {
            config,
            frame,
            body,
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
        self.frame.forward(o, store, x, |o, x| {
            super::chain(o, x, &self.body, |b, o, h| b.forward(o, store, h))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Eager, Tensor, CPU};
    use rand::SeedableRng;

    fn count(config: EdsrConfig) -> usize {
        crate::models::param_count("edsr", config)
    }

    #[test]
    fn parameter_counts_match_pytorch() {
        // PyTorch's counts of BasicSR's EDSR (scripts/make_arch_fixtures.py).
        assert_eq!(count(EdsrConfig::default()), 43_089_923);
        assert_eq!(EdsrConfig::default(), EdsrConfig::full(4));
        assert_eq!(count(EdsrConfig::baseline(4)), 1_517_571);
        assert_eq!(count(EdsrConfig::baseline(3)), 1_554_499);
        assert_eq!(count(EdsrConfig::baseline(2)), 1_369_859);
        assert_eq!(EdsrConfig::baseline(4).receptive_radius(), 36);
        assert_eq!(EdsrConfig::full(2).receptive_radius(), 68);
    }

    #[test]
    fn shapes_and_bad_configs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for upscale in [1, 2, 3, 4, 8] {
            let cfg = EdsrConfig {
                num_feat: 4,
                num_block: 1,
                ..EdsrConfig::baseline(upscale)
            };
            let mut store = ParamStore::new();
            let net = Edsr::new(&mut store, cfg, &mut rng).expect("builds");
            let x = Tensor::full(&[2, 3, 5, 4], 0.5);
            let y = net
                .forward(&mut Eager::new(&CPU), &store, &x)
                .expect("runs");
            assert_eq!(y.shape(), &[2, 3, 5 * upscale, 4 * upscale]);
            assert_eq!(net.io().upscale, Some(upscale));
        }
        let mut bad = |cfg: EdsrConfig, what: &str| {
            let e = Edsr::new(&mut ParamStore::new(), cfg, &mut rng).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        };
        bad(EdsrConfig::baseline(5), "upscale 5");
        bad(EdsrConfig::baseline(0), "upscale 0");
        let b = EdsrConfig::baseline(2);
        bad(EdsrConfig { num_feat: 0, ..b }, "num_feat");
        bad(
            EdsrConfig {
                img_range: 0.0,
                ..b
            },
            "img_range",
        );
        bad(
            EdsrConfig {
                res_scale: f32::NAN,
                ..b
            },
            "res_scale",
        );
    }
}
