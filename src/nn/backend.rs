//! The compute interface the autodiff layer is written against, and its CPU
//! implementation.
//!
//! [`Graph`](super::Graph) and the layers call only [`Backend`] methods, so a
//! second implementation (a GPU one, say) can be dropped in without touching
//! the differentiation code. Every method validates shapes and returns
//! [`Error`] rather than panicking.

use super::kernels::{self, ConvGeom};
use super::tensor::{shape_str, Tensor};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Configuration of a 2-D convolution (square kernels, symmetric padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Stride in both directions (PyTorch `stride`), default 1.
    pub stride: usize,
    /// Zero padding on every side (PyTorch `padding`), default 0.
    pub padding: usize,
    /// Channel groups (PyTorch `groups`), default 1.
    pub groups: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: 1,
            padding: 0,
            groups: 1,
        }
    }
}

/// Configuration of a 2-D transposed convolution (PyTorch
/// `ConvTranspose2d`, without dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Stride, default 1.
    pub stride: usize,
    /// Implicit padding removed from each side of the output, default 0.
    pub padding: usize,
    /// Extra rows/columns added to one side of the output (must be smaller
    /// than `stride`), default 0.
    pub output_padding: usize,
    /// Channel groups, default 1.
    pub groups: usize,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: 1,
            padding: 0,
            output_padding: 0,
            groups: 1,
        }
    }
}

/// Element-wise activations without parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `x` if `x >= 0`, else `slope * x` (PyTorch `LeakyReLU`).
    LeakyRelu(f32),
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

/// Hyper-parameters of one Adam step (see [`Adam`](super::Adam)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
    /// L2 penalty added to the gradient (PyTorch `Adam`'s `weight_decay`).
    pub weight_decay: f32,
    /// 1-based step number, for bias correction.
    pub step: u64,
}

/// Batch-norm statistics saved by the forward pass for the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormStats {
    /// Per-channel mean used for normalisation.
    pub mean: Vec<f32>,
    /// Per-channel biased variance used for normalisation.
    pub var: Vec<f32>,
}

