//! # srkit — single-image super-resolution
//!
//! srkit upscales images, trains and evaluates super-resolution models, and
//! reports PSNR/SSIM exactly the way published SR tables compute them.
//!
//! The modules follow the data flow, each owning one stage, dependencies
//! pointing one way:
//!
//! | stage | module |
//! |---|---|
//! | in-memory image (planar `f32`, `[0, 1]`) | [`image`] |
//! | decode / encode files, atomic writes | [`io`] |
//! | RGB ↔ YCbCr as MATLAB computes it | [`color`] |
//! | MATLAB `imresize` | [`resample`] |
//! | LR generation (modcrop, BI / BD / DN) | [`degrade`] |
//! | PSNR / SSIM (paper and scikit-image conventions) | [`metrics`] |
//! | the interface every SR method implements | [`upscale`] |
//! | neural-network core (tensors, autodiff, Adam) | [`nn`] |
//! | model architectures and model files | [`models`] |
//! | whole-image and tiled model inference | [`infer`] |
//! | dataset evaluation and paper-style tables | [`eval`] |
//! | training: patches, loop, checkpoints | [`train`] |
//!
//! The errors of every module are one type, [`Error`].
#![deny(missing_docs)]

pub mod color;
pub mod degrade;
pub mod error;
pub mod eval;
pub mod image;
pub mod infer;
pub mod io;
mod kernels;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod resample;
pub mod train;
pub mod upscale;

pub use error::{Error, Result};
pub use image::{BitDepth, Image};
