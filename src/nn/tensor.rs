//! The dense `f32` tensor the NN core computes on.

use crate::error::{Error, Result};
use rand::Rng;

/// A dense, contiguous, row-major `f32` tensor.
///
/// Image tensors are NCHW: `[batch, channels, height, width]`. Convolution
/// weights follow PyTorch: `[C_out, C_in / groups, k_h, k_w]` (and
/// `[C_in, C_out / groups, k_h, k_w]` for transposed convolutions).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Formats a shape as `[a, b, c]` for error messages.
pub(crate) fn shape_str(s: &[usize]) -> String {
    format!("{s:?}")
}

impl Tensor {
    /// Wraps `data` (row-major) as a tensor of `shape`; errors if the element
    /// count does not match.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::ShapeMismatch {
                left: format!("shape {} ({n} elements)", shape_str(shape)),
                right: format!("{} data elements", data.len()),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, 0.0)
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    /// A tensor with elements drawn uniformly from `[lo, hi)` using `rng`.
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut impl Rng) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: (0..n).map(|_| rng.gen_range(lo..hi)).collect(),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor, returning its elements.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The same elements under a new shape with the same element count.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        Tensor::new(shape, self.data)
    }

    /// The four dimensions of an NCHW tensor, or an error naming `what`.
    pub fn dims4(&self) -> Result<(usize, usize, usize, usize)> {
        match self.shape[..] {
            [n, c, h, w] => Ok((n, c, h, w)),
            _ => Err(Error::invalid(
                "tensor rank",
                format!(
                    "expected a 4-D NCHW tensor, got shape {}",
                    shape_str(&self.shape)
                ),
            )),
        }
    }

    /// Errors unless `self` and `other` have the same shape.
    pub fn check_same_shape(&self, other: &Tensor) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::ShapeMismatch {
                left: shape_str(&self.shape),
                right: shape_str(&other.shape),
            });
        }
        Ok(())
    }

    /// Largest absolute element-wise difference to `other` (same shape).
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        self.check_same_shape(other)?;
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs())))
    }
}
