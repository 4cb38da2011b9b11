//! One forward pass, two ways to run it.
//!
//! Architectures write their forward pass once, generic over [`Ops`]: run on
//! a [`Graph`] it records a tape for training; run on [`Eager`] it computes
//! values directly and drops each intermediate as soon as it goes out of
//! scope, which is what inference wants (peak memory is a few activations,
//! not the whole tape). Operations that use parameters take their
//! [`ParamId`]s, so inference reads weights in place instead of copying
//! them onto a tape.

use super::backend::{Activation, Backend, Conv2dConfig, ConvTranspose2dConfig};
use super::graph::{Graph, Var};
use super::params::{ParamId, ParamStore};
use super::tensor::Tensor;
use crate::error::{Error, Result};

/// The operations SR networks are built from (see the module docs).
pub trait Ops {
    /// A value flowing through the network: a [`Var`] on a tape, a
    /// [`Tensor`] in eager mode.
    type Value: Clone;

    /// Convolution with weight `w` and optional bias `b` from `store`.
    fn conv2d(
        &mut self,
        x: &Self::Value,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: Conv2dConfig,
    ) -> Result<Self::Value>;
    /// Transposed convolution with weight `w` and optional bias `b`.
    fn conv_transpose2d(
        &mut self,
        x: &Self::Value,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Self::Value>;
    /// PReLU with slopes `a` from `store`.
    fn prelu(&mut self, x: &Self::Value, store: &ParamStore, a: ParamId) -> Result<Self::Value>;
    /// A parameter-free activation.
    fn activation(&mut self, x: &Self::Value, act: Activation) -> Self::Value;
    /// Pixel shuffle by `r`.
    fn pixel_shuffle(&mut self, x: &Self::Value, r: usize) -> Result<Self::Value>;
    /// Pixel unshuffle by `r` (`[N, C, H r, W r]` → `[N, C r², H, W]`), the
    /// inverse of [`Ops::pixel_shuffle`]; `H` and `W` must be multiples of
    /// `r`.
    fn pixel_unshuffle(&mut self, x: &Self::Value, r: usize) -> Result<Self::Value>;
    /// Nearest-neighbour upsampling by `r`.
    fn upsample_nearest(&mut self, x: &Self::Value, r: usize) -> Result<Self::Value>;
    /// Global average pooling to `[N, C, 1, 1]`.
    fn global_avg_pool(&mut self, x: &Self::Value) -> Result<Self::Value>;
    /// Concatenation along channels.
    fn concat(&mut self, xs: &[&Self::Value]) -> Result<Self::Value>;
    /// `a + b` (`b` of `a`'s shape or `[N, C, 1, 1]`).
    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value>;
    /// `a * b` (`b` of `a`'s shape or `[N, C, 1, 1]`).
    fn mul(&mut self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value>;
    /// `s * x`.
    fn scale(&mut self, x: &Self::Value, s: f32) -> Self::Value;
    /// Adds `offsets[c]` to every pixel of channel `c` of an NCHW value
    /// (EDSR's and RCAN's mean shift); not trained.
    fn shift_channels(&mut self, x: &Self::Value, offsets: &[f32]) -> Result<Self::Value>;

    /// ReLU.
    fn relu(&mut self, x: &Self::Value) -> Self::Value {
        self.activation(x, Activation::Relu)
    }

    /// [`Ops::conv2d`] then ReLU; in eager mode one fused operation (the
    /// ReLU applied while the output is in cache).
    fn conv2d_relu(
        &mut self,
        x: &Self::Value,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: Conv2dConfig,
    ) -> Result<Self::Value> {
        let y = self.conv2d(x, store, w, b, cfg)?;
        Ok(self.relu(&y))
    }
}

impl Ops for Graph<'_> {
    type Value = Var;

    fn conv2d(
        &mut self,
        x: &Var,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: Conv2dConfig,
    ) -> Result<Var> {
        let w = self.param(store, w);
        let b = b.map(|b| self.param(store, b));
        Graph::conv2d(self, *x, w, b, cfg)
    }

    fn conv_transpose2d(
        &mut self,
        x: &Var,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Var> {
        let w = self.param(store, w);
        let b = b.map(|b| self.param(store, b));
        Graph::conv_transpose2d(self, *x, w, b, cfg)
    }

    fn prelu(&mut self, x: &Var, store: &ParamStore, a: ParamId) -> Result<Var> {
        let a = self.param(store, a);
        Graph::prelu(self, *x, a)
    }

    fn activation(&mut self, x: &Var, act: Activation) -> Var {
        Graph::activation(self, *x, act)
    }

    fn pixel_shuffle(&mut self, x: &Var, r: usize) -> Result<Var> {
        Graph::pixel_shuffle(self, *x, r)
    }

    fn pixel_unshuffle(&mut self, x: &Var, r: usize) -> Result<Var> {
        Graph::pixel_unshuffle(self, *x, r)
    }

    fn upsample_nearest(&mut self, x: &Var, r: usize) -> Result<Var> {
        Graph::upsample_nearest(self, *x, r)
    }

    fn global_avg_pool(&mut self, x: &Var) -> Result<Var> {
        Graph::global_avg_pool(self, *x)
    }

    fn concat(&mut self, xs: &[&Var]) -> Result<Var> {
        let xs: Vec<Var> = xs.iter().map(|&&x| x).collect();
        Graph::concat(self, &xs)
    }

    fn add(&mut self, a: &Var, b: &Var) -> Result<Var> {
        Graph::add(self, *a, *b)
    }

    fn mul(&mut self, a: &Var, b: &Var) -> Result<Var> {
        Graph::mul(self, *a, *b)
    }

    fn scale(&mut self, x: &Var, s: f32) -> Var {
        Graph::scale(self, *x, s)
    }

    fn shift_channels(&mut self, x: &Var, offsets: &[f32]) -> Result<Var> {
        let b = channel_offsets(self.value(*x).shape(), offsets)?;
        let b = self.input(b);
        Graph::add(self, *x, b)
    }
}

/// Tape-free execution on a [`Backend`], for inference.
#[derive(Debug, Clone, Copy)]
pub struct Eager<'b> {
    backend: &'b dyn Backend,
}

impl<'b> Eager<'b> {
    /// Runs operations on `backend`.
    pub fn new(backend: &'b dyn Backend) -> Self {
        Eager { backend }
    }
}

impl Ops for Eager<'_> {
    type Value = Tensor;

