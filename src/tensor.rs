//! `Tensor`: a shape, a device buffer, and — when it was computed from tensors that need
//! gradients — the record of how (its `Node` on the autograd tape).
//!
//! Tensors are immutable values, cheap to clone (an `Arc`). The only in-place writes are the
//! optimiser's updates of parameter buffers, done through [`Tensor::storage_mut`].

use crate::autograd::{self, Node};
use crate::rng::RngKey;
use crate::storage::Storage;
use crate::{Device, Error, Result, Shape};
use half::{bf16, f16};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A process-unique tensor identity; gradients are keyed by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TensorId(usize);

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct TensorInner {
    id: TensorId,
    storage: Arc<RwLock<Storage>>,
    shape: Shape,
    /// How this tensor was computed, when gradients flow through it.
    node: Option<Node>,
    /// A leaf whose gradient is wanted (a parameter).
    is_variable: bool,
}

/// An n-dimensional array of f32 on a device.
#[derive(Clone)]
pub struct Tensor(Arc<TensorInner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({:?}, {:?}, {})",
            self.id(),
            self.dims(),
            self.device()
        )
    }
}

/// What a tensor of `shape` is called in a refusal.
fn shape_of(shape: &Shape) -> String {
    format!("a tensor of shape {:?}", shape.dims())
}

/// The element count of `shape`, refused (before anything is allocated) when its f32 bytes
/// overflow or exceed the machine's memory.
fn checked_count(shape: &Shape) -> Result<usize> {
    crate::memory::check(crate::memory::bytes_of_dims(shape.dims(), 4), || {
        shape_of(shape)
    })?;
    Ok(shape.elem_count())
}

