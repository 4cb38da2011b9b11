//! srkit's own neural-network core: `f32`, NCHW, CPU, multi-threaded.
//!
//! # Brief overview
//!
//! - [`Tensor`]: a dense contiguous `f32` tensor (NCHW for images).
//! - [`Backend`]: every operation (forward and backward) the core needs;
//!   [`Cpu`] implements it with im2col + GEMM convolutions (Winograd F(2x2,
//!   3x3) for 3x3 stride-1 ones) parallelised over (batch item, band of rows)
//!   with rayon. Other backends can implement the
//!   trait; nothing above it touches raw kernels.
//! - [`Graph`] and [`Var`]: a reverse-mode autodiff tape built per training
//!   step; [`Graph::backward`] returns the parameters' [`Gradients`].
//! - [`ParamStore`] / [`ParamId`]: named parameters (PyTorch `state_dict`
//!   keys), loadable from and savable to safetensors.
//! - [`Adam`] with serializable [`AdamState`] for checkpoint/resume.
//! - [`Ops`]: the operations networks are written against, implemented by
//!   [`Graph`] (taped, for training) and [`Eager`] (tape-free, for
//!   inference), so each architecture writes its forward pass once.
//! - [`layers`]: [`Conv2d`], [`ConvTranspose2d`], [`Prelu`], whose `forward`
//!   runs on any [`Ops`].
//!
//! ```
//! use srkit::nn::{Adam, AdamConfig, Conv2d, Conv2dConfig, Graph, ParamStore, Tensor};
//! use rand::SeedableRng;
//! # fn main() -> srkit::Result<()> {
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let conv = Conv2d::new(&mut store, "conv", 1, 1, 3, true,
//!     Conv2dConfig { padding: 1, ..Default::default() }, &mut rng)?;
//! let mut adam = Adam::new(&store, AdamConfig::default());
//! let x = Tensor::full(&[1, 1, 8, 8], 0.5);
//! let mut g = Graph::new();
//! let xv = g.input(x.clone());
//! let y = conv.forward(&mut g, &store, &xv)?;
//! let t = g.input(x);
//! let loss = g.mse_loss(y, t)?;
//! let grads = g.backward(loss)?;
//! adam.step(&mut store, &grads)?;
//! # Ok(()) }
//! ```

mod backend;
mod graph;
mod kernels;
pub mod layers;
mod ops;
mod optim;
mod params;
mod tensor;

pub use backend::{
    Activation, AdamStep, Backend, BatchNormStats, Conv2dConfig, ConvTranspose2dConfig, Cpu, CPU,
};
pub use graph::{Graph, RunningStats, Var};
pub use layers::{Conv2d, ConvTranspose2d, Prelu};
pub use ops::{Eager, Ops};
pub use optim::{Adam, AdamConfig, AdamState, WeightAverage};
pub use params::{tensor_from_view, Gradients, ParamId, ParamStore};
pub use tensor::Tensor;

#[cfg(test)]
mod tests;
