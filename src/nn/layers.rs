//! Layers: parameter bundles whose `forward` runs on any [`Ops`] (a taped
//! [`Graph`](super::Graph) for training, [`Eager`](super::Eager) for
//! inference).
//!
//! Each layer registers its parameters in a [`ParamStore`] under
//! `"{prefix}.weight"` / `"{prefix}.bias"`, PyTorch's `state_dict` keys, and
//! initialises them as PyTorch does (`kaiming_uniform_(a = sqrt(5))`, i.e.
//! `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for weight and bias).

use super::backend::{Conv2dConfig, ConvTranspose2dConfig};
use super::ops::Ops;
use super::params::{ParamId, ParamStore};
use super::tensor::Tensor;
use crate::error::{Error, Result};
use rand::Rng;

fn uniform_init(shape: &[usize], fan_in: usize, rng: &mut impl Rng) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    Tensor::uniform(shape, -bound, bound, rng)
}

/// Rejects channel counts a `groups`-way convolution cannot split.
fn check_channels(
    op: &'static str,
    c_in: usize,
    c_out: usize,
    k: usize,
    groups: usize,
) -> Result<()> {
    if groups == 0 || c_in % groups != 0 || c_out % groups != 0 || k == 0 {
        return Err(Error::invalid(
            op,
            format!("{c_in}->{c_out} channels, kernel {k}, groups {groups}"),
        ));
    }
    Ok(())
}

/// Registers `"{prefix}.weight"` of `weight_shape` and, if `bias`,
/// `"{prefix}.bias"` of `[c_out]`. PyTorch computes fan-in from
/// `weight.size(1) * k * k` for both convolution kinds, which is
/// `weight_shape[1..].product()`.
fn add_conv_params(
    store: &mut ParamStore,
    prefix: &str,
    weight_shape: [usize; 4],
    c_out: usize,
    bias: bool,
    rng: &mut impl Rng,
) -> Result<(ParamId, Option<ParamId>)> {
    let fan_in = weight_shape[1..].iter().product();
    let weight = store.add(
        format!("{prefix}.weight"),
        uniform_init(&weight_shape, fan_in, rng),
    )?;
    let bias = if bias {
        Some(store.add(
            format!("{prefix}.bias"),
            uniform_init(&[c_out], fan_in, rng),
        )?)
    } else {
        None
    };
    Ok((weight, bias))
}

/// A 2-D convolution layer (PyTorch `nn.Conv2d`, square kernel).
#[derive(Debug, Clone, Copy)]
pub struct Conv2d {
    /// Weight `[C_out, C_in/groups, k, k]`.
    pub weight: ParamId,
    /// Optional bias `[C_out]`.
    pub bias: Option<ParamId>,
    /// Stride, padding, groups.
    pub config: Conv2dConfig,
}

impl Conv2d {
    /// Registers a `c_in -> c_out`, `k x k` convolution under `prefix`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        bias: bool,
        config: Conv2dConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        check_channels("conv2d", c_in, c_out, k, config.groups)?;
        let (weight, bias) = add_conv_params(
            store,
            prefix,
            [c_out, c_in / config.groups, k, k],
            c_out,
            bias,
            rng,
        )?;
        Ok(Conv2d {
            weight,
            bias,
            config,
        })
    }

    /// A `k x k` convolution with bias, stride 1 and padding `k / 2` (the
    /// output keeps the input's size for odd `k`): the layer most SR
    /// networks are made of.
    pub fn same(
        store: &mut ParamStore,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let config = Conv2dConfig {
            padding: k / 2,
            ..Conv2dConfig::default()
        };
        Self::new(store, prefix, c_in, c_out, k, true, config, rng)
    }

    /// Applies the convolution (taped on a [`Graph`](super::Graph), or
    /// eagerly on [`Eager`](super::Eager)).
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        o.conv2d(x, store, self.weight, self.bias, self.config)
    }

    /// `relu(conv(x))`, fused in eager mode ([`Ops::conv2d_relu`]).
    pub fn forward_relu<O: Ops>(
        &self,
        o: &mut O,
        store: &ParamStore,
        x: &O::Value,
    ) -> Result<O::Value> {
        o.conv2d_relu(x, store, self.weight, self.bias, self.config)
    }
}

/// A 2-D transposed convolution layer (PyTorch `nn.ConvTranspose2d`).
#[derive(Debug, Clone, Copy)]
pub struct ConvTranspose2d {
    /// Weight `[C_in, C_out/groups, k, k]`.
    pub weight: ParamId,
    /// Optional bias `[C_out]`.
    pub bias: Option<ParamId>,
    /// Stride, padding, output padding, groups.
    pub config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// Registers a `c_in -> c_out`, `k x k` transposed convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        bias: bool,
        config: ConvTranspose2dConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        check_channels("conv_transpose2d", c_in, c_out, k, config.groups)?;
        let (weight, bias) = add_conv_params(
            store,
            prefix,
            [c_in, c_out / config.groups, k, k],
            c_out,
            bias,
            rng,
        )?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            config,
        })
    }

    /// Applies the transposed convolution.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        o.conv_transpose2d(x, store, self.weight, self.bias, self.config)
    }
}

/// PReLU with one slope per channel (or one shared), initialised to 0.25
/// as PyTorch `nn.PReLU`.
#[derive(Debug, Clone, Copy)]
pub struct Prelu {
    /// Slopes `[C]` (or `[1]`).
    pub weight: ParamId,
}

impl Prelu {
    /// Registers `"{prefix}.weight"` with `num_parameters` slopes.
    pub fn new(store: &mut ParamStore, prefix: &str, num_parameters: usize) -> Result<Self> {
        if num_parameters == 0 {
            return Err(Error::invalid("prelu", "num_parameters must be at least 1"));
        }
        let weight = store.add(
            format!("{prefix}.weight"),
            Tensor::full(&[num_parameters], 0.25),
        )?;
        Ok(Prelu { weight })
    }

    /// Applies the PReLU.
    pub fn forward<O: Ops>(&self, o: &mut O, store: &ParamStore, x: &O::Value) -> Result<O::Value> {
        o.prelu(x, store, self.weight)
    }
}