impl Tensor {
    pub(crate) fn from_storage(storage: Storage, shape: Shape, node: Option<Node>) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: TensorId::new(),
            storage: Arc::new(RwLock::new(storage)),
            shape,
            node,
            is_variable: false,
        }))
    }

    /// A tensor from host data.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Tensor::from_slice(&data, shape, device)
    }

    /// A tensor from a host slice.
    pub fn from_slice(data: &[f32], shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != data.len() {
            return Err(Error::shape(
                "from_slice",
                shape.dims(),
                &[data.len()],
                "element count differs from the data length",
            ));
        }
        Ok(Tensor::from_storage(
            Storage::from_slice(data, device)?,
            shape,
            None,
        ))
    }

    /// A scalar (rank-0) tensor.
    pub fn scalar(v: f32, device: Device) -> Result<Tensor> {
        Tensor::from_slice(&[v], Shape(vec![]), device)
    }

    /// Zeros.
    pub fn zeros(shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        Ok(Tensor::from_storage(
            Storage::zeros(checked_count(&shape)?, device)?,
            shape,
            None,
        ))
    }

    /// A tensor filled with `v`.
    pub fn full(v: f32, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = checked_count(&shape)?;
        let data = crate::memory::try_filled(n, v, || shape_of(&shape))?;
        Tensor::from_vec(data, shape, device)
    }

    /// Ones.
    pub fn ones(shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, device)
    }

    /// N(0, 1) draws from Philox at `key` (the same numbers on every backend).
    pub fn randn(shape: impl Into<Shape>, key: RngKey, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        Ok(Tensor::from_storage(
            Storage::rand_normal(checked_count(&shape)?, key, device)?,
            shape,
            None,
        ))
    }

    /// U(0, 1) draws from Philox at `key`.
    pub fn rand(shape: impl Into<Shape>, key: RngKey, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        Ok(Tensor::from_storage(
            Storage::rand_uniform(checked_count(&shape)?, key, device)?,
            shape,
            None,
        ))
    }

    /// Rows of one-hot vectors: `out[i, labels[i]] = 1`.
    pub fn one_hot(labels: &[u32], classes: usize, device: Device) -> Result<Tensor> {
        let n = checked_count(&Shape(vec![labels.len(), classes]))?;
        let mut v = crate::memory::try_filled(n, 0.0, || {
            format!("{} one-hot rows of {classes}", labels.len())
        })?;
        for (i, &l) in labels.iter().enumerate() {
            if l as usize >= classes {
                return Err(Error::invalid(
                    "one_hot",
                    format!("label {l} at row {i} is not below {classes} classes"),
                ));
            }
            v[i * classes + l as usize] = 1.0;
        }
        Tensor::from_vec(v, [labels.len(), classes], device)
    }

    /// Half-precision storage round trip: the values as IEEE f16.
    pub fn to_f16_vec(&self) -> Result<Vec<f16>> {
        Ok(self.to_vec()?.into_iter().map(f16::from_f32).collect())
    }
    /// The values as bfloat16.
    pub fn to_bf16_vec(&self) -> Result<Vec<bf16>> {
        Ok(self.to_vec()?.into_iter().map(bf16::from_f32).collect())
    }
    /// A tensor from f16 values.
    pub fn from_f16(data: &[f16], shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let v: Vec<f32> = data.iter().map(|h| h.to_f32()).collect();
        Tensor::from_vec(v, shape, device)
    }
    /// A tensor from bf16 values.
    pub fn from_bf16(data: &[bf16], shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let v: Vec<f32> = data.iter().map(|h| h.to_f32()).collect();
        Tensor::from_vec(v, shape, device)
    }
    /// A tensor from little-endian f32 bytes (a zero-copy view through bytemuck when aligned).
    pub fn from_le_bytes(bytes: &[u8], shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        if !bytes.len().is_multiple_of(4) {
            return Err(Error::invalid(
                "from_le_bytes",
                format!("{} bytes is not a whole number of f32", bytes.len()),
            ));
        }
        match bytemuck::try_cast_slice::<u8, f32>(bytes) {
            Ok(v) => Tensor::from_slice(v, shape, device),
            Err(_) => {
                let v: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(v, shape, device)
            }
        }
    }

    /// This tensor's identity.
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// Its shape.
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }
    /// Its dimensions.
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }
    /// Its rank.
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.0.shape.elem_count()
    }
    /// The device it lives on.
    pub fn device(&self) -> Device {
        self.storage().device()
    }
    /// Dimension `axis` (errors name `op`).
    pub fn dim(&self, op: &'static str, axis: usize) -> Result<usize> {
        self.0.shape.dim(op, axis)
    }
    /// Rows and columns of a rank-2 tensor.
    pub fn dims2(&self, op: &'static str) -> Result<(usize, usize)> {
        match self.dims() {
            &[r, c] => Ok((r, c)),
            d => Err(Error::shape(op, d, &[], "expected a rank-2 tensor")),
        }
    }
    /// Read access to the buffer.
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        // A poisoned lock means a panic elsewhere already; the data itself is still valid.
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    /// Write access to the buffer (optimisers only: autograd assumes values do not change).
    pub fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }
    /// Copy to a host vector.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.storage().to_vec()
    }
    /// The value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.elem_count() != 1 {
            return Err(Error::shape(
                "to_scalar",
                self.dims(),
                &[],
                "not a one-element tensor",
            ));
        }
        Ok(self.to_vec()?[0])
    }
    /// A copy on `device` (gradients flow back to the source device).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let storage = self.storage().to_device(device)?;
        let src = self.device();
        Ok(autograd::record(
            storage,
            self.shape().clone(),
            "to_device",
            vec![self.clone()],
            move |g| Ok(vec![Some(g.to_device(src)?)]),
        ))
    }
    /// The same values, cut from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            shape: self.0.shape.clone(),
            node: None,
            is_variable: false,
        }))
    }
    /// The same buffer with a recorded node. Ops whose backward needs their own output capture a
    /// node-less handle to it and attach the node here, so no reference cycle forms.
    pub(crate) fn with_node(&self, node: Option<Node>) -> Tensor {
        match node {
            None => self.clone(),
            Some(node) => Tensor(Arc::new(TensorInner {
                id: TensorId::new(),
                storage: self.0.storage.clone(),
                shape: self.0.shape.clone(),
                node: Some(node),
                is_variable: false,
            })),
        }
    }
    /// A leaf that collects a gradient (a parameter), sharing this tensor's buffer.
    pub fn variable(&self) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            shape: self.0.shape.clone(),
            node: None,
            is_variable: true,
        }))
    }
    /// A deep copy of the values (a fresh buffer), cut from the graph.
    pub fn copy(&self) -> Result<Tensor> {
        Ok(Tensor::from_storage(
            self.storage().try_clone()?,
            self.shape().clone(),
            None,
        ))
    }
    /// Whether gradients flow through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.0.is_variable || self.0.node.is_some()
    }
    /// Whether it is a parameter leaf.
    pub fn is_variable(&self) -> bool {
        self.0.is_variable
    }
    pub(crate) fn node(&self) -> Option<&Node> {
        self.0.node.as_ref()
    }
    /// A view with another shape of the same element count (shares the buffer).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::shape(
                "reshape",
                self.dims(),
                shape.dims(),
                "element counts differ",
            ));
        }
        let src = self.shape().clone();
        let node = autograd::make_node("reshape", vec![self.clone()], move |g| {
            Ok(vec![Some(g.reshape(src.clone())?)])
        });
        Ok(Tensor(Arc::new(TensorInner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            shape,
            node,
            is_variable: false,
        })))
    }
}
