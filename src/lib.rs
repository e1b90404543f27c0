//! ssvae: a from-scratch tensor engine (CPU reference backend, CUDA backend behind the `cuda`
//! feature) and the semi-supervised VAEs built on it ([`models`]), with the training loop
//! ([`train`]), checkpoints ([`train::checkpoint`]) and the datasets ([`data`]). The `ssvae`
//! command line is the `cli` feature; `default-features = false` gives the library alone.
//!
//! # Quick start
//!
//! M2 (Kingma et al. 2014) with 10 labels on 40 synthetic 4×4 images of two classes, a bright
//! top half or a bright bottom half; [`data::load`] reads MNIST and the others the same way
//! (`examples/train_m2.rs` trains on the 8×8 digits).
//!
//! ```
//! use ssvae::data::{self, Dataset};
//! use ssvae::models::{self, Arch, ModelKind, ModelSpec};
//! use ssvae::rng::Rng;
//! use ssvae::train::{self, TrainConfig, INIT_STREAM};
//! use ssvae::Device;
//!
//! let n = 40;
//! let bright = |i: usize, pixel: usize| (pixel < 8) == (i % 2 == 0);
//! let x = (0..n)
//!     .flat_map(|i| (0..16).map(move |p| if bright(i, p) { 0.9 } else { 0.1 }))
//!     .collect();
//! let y = (0..n).map(|i| (i % 2) as u8).collect();
//! let (channels, height, width, classes) = (1, 4, 4, 2);
//! let name = "bars".to_string();
//! let ds = Dataset { x, y, n, channels, height, width, classes, name };
//!
//! // 10 labelled examples, 5 per class; the unlabelled pool is all 40.
//! let split = data::split(&ds.y, ds.classes, 10, 0, 0)?;
//! // The command line's defaults (ModelSpec::new, TrainConfig::default), made small.
//! let spec = ModelSpec {
//!     hidden: 16,
//!     z_dim: 2,
//!     ..ModelSpec::new(ModelKind::M2, Arch::Mlp, &ds, &split)
//! };
//! let model = models::build(&spec, &mut Rng::new(0, INIT_STREAM), Device::Cpu)?;
//! let cfg = TrainConfig {
//!     epochs: 2,
//!     batch_size: 20,
//!     labelled_batch: 10,
//!     ..TrainConfig::default()
//! };
//! let reports = train::fit(model.as_ref(), &ds, &ds, &split, &cfg, |r| {
//!     println!("epoch {}: test error {:.1}%", r.epoch, 100.0 * r.test_error);
//!     Ok(())
//! })?;
//! assert_eq!(reports.len(), 2);
//! assert!(reports.iter().all(|r| r.train[0].1.is_finite()));
//!
//! // q(y|x) of two images: a row of class logits each.
//! let (x, _) = train::batch_tensor(&ds, &[0, 1], Device::Cpu)?;
//! assert_eq!(model.classify(&x)?.dims(), [2, 2]);
//! # Ok::<(), ssvae::Error>(())
//! ```
pub mod autograd;
pub mod backend;
pub mod bench;
#[cfg(feature = "cli")]
mod cli_choices;
pub mod data;
pub mod device;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
#[cfg(feature = "png")]
pub mod plot;
#[cfg(feature = "png")]
pub mod png_image;
pub mod rng;
pub mod shape;
pub mod storage;
pub mod tensor;
pub mod train;
pub mod vae;

pub use autograd::{no_grad, GradStore};
pub use device::Device;
pub use error::{Error, Result};
pub use shape::Shape;
pub use tensor::{Tensor, TensorId};