/// The operations of the NN core. All tensors are contiguous `f32`; image
/// tensors are NCHW.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// 2-D convolution (cross-correlation, as PyTorch `conv2d`), `x` NCHW,
    /// `w` `[C_out, C_in/groups, k, k]`, `b` `[C_out]`.
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor>;
    /// [`conv2d`](Backend::conv2d) followed by ReLU, for inference: a
    /// backend may apply the ReLU while each band of the output is still in
    /// cache instead of in another pass over it.
    fn conv2d_relu(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        Ok(self.activation(Activation::Relu, &self.conv2d(x, w, b, cfg)?))
    }
    /// Gradient of [`conv2d`](Backend::conv2d) w.r.t. its input of shape `x_shape`.
    fn conv2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        cfg: Conv2dConfig,
    ) -> Result<Tensor>;
    /// Gradient of [`conv2d`](Backend::conv2d) w.r.t. its weight of shape `w_shape`.
    fn conv2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        cfg: Conv2dConfig,
    ) -> Result<Tensor>;
    /// 2-D transposed convolution (PyTorch `conv_transpose2d`), `w`
    /// `[C_in, C_out/groups, k, k]`.
    fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor>;
    /// Gradient of [`conv_transpose2d`](Backend::conv_transpose2d) w.r.t. its input.
    fn conv_transpose2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor>;
    /// Gradient of [`conv_transpose2d`](Backend::conv_transpose2d) w.r.t. its weight.
    fn conv_transpose2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor>;
    /// Per-channel sum over batch and space of an NCHW tensor (`[C]`): the
    /// gradient of a bias.
    fn channel_sum(&self, dy: &Tensor) -> Result<Tensor>;
    /// Pixel shuffle: `[N, C r², H, W]` → `[N, C, H r, W r]`.
    fn pixel_shuffle(&self, x: &Tensor, r: usize) -> Result<Tensor>;
    /// Inverse of [`pixel_shuffle`](Backend::pixel_shuffle).
    fn pixel_unshuffle(&self, x: &Tensor, r: usize) -> Result<Tensor>;
    /// Nearest-neighbour upsampling by an integer factor `r` (PyTorch
    /// `F.interpolate(x, scale_factor=r, mode="nearest")`): every pixel
    /// becomes an `r x r` block.
    fn upsample_nearest(&self, x: &Tensor, r: usize) -> Result<Tensor>;
    /// Gradient of [`upsample_nearest`](Backend::upsample_nearest): sums
    /// each `r x r` block of `dy`.
    fn upsample_nearest_backward(&self, dy: &Tensor, r: usize) -> Result<Tensor>;
    /// Applies a parameter-free activation.
    fn activation(&self, act: Activation, x: &Tensor) -> Tensor;
    /// Gradient of an activation given its input `x`, output `y` and `dy`.
    fn activation_backward(
        &self,
        act: Activation,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Tensor>;
    /// PReLU with weight `a` of shape `[1]` or `[C]`.
    fn prelu(&self, x: &Tensor, a: &Tensor) -> Result<Tensor>;
    /// Gradients of [`prelu`](Backend::prelu): `(dx, da)`.
    fn prelu_backward(&self, x: &Tensor, a: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)>;
    /// Batch norm with batch statistics: returns the output and the
    /// statistics used.
    fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, BatchNormStats)>;
    /// Batch norm with given (running) statistics.
    fn batch_norm_eval(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        stats: &BatchNormStats,
        eps: f32,
    ) -> Result<Tensor>;
    /// Gradients of batch norm `(dx, dgamma, dbeta)`; `batch_stats` says
    /// whether `stats` were computed from `x` (training) or fixed (eval).
    fn batch_norm_backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        stats: &BatchNormStats,
        eps: f32,
        batch_stats: bool,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)>;
    /// Global average pooling: `[N, C, H, W]` → `[N, C, 1, 1]`.
    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor>;
    /// Gradient of global average pooling for an input of `x_shape`.
    fn global_avg_pool_backward(&self, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor>;
    /// Concatenates NCHW tensors along channels.
    fn concat_channels(&self, xs: &[&Tensor]) -> Result<Tensor>;
    /// Splits an NCHW tensor along channels into pieces of `sizes` channels.
    fn split_channels(&self, x: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>>;
    /// `a + b`, `b` of `a`'s shape or `[N, C, 1, 1]` (broadcast over space).
    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    /// `a * b`, `b` of `a`'s shape or `[N, C, 1, 1]` (broadcast over space).
    fn mul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    /// Sums an NCHW tensor over space: `[N, C, H, W]` → `[N, C, 1, 1]` (the
    /// adjoint of the broadcast in [`add`](Backend::add)/[`mul`](Backend::mul)).
    fn sum_spatial(&self, x: &Tensor) -> Result<Tensor>;
    /// `s * x`.
    fn scale(&self, x: &Tensor, s: f32) -> Tensor;
    /// `acc += x` (same shape).
    fn add_assign(&self, acc: &mut Tensor, x: &Tensor) -> Result<()>;
    /// Mean squared error `mean((x - t)²)`, accumulated in f64.
    fn mse_loss(&self, x: &Tensor, t: &Tensor) -> Result<f32>;
    /// Gradient of [`mse_loss`](Backend::mse_loss) times `dloss`.
    fn mse_loss_backward(&self, x: &Tensor, t: &Tensor, dloss: f32) -> Result<Tensor>;
    /// Mean absolute error `mean(|x - t|)`, accumulated in f64.
    fn l1_loss(&self, x: &Tensor, t: &Tensor) -> Result<f32>;
    /// Gradient of [`l1_loss`](Backend::l1_loss) times `dloss` (0 where `x == t`).
    fn l1_loss_backward(&self, x: &Tensor, t: &Tensor, dloss: f32) -> Result<Tensor>;
    /// One Adam update of `param` in place, with moment buffers `m`, `v`.
    fn adam_update(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        hp: AdamStep,
    ) -> Result<()>;
}

/// The multi-threaded CPU backend (rayon; uses the current rayon pool).
///
/// 3x3 and 5x5, stride-1, ungrouped convolutions with at least 4 input and
/// 6 output channels on images that are not tiny run with Winograd's
/// F(2x2, 3x3) / F(2x2, 5x5) algorithms (Lavin & Gray, CVPR 2016),
/// forward, input gradient and weight gradient: 2.25x (2.78x) fewer
/// multiplies, up to about 2x (1.6-1.8x) faster than the GEMM path on
/// large images, and within about 1e-6 (1e-5) of the output's magnitude of
/// its results (which still do not depend on the number of threads).
/// [`Cpu::conv2d_gemm`] is the convolution without it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// The default backend instance.
pub static CPU: Cpu = Cpu;

impl Cpu {
    /// [`Backend::conv2d`] without the Winograd F(2x2, 3x3) algorithm (see
    /// [`Cpu`]): always the direct / im2col + GEMM kernels, whose every
    /// output is a plain dot product of inputs and weights. Up to 2x
    /// slower on 3x3 layers; for comparisons (benchmarks, tests) and for
    /// callers who need that rounding behaviour.
    pub fn conv2d_gemm(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        conv2d_with(kernels::conv2d_forward_gemm, x, w, b, cfg, false)
    }

    /// [`Backend::conv2d_backward_weight`] without Winograd (see
    /// [`Cpu::conv2d_gemm`]).
    pub fn conv2d_backward_weight_gemm(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        conv2d_backward_weight_with(kernels::conv2d_backward_weight_gemm, x, dy, w_shape, cfg)
    }
}

/// A weight-gradient kernel: `(x, dy, geometry, dw)`.
type WeightGradKernel = fn(&[f32], &[f32], &ConvGeom, &mut [f32]);

/// A convolution's weight gradient through `kernel` (Winograd-or-GEMM, or
/// GEMM only): the shapes checked, the gradient allocated.
fn conv2d_backward_weight_with(
    kernel: WeightGradKernel,
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let g = conv_geom_for_grad(x.shape(), w_shape, cfg, dy)?;
    let mut dw = vec![0.0; w_shape.iter().product()];
    kernel(x.data(), dy.data(), &g, &mut dw);
    Tensor::new(w_shape, dw)
}

/// A forward-convolution kernel: `(x, w, bias and activation, geometry, y)`.
type ConvKernel = fn(&[f32], &[f32], kernels::Epilogue, &ConvGeom, &mut [f32]);

/// A forward convolution through `kernel` (Winograd-or-GEMM, or GEMM only):
/// the shapes checked, the output allocated.
fn conv2d_with(
    kernel: ConvKernel,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
    relu: bool,
) -> Result<Tensor> {
    let g = conv_geom(x.shape(), w.shape(), cfg)?;
    check_bias(b, g.cout)?;
    let mut y = vec![0.0; g.n * g.cout * g.oh * g.ow];
    let epi = kernels::Epilogue {
        bias: b.map(|b| b.data()),
        relu,
    };
    kernel(x.data(), w.data(), epi, &g, &mut y);
    Tensor::new(&[g.n, g.cout, g.oh, g.ow], y)
}

/// Element count above which element-wise loops go parallel.
const PAR_MIN: usize = 1 << 15;

fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    if x.len() >= PAR_MIN {
        x.par_iter().map(|&v| f(v)).collect()
    } else {
        x.iter().map(|&v| f(v)).collect()
    }
}

fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    if a.len() >= PAR_MIN {
        a.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}

fn mismatch(op: &str, a: &[usize], b: &[usize]) -> Error {
    Error::ShapeMismatch {
        left: format!("{op}: {}", shape_str(a)),
        right: shape_str(b),
    }
}

/// [`conv_geom`] for a backward pass, also checking that the incoming
/// gradient `dy` has the forward output's shape.
fn conv_geom_for_grad(
    x_shape: &[usize],
    w_shape: &[usize],
    cfg: Conv2dConfig,
    dy: &Tensor,
) -> Result<ConvGeom> {
    let g = conv_geom(x_shape, w_shape, cfg)?;
    let expected = [g.n, g.cout, g.oh, g.ow];
    if dy.shape() != expected {
        return Err(mismatch("conv2d grad_output", dy.shape(), &expected));
    }
    Ok(g)
}

/// Validates a convolution and resolves its geometry.
fn conv_geom(x: &[usize], w: &[usize], cfg: Conv2dConfig) -> Result<ConvGeom> {
    let ([n, cin, h, wd], [cout, cin_g, kh, kw]) = (x, w) else {
        return Err(Error::invalid(
            "conv2d shapes",
            format!(
                "need 4-D input and weight, got {} and {}",
                shape_str(x),
                shape_str(w)
            ),
        ));
    };
    let (n, cin, h, wd, cout, cin_g, kh, kw) = (*n, *cin, *h, *wd, *cout, *cin_g, *kh, *kw);
    if cfg.stride == 0 || cfg.groups == 0 {
        return Err(Error::invalid(
            "conv2d",
            "stride and groups must be at least 1",
        ));
    }
    if cin % cfg.groups != 0 || cout % cfg.groups != 0 || cin_g * cfg.groups != cin {
        return Err(Error::invalid(
            "conv2d groups",
            format!(
                "input {} / weight {} incompatible with groups = {}",
                shape_str(x),
                shape_str(w),
                cfg.groups
            ),
        ));
    }
    if h + 2 * cfg.padding < kh || wd + 2 * cfg.padding < kw || kh == 0 || kw == 0 {
        return Err(Error::invalid(
            "conv2d kernel",
            format!(
                "kernel {kh}x{kw} larger than padded input {h}x{wd} (padding {})",
                cfg.padding
            ),
        ));
    }
    Ok(ConvGeom {
        n,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        sh: cfg.stride,
        sw: cfg.stride,
        ph: cfg.padding,
        pw: cfg.padding,
        groups: cfg.groups,
        oh: (h + 2 * cfg.padding - kh) / cfg.stride + 1,
        ow: (wd + 2 * cfg.padding - kw) / cfg.stride + 1,
    })
}

