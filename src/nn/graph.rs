//! Reverse-mode automatic differentiation on a tape.
//!
//! A [`Graph`] records every operation applied to its [`Var`]s (an enum per
//! op, plus the forward value). [`Graph::backward`] walks the tape once in
//! reverse, propagating gradients only into nodes that depend on a parameter
//! (so, e.g., the input gradient of a first convolution is never computed),
//! and returns the parameters' [`Gradients`]. A graph is built per training
//! step and dropped afterwards; inference does not need one (layers have
//! tape-free `infer` methods that call the [`Backend`] directly).

use super::backend::{
    Activation, Backend, BatchNormStats, Conv2dConfig, ConvTranspose2dConfig, CPU,
};
use super::params::{Gradients, ParamId, ParamStore};
use super::tensor::Tensor;
use crate::error::{Error, Result};

/// A value recorded on a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(usize);

#[derive(Debug, Clone)]
enum Op {
    Leaf,
    Conv2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        cfg: Conv2dConfig,
    },
    ConvTranspose2d {
        x: usize,
        w: usize,
        b: Option<usize>,
        cfg: ConvTranspose2dConfig,
    },
    PixelShuffle {
        x: usize,
        r: usize,
    },
    PixelUnshuffle {
        x: usize,
        r: usize,
    },
    UpsampleNearest {
        x: usize,
        r: usize,
    },
    Act {
        x: usize,
        act: Activation,
    },
    Prelu {
        x: usize,
        a: usize,
    },
    BatchNorm {
        x: usize,
        gamma: usize,
        beta: usize,
        stats: BatchNormStats,
        eps: f32,
        batch_stats: bool,
    },
    GlobalAvgPool {
        x: usize,
    },
    Concat {
        xs: Vec<usize>,
    },
    Add {
        a: usize,
        b: usize,
    },
    Mul {
        a: usize,
        b: usize,
    },
    Scale {
        x: usize,
        s: f32,
    },
    Mse {
        x: usize,
        t: usize,
    },
    L1 {
        x: usize,
        t: usize,
    },
}

#[derive(Debug)]
struct Node {
    value: Tensor,
    op: Op,
    requires_grad: bool,
    param: Option<ParamId>,
}

/// Running statistics of a batch-norm layer (PyTorch `running_mean`,
/// `running_var`), updated by training-mode forward passes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// Running per-channel mean (starts at 0).
    pub mean: Vec<f32>,
    /// Running per-channel unbiased variance (starts at 1).
    pub var: Vec<f32>,
}

impl RunningStats {
    /// Fresh statistics for `c` channels (mean 0, variance 1, as PyTorch).
    pub fn new(c: usize) -> Self {
        RunningStats {
            mean: vec![0.0; c],
            var: vec![1.0; c],
        }
    }
}

/// A tape of operations, for one forward + backward pass.
#[derive(Debug)]
pub struct Graph<'b> {
    backend: &'b dyn Backend,
    nodes: Vec<Node>,
}

impl Default for Graph<'static> {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph<'static> {
    /// An empty graph on the CPU backend.
    pub fn new() -> Self {
        Graph {
            backend: &CPU,
            nodes: Vec::new(),
        }
    }
}

impl<'b> Graph<'b> {
    /// An empty graph on `backend`.
    pub fn with_backend(backend: &'b dyn Backend) -> Self {
        Graph {
            backend,
            nodes: Vec::new(),
        }
    }

    /// The backend the graph computes with.
    pub fn backend(&self) -> &'b dyn Backend {
        self.backend
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn push(&mut self, value: Tensor, op: Op, inputs: &[usize]) -> Var {
        let requires_grad = inputs.iter().any(|&i| self.nodes[i].requires_grad);
        let op = if requires_grad { op } else { Op::Leaf };
        self.nodes.push(Node {
            value,
            op,
            requires_grad,
            param: None,
        });
        Var(self.nodes.len() - 1)
    }

    fn v(&self, x: Var) -> &Tensor {
        &self.nodes[x.0].value
    }

    /// Records a constant (data, targets): no gradient flows into it.
    pub fn input(&mut self, t: Tensor) -> Var {
        self.nodes.push(Node {
            value: t,
            op: Op::Leaf,
            requires_grad: false,
            param: None,
        });
        Var(self.nodes.len() - 1)
    }

    /// Records (a copy of) parameter `id` of `store`; its gradient is
    /// reported by [`backward`](Self::backward).
    pub fn param(&mut self, store: &ParamStore, id: ParamId) -> Var {
        self.nodes.push(Node {
            value: store.get(id).clone(),
            op: Op::Leaf,
            requires_grad: true,
            param: Some(id),
        });
        Var(self.nodes.len() - 1)
    }

