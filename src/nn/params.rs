//! Named trainable parameters and their gradients.

use super::tensor::{shape_str, Tensor};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Handle of a parameter inside a [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// The parameter's index in its store (insertion order).
    pub fn index(self) -> usize {
        self.0
    }
}

/// An ordered collection of named parameter tensors. Names are the
/// checkpoint keys and follow PyTorch's `state_dict` (`conv1.weight`, ...).
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    names: Vec<String>,
    values: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter; errors if `name` is already taken.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor) -> Result<ParamId> {
        let name = name.into();
        if self.index.contains_key(&name) {
            return Err(Error::Model(format!("duplicate parameter name {name:?}")));
        }
        self.index.insert(name.clone(), self.values.len());
        self.names.push(name);
        self.values.push(value);
        Ok(ParamId(self.values.len() - 1))
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.values.iter().map(Tensor::numel).sum()
    }

    /// The parameter `id`.
    ///
    /// # Panics
    /// If `id` comes from another store (ids are only minted by [`add`](Self::add)).
    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.values[id.0]
    }

    /// The parameter `id`, mutable (same panics as [`get`](Self::get)).
    pub fn get_mut(&mut self, id: ParamId) -> &mut Tensor {
        &mut self.values[id.0]
    }

    /// The name of parameter `id`.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    /// Looks a parameter up by name.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).map(|&i| ParamId(i))
    }

    /// All ids in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.values.len()).map(ParamId)
    }

    /// Replaces the value of `name`, checking the shape.
    pub fn set(&mut self, name: &str, value: Tensor) -> Result<()> {
        let id = self
            .id(name)
            .ok_or_else(|| Error::Model(format!("unknown parameter {name:?}")))?;
        let cur = &mut self.values[id.0];
        if cur.shape() != value.shape() {
            return Err(Error::Model(format!(
                "parameter {name:?}: shape {} in the model, {} given",
                shape_str(cur.shape()),
                shape_str(value.shape())
            )));
        }
        *cur = value;
        Ok(())
    }

    /// Loads every parameter from safetensors bytes (f32 tensors). A missing
    /// key, an extra key, a wrong shape or dtype is an error naming the key.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<()> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Model(format!("cannot parse safetensors: {e}")))?;
        for name in st.names() {
            if self.id(name).is_none() {
                return Err(Error::Model(format!(
                    "unexpected parameter {name:?} in file"
                )));
            }
        }
        for i in 0..self.names.len() {
            let name = self.names[i].clone();
            let view = st
                .tensor(&name)
                .map_err(|_| Error::Model(format!("missing parameter {name:?} in file")))?;
            let t = tensor_from_view(&name, &view)?;
            self.set(&name, t)?;
        }
        Ok(())
    }

    /// Serialises every parameter to safetensors bytes (f32, little-endian).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        self.to_safetensors_with_metadata(None)
    }

    /// Like [`ParamStore::to_safetensors`], with string metadata in the
    /// header's `__metadata__` (model files keep their config there).
    pub fn to_safetensors_with_metadata(
        &self,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Vec<u8>> {
        let bufs: Vec<Vec<u8>> = self
            .values
            .iter()
            .map(|t| t.data().iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views = self
            .names
            .iter()
            .zip(&self.values)
            .zip(&bufs)
            .map(|((n, t), b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape().to_vec(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Model(format!("parameter {n:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::tensor::serialize(views, &metadata)
            .map_err(|e| Error::Model(format!("cannot serialise safetensors: {e}")))
    }
}

/// Converts an f32 safetensors view to a [`Tensor`]; `name` is for errors.
pub fn tensor_from_view(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Tensor> {
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(Error::Model(format!(
            "tensor {name:?}: dtype {:?}, expected F32",
            view.dtype()
        )));
    }
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::new(view.shape(), data)
}

/// Gradients of a loss w.r.t. the parameters used in a [`Graph`](super::Graph),
/// indexed by [`ParamId`]. Parameters that did not contribute have none.
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    pub(crate) grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of parameter `id`, if it received one.
    pub fn get(&self, id: ParamId) -> Option<&Tensor> {
        self.grads.get(id.0).and_then(Option::as_ref)
    }

    pub(crate) fn slot(&mut self, id: ParamId) -> &mut Option<Tensor> {
        if self.grads.len() <= id.0 {
            self.grads.resize(id.0 + 1, None);
        }
        &mut self.grads[id.0]
    }
}