/// Geometry of a transposed convolution, expressed as the convolution whose
/// input gradient it is: conv input = transposed output `y`, conv output = `x`.
fn conv_t_geom(x: &[usize], w: &[usize], cfg: ConvTranspose2dConfig) -> Result<ConvGeom> {
    let ([n, cin, h, wd], [wcin, cout_g, kh, kw]) = (x, w) else {
        return Err(Error::invalid(
            "conv_transpose2d shapes",
            format!(
                "need 4-D input and weight, got {} and {}",
                shape_str(x),
                shape_str(w)
            ),
        ));
    };
    let s = cfg.stride;
    if s == 0 || cfg.groups == 0 || cfg.output_padding >= s {
        return Err(Error::invalid(
            "conv_transpose2d",
            "stride, groups >= 1 and output_padding < stride required",
        ));
    }
    if *wcin != *cin || cin % cfg.groups != 0 || *h == 0 || *wd == 0 {
        return Err(mismatch("conv_transpose2d input vs weight", x, w));
    }
    let oh = ((h - 1) * s + kh + cfg.output_padding).checked_sub(2 * cfg.padding);
    let ow = ((wd - 1) * s + kw + cfg.output_padding).checked_sub(2 * cfg.padding);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(Error::invalid(
            "conv_transpose2d padding",
            "padding larger than the output",
        ));
    };
    if oh == 0 || ow == 0 {
        return Err(Error::invalid("conv_transpose2d padding", "empty output"));
    }
    conv_geom(
        &[*n, cout_g * cfg.groups, oh, ow],
        &[*cin, *cout_g, *kh, *kw],
        Conv2dConfig {
            stride: s,
            padding: cfg.padding,
            groups: cfg.groups,
        },
    )
}

fn check_bias(b: Option<&Tensor>, c: usize) -> Result<()> {
    match b {
        Some(b) if b.shape() != [c] => Err(mismatch("bias", b.shape(), &[c])),
        _ => Ok(()),
    }
}

fn add_bias(y: &mut [f32], b: &[f32], plane: usize) {
    for (i, chunk) in y.chunks_mut(plane).enumerate() {
        let bv = b[i % b.len()];
        chunk.iter_mut().for_each(|v| *v += bv);
    }
}

/// `tanh` as a rational function of odd degree 13 over even degree 6 (the
/// approximation Eigen and XLA use), within 5e-7 of the exact value on all
/// of f32 (a unit test checks). libm's `tanhf` is a scalar call of ~20 ns
/// that made ESPCN 2.4x slower than PyTorch; this one vectorises.
#[inline]
fn fast_tanh(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    // Beyond this |x| the f32 result is ±1 to the last bit.
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for &a in ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    let mut q = BETA[3];
    for &b in BETA[..3].iter().rev() {
        q = q * x2 + b;
    }
    x * p / q
}

/// Fails unless an `h x w` image splits into `r x r` blocks.
fn check_divisible(op: &'static str, h: usize, w: usize, r: usize) -> Result<()> {
    if r == 0 || h % r != 0 || w % r != 0 {
        return Err(Error::invalid(
            op,
            format!("size {h}x{w} not divisible by {r}"),
        ));
    }
    Ok(())
}

/// Broadcast kind of a binary op's second operand.
fn broadcast_plane(a: &Tensor, b: &Tensor, op: &str) -> Result<usize> {
    if a.shape() == b.shape() {
        return Ok(1);
    }
    match (a.shape(), b.shape()) {
        ([n, c, h, w], [bn, bc, 1, 1]) if n == bn && c == bc => Ok(h * w),
        _ => Err(mismatch(op, a.shape(), b.shape())),
    }
}