    fn conv2d(
        &mut self,
        x: &Tensor,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        self.backend
            .conv2d(x, store.get(w), b.map(|b| store.get(b)), cfg)
    }

    fn conv2d_relu(
        &mut self,
        x: &Tensor,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        self.backend
            .conv2d_relu(x, store.get(w), b.map(|b| store.get(b)), cfg)
    }

    fn conv_transpose2d(
        &mut self,
        x: &Tensor,
        store: &ParamStore,
        w: ParamId,
        b: Option<ParamId>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor> {
        self.backend
            .conv_transpose2d(x, store.get(w), b.map(|b| store.get(b)), cfg)
    }

    fn prelu(&mut self, x: &Tensor, store: &ParamStore, a: ParamId) -> Result<Tensor> {
        self.backend.prelu(x, store.get(a))
    }

    fn activation(&mut self, x: &Tensor, act: Activation) -> Tensor {
        self.backend.activation(act, x)
    }

    fn pixel_shuffle(&mut self, x: &Tensor, r: usize) -> Result<Tensor> {
        self.backend.pixel_shuffle(x, r)
    }

    fn pixel_unshuffle(&mut self, x: &Tensor, r: usize) -> Result<Tensor> {
        self.backend.pixel_unshuffle(x, r)
    }

    fn upsample_nearest(&mut self, x: &Tensor, r: usize) -> Result<Tensor> {
        self.backend.upsample_nearest(x, r)
    }

    fn global_avg_pool(&mut self, x: &Tensor) -> Result<Tensor> {
        self.backend.global_avg_pool(x)
    }

    fn concat(&mut self, xs: &[&Tensor]) -> Result<Tensor> {
        self.backend.concat_channels(xs)
    }

    fn add(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.backend.add(a, b)
    }

    fn mul(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.backend.mul(a, b)
    }

    fn scale(&mut self, x: &Tensor, s: f32) -> Tensor {
        self.backend.scale(x, s)
    }

    fn shift_channels(&mut self, x: &Tensor, offsets: &[f32]) -> Result<Tensor> {
        self.backend.add(x, &channel_offsets(x.shape(), offsets)?)
    }
}

/// `offsets` as an `[N, C, 1, 1]` tensor broadcastable over `shape`.
fn channel_offsets(shape: &[usize], offsets: &[f32]) -> Result<Tensor> {
    match *shape {
        [n, c, _, _] if c == offsets.len() => Tensor::new(&[n, c, 1, 1], offsets.repeat(n)),
        _ => Err(Error::invalid(
            "shift_channels",
            format!("{} offsets for a tensor of shape {shape:?}", offsets.len()),
        )),
    }
}