    /// The forward value of `x`.
    pub fn value(&self, x: Var) -> &Tensor {
        self.v(x)
    }

    /// The scalar value of a loss node.
    pub fn scalar(&self, x: Var) -> Result<f32> {
        match self.v(x).data() {
            [v] => Ok(*v),
            _ => Err(Error::invalid("scalar", "tensor has more than one element")),
        }
    }

    /// 2-D convolution, see [`Backend::conv2d`].
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>, cfg: Conv2dConfig) -> Result<Var> {
        let y = self
            .backend
            .conv2d(self.v(x), self.v(w), b.map(|b| self.v(b)), cfg)?;
        let mut ins = vec![x.0, w.0];
        ins.extend(b.map(|b| b.0));
        Ok(self.push(
            y,
            Op::Conv2d {
                x: x.0,
                w: w.0,
                b: b.map(|b| b.0),
                cfg,
            },
            &ins,
        ))
    }

    /// 2-D transposed convolution, see [`Backend::conv_transpose2d`].
    pub fn conv_transpose2d(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        cfg: ConvTranspose2dConfig,
    ) -> Result<Var> {
        let y = self
            .backend
            .conv_transpose2d(self.v(x), self.v(w), b.map(|b| self.v(b)), cfg)?;
        let mut ins = vec![x.0, w.0];
        ins.extend(b.map(|b| b.0));
        Ok(self.push(
            y,
            Op::ConvTranspose2d {
                x: x.0,
                w: w.0,
                b: b.map(|b| b.0),
                cfg,
            },
            &ins,
        ))
    }

    /// Pixel shuffle by `r` (PyTorch `PixelShuffle`).
    pub fn pixel_shuffle(&mut self, x: Var, r: usize) -> Result<Var> {
        let y = self.backend.pixel_shuffle(self.v(x), r)?;
        Ok(self.push(y, Op::PixelShuffle { x: x.0, r }, &[x.0]))
    }

    /// Pixel unshuffle by `r`, the inverse of [`Graph::pixel_shuffle`]
    /// (PyTorch `PixelUnshuffle`).
    pub fn pixel_unshuffle(&mut self, x: Var, r: usize) -> Result<Var> {
        let y = self.backend.pixel_unshuffle(self.v(x), r)?;
        Ok(self.push(y, Op::PixelUnshuffle { x: x.0, r }, &[x.0]))
    }

    /// Nearest-neighbour upsampling by `r`, see [`Backend::upsample_nearest`].
    pub fn upsample_nearest(&mut self, x: Var, r: usize) -> Result<Var> {
        let y = self.backend.upsample_nearest(self.v(x), r)?;
        Ok(self.push(y, Op::UpsampleNearest { x: x.0, r }, &[x.0]))
    }

    /// A parameter-free activation.
    pub fn activation(&mut self, x: Var, act: Activation) -> Var {
        let y = self.backend.activation(act, self.v(x));
        self.push(y, Op::Act { x: x.0, act }, &[x.0])
    }

    /// ReLU.
    pub fn relu(&mut self, x: Var) -> Var {
        self.activation(x, Activation::Relu)
    }

    /// PReLU with a `[1]` or `[C]` slope parameter.
    pub fn prelu(&mut self, x: Var, a: Var) -> Result<Var> {
        let y = self.backend.prelu(self.v(x), self.v(a))?;
        Ok(self.push(y, Op::Prelu { x: x.0, a: a.0 }, &[x.0, a.0]))
    }

    /// Batch normalisation. With `training`, normalises with the batch
    /// statistics and updates `running` (`momentum` as PyTorch, 0.1 by
    /// default; unbiased variance); otherwise normalises with `running`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        running: &mut RunningStats,
        momentum: f32,
        eps: f32,
        training: bool,
    ) -> Result<Var> {
        let (y, stats) = if training {
            let (y, stats) =
                self.backend
                    .batch_norm_train(self.v(x), self.v(gamma), self.v(beta), eps)?;
            let (n, c, h, w) = self.v(x).dims4()?;
            if running.mean.len() != c || running.var.len() != c {
                return Err(Error::invalid(
                    "batch_norm running stats",
                    format!("{} channels, input has {c}", running.mean.len()),
                ));
            }
            let m = (n * h * w) as f32;
            let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
            for k in 0..c {
                running.mean[k] = (1.0 - momentum) * running.mean[k] + momentum * stats.mean[k];
                running.var[k] =
                    (1.0 - momentum) * running.var[k] + momentum * stats.var[k] * unbias;
            }
            (y, stats)
        } else {
            let stats = BatchNormStats {
                mean: running.mean.clone(),
                var: running.var.clone(),
            };
            let y = self.backend.batch_norm_eval(
                self.v(x),
                self.v(gamma),
                self.v(beta),
                &stats,
                eps,
            )?;
            (y, stats)
        };
        Ok(self.push(
            y,
            Op::BatchNorm {
                x: x.0,
                gamma: gamma.0,
                beta: beta.0,
                stats,
                eps,
                batch_stats: training,
            },
            &[x.0, gamma.0, beta.0],
        ))
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: Var) -> Result<Var> {
        let y = self.backend.global_avg_pool(self.v(x))?;
        Ok(self.push(y, Op::GlobalAvgPool { x: x.0 }, &[x.0]))
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, xs: &[Var]) -> Result<Var> {
        let ts: Vec<&Tensor> = xs.iter().map(|&x| self.v(x)).collect();
        let y = self.backend.concat_channels(&ts)?;
        let ids: Vec<usize> = xs.iter().map(|x| x.0).collect();
        Ok(self.push(y, Op::Concat { xs: ids.clone() }, &ids))
    }

    /// `a + b` (`b` same shape or `[N, C, 1, 1]`).
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = self.backend.add(self.v(a), self.v(b))?;
        Ok(self.push(y, Op::Add { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    /// `a * b` (`b` same shape or `[N, C, 1, 1]`, e.g. channel attention).
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = self.backend.mul(self.v(a), self.v(b))?;
        Ok(self.push(y, Op::Mul { a: a.0, b: b.0 }, &[a.0, b.0]))
    }

    /// `s * x` (e.g. EDSR's residual scaling).
    pub fn scale(&mut self, x: Var, s: f32) -> Var {
        let y = self.backend.scale(self.v(x), s);
        self.push(y, Op::Scale { x: x.0, s }, &[x.0])
    }

    /// Mean squared error against `target` (PyTorch `MSELoss`, mean reduction).
    pub fn mse_loss(&mut self, x: Var, target: Var) -> Result<Var> {
        let l = self.backend.mse_loss(self.v(x), self.v(target))?;
        Ok(self.push(
            Tensor::full(&[], l),
            Op::Mse {
                x: x.0,
                t: target.0,
            },
            &[x.0, target.0],
        ))
    }

    /// Mean absolute error against `target` (PyTorch `L1Loss`, mean reduction).
    pub fn l1_loss(&mut self, x: Var, target: Var) -> Result<Var> {
        let l = self.backend.l1_loss(self.v(x), self.v(target))?;
        Ok(self.push(
            Tensor::full(&[], l),
            Op::L1 {
                x: x.0,
                t: target.0,
            },
            &[x.0, target.0],
        ))
    }

    /// Back-propagates from the scalar `loss` and returns the gradients of
    /// every parameter it depends on (summed over repeated uses).
    pub fn backward(&self, loss: Var) -> Result<Gradients> {
        if self.v(loss).numel() != 1 {
            return Err(Error::invalid(
                "backward",
                "the loss must be a scalar (one element)",
            ));
        }
        let be = self.backend;
        let mut grads: Vec<Option<Tensor>> = vec![None; loss.0 + 1];
        grads[loss.0] = Some(Tensor::full(self.v(loss).shape(), 1.0));
        let mut out = Gradients::default();
        let needs = |i: usize| self.nodes[i].requires_grad;
        for i in (0..=loss.0).rev() {
            let Some(gy) = grads[i].take() else { continue };
            let node = &self.nodes[i];
            let mut send = |j: usize, g: Tensor| -> Result<()> {
                match &mut grads[j] {
                    Some(acc) => be.add_assign(acc, &g),
                    slot => {
                        *slot = Some(g);
                        Ok(())
                    }
                }
            };
            match &node.op {
                Op::Leaf => {
                    if let Some(p) = node.param {
                        match out.slot(p) {
                            Some(acc) => be.add_assign(acc, &gy)?,
                            slot => *slot = Some(gy),
                        }
                    }
                }
                Op::Conv2d { x, w, b, cfg } => {
                    if needs(*x) {
                        let xs = self.nodes[*x].value.shape();
                        send(
                            *x,
                            be.conv2d_backward_input(&gy, self.v(Var(*w)), xs, *cfg)?,
                        )?;
                    }
                    if needs(*w) {
                        let ws = self.nodes[*w].value.shape();
                        send(
                            *w,
                            be.conv2d_backward_weight(self.v(Var(*x)), &gy, ws, *cfg)?,
                        )?;
                    }
                    if let Some(b) = b.filter(|&b| needs(b)) {
                        send(b, be.channel_sum(&gy)?)?;
                    }
                }
                Op::ConvTranspose2d { x, w, b, cfg } => {
                    if needs(*x) {
                        send(
                            *x,
                            be.conv_transpose2d_backward_input(&gy, self.v(Var(*w)), *cfg)?,
                        )?;
                    }
                    if needs(*w) {
                        let ws = self.nodes[*w].value.shape();
                        send(
                            *w,
                            be.conv_transpose2d_backward_weight(self.v(Var(*x)), &gy, ws, *cfg)?,
                        )?;
                    }
                    if let Some(b) = b.filter(|&b| needs(b)) {
                        send(b, be.channel_sum(&gy)?)?;
                    }
                }
                Op::PixelShuffle { x, r } => send(*x, be.pixel_unshuffle(&gy, *r)?)?,
                Op::PixelUnshuffle { x, r } => send(*x, be.pixel_shuffle(&gy, *r)?)?,
                Op::UpsampleNearest { x, r } => send(*x, be.upsample_nearest_backward(&gy, *r)?)?,
                Op::Act { x, act } => send(
                    *x,
                    be.activation_backward(*act, self.v(Var(*x)), &node.value, &gy)?,
                )?,
                Op::Prelu { x, a } => {
                    let (dx, da) = be.prelu_backward(self.v(Var(*x)), self.v(Var(*a)), &gy)?;
                    if needs(*x) {
                        send(*x, dx)?;
                    }
                    if needs(*a) {
                        send(*a, da)?;
                    }
                }
                Op::BatchNorm {
                    x,
                    gamma,
                    beta,
                    stats,
                    eps,
                    batch_stats,
                } => {
                    let (dx, dg, db) = be.batch_norm_backward(
                        self.v(Var(*x)),
                        self.v(Var(*gamma)),
                        stats,
                        *eps,
                        *batch_stats,
                        &gy,
                    )?;
                    for (j, g) in [(*x, dx), (*gamma, dg), (*beta, db)] {
                        if needs(j) {
                            send(j, g)?;
                        }
                    }
                }
                Op::GlobalAvgPool { x } => {
                    let xs = self.nodes[*x].value.shape();
                    send(*x, be.global_avg_pool_backward(&gy, xs)?)?
                }
                Op::Concat { xs } => {
                    let sizes: Vec<usize> =
                        xs.iter().map(|&j| self.nodes[j].value.shape()[1]).collect();
                    for (&j, g) in xs.iter().zip(be.split_channels(&gy, &sizes)?) {
                        if needs(j) {
                            send(j, g)?;
                        }
                    }
                }
                Op::Add { a, b } => {
                    if needs(*b) {
                        let gb = if self.nodes[*b].value.shape() == gy.shape() {
                            gy.clone()
                        } else {
                            be.sum_spatial(&gy)?
                        };
                        send(*b, gb)?;
                    }
                    if needs(*a) {
                        send(*a, gy)?;
                    }
                }
                Op::Mul { a, b } => {
                    let (va, vb) = (self.v(Var(*a)), self.v(Var(*b)));
                    if needs(*a) {
                        send(*a, be.mul(&gy, vb)?)?;
                    }
                    if needs(*b) {
                        let prod = be.mul(&gy, va)?;
                        let gb = if vb.shape() == gy.shape() {
                            prod
                        } else {
                            be.sum_spatial(&prod)?
                        };
                        send(*b, gb)?;
                    }
                }
                Op::Scale { x, s } => send(*x, be.scale(&gy, *s))?,
                Op::Mse { x, t } => {
                    let d = be.mse_loss_backward(self.v(Var(*x)), self.v(Var(*t)), gy.data()[0])?;
                    if needs(*x) {
                        send(*x, d.clone())?;
                    }
                    if needs(*t) {
                        send(*t, be.scale(&d, -1.0))?;
                    }
                }
                Op::L1 { x, t } => {
                    let d = be.l1_loss_backward(self.v(Var(*x)), self.v(Var(*t)), gy.data()[0])?;
                    if needs(*x) {
                        send(*x, d.clone())?;
                    }
                    if needs(*t) {
                        send(*t, be.scale(&d, -1.0))?;
                    }
                }
            }
        }
        Ok(out)
    }
}