impl Backend for Cpu {
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        conv2d_with(kernels::conv2d_forward, x, w, b, cfg, false)
    }

    fn conv2d_relu(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        conv2d_with(kernels::conv2d_forward, x, w, b, cfg, true)
    }

    fn conv2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        let g = conv_geom_for_grad(x_shape, w.shape(), cfg, dy)?;
        let mut dx = vec![0.0; x_shape.iter().product()];
        kernels::conv2d_backward_input(dy.data(), w.data(), &g, &mut dx);
        Tensor::new(x_shape, dx)
    }

    fn conv2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        cfg: Conv2dConfig,
    ) -> Result<Tensor> {
        conv2d_backward_weight_with(kernels::conv2d_backward_weight, x, dy, w_shape, cfg)
    }

    fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor> {
        let g = conv_t_geom(x.shape(), w.shape(), cfg)?;
        check_bias(b, g.cin)?;
        let mut y = vec![0.0; g.n * g.cin * g.h * g.w];
        kernels::conv2d_backward_input(x.data(), w.data(), &g, &mut y);
        if let Some(b) = b {
            add_bias(&mut y, b.data(), g.h * g.w);
        }
        Tensor::new(&[g.n, g.cin, g.h, g.w], y)
    }

    fn conv_transpose2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor> {
        self.conv2d(
            dy,
            w,
            None,
            Conv2dConfig {
                stride: cfg.stride,
                padding: cfg.padding,
                groups: cfg.groups,
            },
        )
    }

    fn conv_transpose2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        cfg: ConvTranspose2dConfig,
    ) -> Result<Tensor> {
        let g = conv_t_geom(x.shape(), w_shape, cfg)?;
        if dy.shape() != [g.n, g.cin, g.h, g.w] {
            return Err(mismatch(
                "conv_transpose2d grad_output",
                dy.shape(),
                &[g.n, g.cin, g.h, g.w],
            ));
        }
        let mut dw = vec![0.0; w_shape.iter().product()];
        kernels::conv2d_backward_weight(dy.data(), x.data(), &g, &mut dw);
        Tensor::new(w_shape, dw)
    }

    fn channel_sum(&self, dy: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = dy.dims4()?;
        let mut s = vec![0.0f64; c];
        for (i, plane) in dy.data().chunks(h * w).enumerate() {
            s[i % c] += plane.iter().map(|&v| v as f64).sum::<f64>();
        }
        let _ = n;
        Tensor::new(&[c], s.into_iter().map(|v| v as f32).collect())
    }

    fn pixel_shuffle(&self, x: &Tensor, r: usize) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if r == 0 || c % (r * r) != 0 {
            return Err(Error::invalid(
                "pixel_shuffle",
                format!("channels {c} not divisible by r² = {}", r * r),
            ));
        }
        let co = c / (r * r);
        let mut y = vec![0.0; x.numel()];
        let xd = x.data();
        let (oh, ow) = (h * r, w * r);
        for ni in 0..n {
            for ci in 0..co {
                for i in 0..r {
                    for j in 0..r {
                        let src = &xd[((ni * c + ci * r * r + i * r + j) * h) * w..][..h * w];
                        let dst = &mut y[(ni * co + ci) * oh * ow..][..oh * ow];
                        for yy in 0..h {
                            let drow = &mut dst[(yy * r + i) * ow..][..ow];
                            for (xx, &v) in src[yy * w..(yy + 1) * w].iter().enumerate() {
                                drow[xx * r + j] = v;
                            }
                        }
                    }
                }
            }
        }
        Tensor::new(&[n, co, oh, ow], y)
    }

    fn pixel_unshuffle(&self, x: &Tensor, r: usize) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        check_divisible("pixel_unshuffle", h, w, r)?;
        let (ih, iw) = (h / r, w / r);
        let mut y = vec![0.0; x.numel()];
        let xd = x.data();
        for ni in 0..n {
            for ci in 0..c {
                let src = &xd[(ni * c + ci) * h * w..][..h * w];
                for i in 0..r {
                    for j in 0..r {
                        let dst =
                            &mut y[((ni * c + ci) * r * r + i * r + j) * ih * iw..][..ih * iw];
                        for yy in 0..ih {
                            let srow = &src[(yy * r + i) * w..][..w];
                            for xx in 0..iw {
                                dst[yy * iw + xx] = srow[xx * r + j];
                            }
                        }
                    }
                }
            }
        }
        Tensor::new(&[n, c * r * r, ih, iw], y)
    }

    fn upsample_nearest(&self, x: &Tensor, r: usize) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if r == 0 {
            return Err(Error::invalid(
                "upsample_nearest",
                "factor must be positive",
            ));
        }
        let (oh, ow) = (h * r, w * r);
        let mut y = vec![0.0; n * c * oh * ow];
        y.par_chunks_mut(oh * ow)
            .zip(x.data().par_chunks(h * w))
            .for_each(|(dst, src)| {
                for (yy, srow) in src.chunks(w).enumerate() {
                    let first = &mut dst[yy * r * ow..][..ow];
                    for (d, &v) in first.chunks_mut(r).zip(srow) {
                        d.fill(v);
                    }
                    for i in 1..r {
                        dst.copy_within(yy * r * ow..(yy * r + 1) * ow, (yy * r + i) * ow);
                    }
                }
            });
        Tensor::new(&[n, c, oh, ow], y)
    }

    fn upsample_nearest_backward(&self, dy: &Tensor, r: usize) -> Result<Tensor> {
        let (n, c, h, w) = dy.dims4()?;
        check_divisible("upsample_nearest_backward", h, w, r)?;
        let (ih, iw) = (h / r, w / r);
        let mut dx = vec![0.0; n * c * ih * iw];
        dx.par_chunks_mut(ih * iw)
            .zip(dy.data().par_chunks(h * w))
            .for_each(|(dst, src)| {
                for (yy, drow) in src.chunks(w).enumerate() {
                    let out = &mut dst[(yy / r) * iw..][..iw];
                    for (o, block) in out.iter_mut().zip(drow.chunks(r)) {
                        *o += block.iter().sum::<f32>();
                    }
                }
            });
        Tensor::new(&[n, c, ih, iw], dx)
    }

    fn activation(&self, act: Activation, x: &Tensor) -> Tensor {
        let d = match act {
            Activation::Relu => map1(x.data(), |v| v.max(0.0)),
            Activation::LeakyRelu(s) => map1(x.data(), |v| if v >= 0.0 { v } else { s * v }),
            Activation::Sigmoid => map1(x.data(), |v| 1.0 / (1.0 + (-v).exp())),
            Activation::Tanh => map1(x.data(), fast_tanh),
        };
        Tensor::new(x.shape(), d).unwrap_or_else(|_| unreachable!("same element count"))
    }

    fn activation_backward(
        &self,
        act: Activation,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<Tensor> {
        x.check_same_shape(dy)?;
        y.check_same_shape(dy)?;
        let d = match act {
            Activation::Relu => map2(x.data(), dy.data(), |x, g| if x > 0.0 { g } else { 0.0 }),
            Activation::LeakyRelu(s) => {
                map2(x.data(), dy.data(), |x, g| if x > 0.0 { g } else { s * g })
            }
            Activation::Sigmoid => map2(y.data(), dy.data(), |y, g| g * y * (1.0 - y)),
            Activation::Tanh => map2(y.data(), dy.data(), |y, g| g * (1.0 - y * y)),
        };
        Tensor::new(x.shape(), d)
    }

    fn prelu(&self, x: &Tensor, a: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if a.numel() != 1 && a.shape() != [c] {
            return Err(mismatch("prelu weight", a.shape(), &[c]));
        }
        let mut y = x.data().to_vec();
        for (i, plane) in y.chunks_mut(h * w).enumerate() {
            let s = a.data()[(i % c) % a.numel()];
            plane.iter_mut().for_each(|v| {
                if *v < 0.0 {
                    *v *= s
                }
            });
        }
        Tensor::new(x.shape(), y)
    }

    fn prelu_backward(&self, x: &Tensor, a: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        x.check_same_shape(dy)?;
        let (_, c, h, w) = x.dims4()?;
        let mut dx = dy.data().to_vec();
        let mut da = vec![0.0f64; a.numel()];
        for (i, (plane, xp)) in dx.chunks_mut(h * w).zip(x.data().chunks(h * w)).enumerate() {
            let k = (i % c) % a.numel();
            let s = a.data()[k];
            let mut acc = 0.0f64;
            for (g, &xv) in plane.iter_mut().zip(xp) {
                if xv < 0.0 {
                    acc += (*g * xv) as f64;
                    *g *= s;
                }
            }
            da[k] += acc;
        }
        Ok((
            Tensor::new(x.shape(), dx)?,
            Tensor::new(a.shape(), da.into_iter().map(|v| v as f32).collect())?,
        ))
    }

    fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, BatchNormStats)> {
        let (n, c, h, w) = x.dims4()?;
        let m = (n * h * w) as f64;
        if m == 0.0 {
            return Err(Error::invalid("batch_norm", "empty batch"));
        }
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for (i, plane) in x.data().chunks(h * w).enumerate() {
            for &v in plane {
                sum[i % c] += v as f64;
                sq[i % c] += (v as f64) * (v as f64);
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / m) as f32).collect();
        let var: Vec<f32> = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| ((q / m) - (s / m) * (s / m)).max(0.0) as f32)
            .collect();
        let stats = BatchNormStats { mean, var };
        let y = self.batch_norm_eval(x, gamma, beta, &stats, eps)?;
        Ok((y, stats))
    }

    fn batch_norm_eval(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        stats: &BatchNormStats,
        eps: f32,
    ) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        for t in [gamma.shape(), beta.shape()] {
            if t != [c] {
                return Err(mismatch("batch_norm affine", t, &[c]));
            }
        }
        if stats.mean.len() != c || stats.var.len() != c {
            return Err(mismatch("batch_norm stats", &[stats.mean.len()], &[c]));
        }
        let mut y = x.data().to_vec();
        for (i, plane) in y.chunks_mut(h * w).enumerate() {
            let k = i % c;
            let inv = 1.0 / (stats.var[k] + eps).sqrt();
            let (s, t) = (
                gamma.data()[k] * inv,
                beta.data()[k] - gamma.data()[k] * inv * stats.mean[k],
            );
            plane.iter_mut().for_each(|v| *v = *v * s + t);
        }
        Tensor::new(x.shape(), y)
    }

    fn batch_norm_backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        stats: &BatchNormStats,
        eps: f32,
        batch_stats: bool,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        x.check_same_shape(dy)?;
        let (n, c, h, w) = x.dims4()?;
        let m = (n * h * w) as f64;
        let inv: Vec<f64> = stats
            .var
            .iter()
            .map(|v| 1.0 / ((*v + eps) as f64).sqrt())
            .collect();
        let mut dbeta = vec![0.0f64; c];
        let mut dgamma = vec![0.0f64; c];
        for (i, (gp, xp)) in dy
            .data()
            .chunks(h * w)
            .zip(x.data().chunks(h * w))
            .enumerate()
        {
            let k = i % c;
            for (&g, &xv) in gp.iter().zip(xp) {
                dbeta[k] += g as f64;
                dgamma[k] += g as f64 * (xv as f64 - stats.mean[k] as f64) * inv[k];
            }
        }
        let mut dx = dy.data().to_vec();
        for (i, (gp, xp)) in dx.chunks_mut(h * w).zip(x.data().chunks(h * w)).enumerate() {
            let k = i % c;
            let gk = gamma.data()[k] as f64;
            for (g, &xv) in gp.iter_mut().zip(xp) {
                *g = if batch_stats {
                    let xhat = (xv as f64 - stats.mean[k] as f64) * inv[k];
                    (gk * inv[k] / m * (m * *g as f64 - dbeta[k] - xhat * dgamma[k])) as f32
                } else {
                    (gk * inv[k] * *g as f64) as f32
                };
            }
        }
        let to32 = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
        Ok((
            Tensor::new(x.shape(), dx)?,
            Tensor::new(&[c], to32(dgamma))?,
            Tensor::new(&[c], to32(dbeta))?,
        ))
    }

    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let s = self.sum_spatial(x)?;
        let hw = (h * w).max(1) as f32;
        Tensor::new(
            &[n, c, 1, 1],
            s.into_data().into_iter().map(|v| v / hw).collect(),
        )
    }

    fn global_avg_pool_backward(&self, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
        let [n, c, h, w] = *x_shape else {
            return Err(mismatch("global_avg_pool input", x_shape, &[0, 0, 0, 0]));
        };
        if dy.shape() != [n, c, 1, 1] {
            return Err(mismatch("global_avg_pool grad", dy.shape(), &[n, c, 1, 1]));
        }
        let hw = (h * w) as f32;
        let mut dx = vec![0.0; n * c * h * w];
        for (plane, &g) in dx.chunks_mut(h * w).zip(dy.data()) {
            plane.fill(g / hw);
        }
        Tensor::new(x_shape, dx)
    }

    fn concat_channels(&self, xs: &[&Tensor]) -> Result<Tensor> {
        let Some(first) = xs.first() else {
            return Err(Error::invalid("concat", "no tensors to concatenate"));
        };
        let (n, _, h, w) = first.dims4()?;
        let mut ctot = 0;
        for t in xs {
            let (tn, tc, th, tw) = t.dims4()?;
            if (tn, th, tw) != (n, h, w) {
                return Err(mismatch("concat", t.shape(), first.shape()));
            }
            ctot += tc;
        }
        let mut y = Vec::with_capacity(n * ctot * h * w);
        for ni in 0..n {
            for t in xs {
                let per = t.numel() / n.max(1);
                y.extend_from_slice(&t.data()[ni * per..(ni + 1) * per]);
            }
        }
        Tensor::new(&[n, ctot, h, w], y)
    }

    fn split_channels(&self, x: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        if sizes.iter().sum::<usize>() != c {
            return Err(Error::invalid(
                "split",
                format!("sizes {sizes:?} do not sum to {c}"),
            ));
        }
        let mut outs: Vec<Vec<f32>> = sizes
            .iter()
            .map(|s| Vec::with_capacity(n * s * h * w))
            .collect();
        let mut off = 0;
        for ni in 0..n {
            for (o, &s) in outs.iter_mut().zip(sizes) {
                let start = (ni * c) * h * w + off * h * w;
                o.extend_from_slice(&x.data()[start..start + s * h * w]);
                off += s;
            }
            off = 0;
        }
        outs.into_iter()
            .zip(sizes)
            .map(|(d, &s)| Tensor::new(&[n, s, h, w], d))
            .collect()
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let plane = broadcast_plane(a, b, "add")?;
        if plane == 1 {
            return Tensor::new(a.shape(), map2(a.data(), b.data(), |x, y| x + y));
        }
        let mut y = a.data().to_vec();
        for (p, &bv) in y.chunks_mut(plane).zip(b.data()) {
            p.iter_mut().for_each(|v| *v += bv);
        }
        Tensor::new(a.shape(), y)
    }

    fn mul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let plane = broadcast_plane(a, b, "mul")?;
        if plane == 1 {
            return Tensor::new(a.shape(), map2(a.data(), b.data(), |x, y| x * y));
        }
        let mut y = a.data().to_vec();
        for (p, &bv) in y.chunks_mut(plane).zip(b.data()) {
            p.iter_mut().for_each(|v| *v *= bv);
        }
        Tensor::new(a.shape(), y)
    }

    fn sum_spatial(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let s = x
            .data()
            .chunks(h * w)
            .map(|p| p.iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect();
        Tensor::new(&[n, c, 1, 1], s)
    }

    fn scale(&self, x: &Tensor, s: f32) -> Tensor {
        Tensor::new(x.shape(), map1(x.data(), |v| v * s))
            .unwrap_or_else(|_| unreachable!("same element count"))
    }

    fn add_assign(&self, acc: &mut Tensor, x: &Tensor) -> Result<()> {
        acc.check_same_shape(x)?;
        if x.numel() >= PAR_MIN {
            acc.data_mut()
                .par_iter_mut()
                .zip(x.data())
                .for_each(|(a, b)| *a += *b);
        } else {
            acc.data_mut()
                .iter_mut()
                .zip(x.data())
                .for_each(|(a, b)| *a += *b);
        }
        Ok(())
    }

    fn mse_loss(&self, x: &Tensor, t: &Tensor) -> Result<f32> {
        x.check_same_shape(t)?;
        let s: f64 = x
            .data()
            .iter()
            .zip(t.data())
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        Ok((s / x.numel().max(1) as f64) as f32)
    }

    fn mse_loss_backward(&self, x: &Tensor, t: &Tensor, dloss: f32) -> Result<Tensor> {
        x.check_same_shape(t)?;
        let k = 2.0 * dloss / x.numel().max(1) as f32;
        Tensor::new(x.shape(), map2(x.data(), t.data(), |a, b| k * (a - b)))
    }

    fn l1_loss(&self, x: &Tensor, t: &Tensor) -> Result<f32> {
        x.check_same_shape(t)?;
        let s: f64 = x
            .data()
            .iter()
            .zip(t.data())
            .map(|(&a, &b)| ((a - b) as f64).abs())
            .sum();
        Ok((s / x.numel().max(1) as f64) as f32)
    }

    fn l1_loss_backward(&self, x: &Tensor, t: &Tensor, dloss: f32) -> Result<Tensor> {
        x.check_same_shape(t)?;
        let k = dloss / x.numel().max(1) as f32;
        Tensor::new(
            x.shape(),
            map2(x.data(), t.data(), |a, b| {
                if a > b {
                    k
                } else if a < b {
                    -k
                } else {
                    0.0
                }
            }),
        )
    }

    fn adam_update(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        hp: AdamStep,
    ) -> Result<()> {
        let n = param.len();
        if grad.len() != n || m.len() != n || v.len() != n {
            return Err(mismatch(
                "adam state",
                &[grad.len(), m.len(), v.len()],
                &[n],
            ));
        }
        // PyTorch's single-tensor Adam: step_size = lr / (1 - b1^t),
        // denom = sqrt(v) / sqrt(1 - b2^t) + eps.
        let t = hp.step as i32;
        let bc1 = 1.0 - (hp.beta1 as f64).powi(t);
        let bc2 = 1.0 - (hp.beta2 as f64).powi(t);
        let step_size = (hp.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for i in 0..n {
            let g = grad[i] + hp.weight_decay * param[i];
            m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g;
            v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g * g;
            let denom = v[i].sqrt() / bc2_sqrt + hp.eps;
            param[i] -= step_size * m[i] / denom;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tanh_tests {
    #[test]
    fn fast_tanh_is_within_5e_7_of_tanh() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-5;
            let err = (f64::from(super::fast_tanh(x)) - f64::from(x).tanh()).abs();
            worst = worst.max(err);
        }
        for x in [-1e30f32, -20.0, -8.0, 8.0, 20.0, 1e30] {
            assert_eq!(super::fast_tanh(x), x.signum());
        }
        assert!(worst < 5e-7, "max error {worst}");
        assert!(super::fast_tanh(f32::NAN).is_nan());
    }
}
