//! What `--dataset` names: a [`DatasetSpec`], one of the datasets that [`super::load`] finds
//! by name under the data directory (`mnist`, `fashion-mnist`, `cifar10`, `digits`, `svhn`),
//! or NumPy arrays at a path of their own, `npz:FILE` or `npy:DIR` ([`super::arrays`]).
//!
//! Its text form round-trips (`Display`, then `FromStr`): it is what a checkpoint's config
//! records as the run's dataset, so that `eval`, `sample` and `train --resume` load the same
//! data. `ssvae train` records a path absolute ([`DatasetSpec::absolute`]), so that the run
//! can be used from any directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{arrays, load, DatasetName, TrainTest};
use crate::{Error, Result};

/// The prefix of an `.npz` archive's path.
pub const NPZ_PREFIX: &str = "npz:";
/// The prefix of a folder of `.npy` files.
pub const NPY_PREFIX: &str = "npy:";

/// A dataset as `--dataset` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    /// A dataset under `DATA_DIR/<name>/`.
    Named(DatasetName),
    /// `npz:FILE`: an archive holding `x_train`, `y_train`, `x_test`, `y_test`.
    Npz(PathBuf),
    /// `npy:DIR`: `DIR/x_train.npy`, `DIR/y_train.npy`, `DIR/x_test.npy`, `DIR/y_test.npy`.
    Npy(PathBuf),
}

impl DatasetSpec {
    /// Load the train and test sets; `data_dir` is where named datasets live (arrays have
    /// their own path).
    pub fn load(&self, data_dir: &Path) -> Result<TrainTest> {
        match self {
            DatasetSpec::Named(name) => load(*name, data_dir),
            DatasetSpec::Npz(path) => arrays::load_npz(path),
            DatasetSpec::Npy(dir) => arrays::load_npy_dir(dir),
        }
    }

    /// The same dataset with its path, if any, made absolute (symbolic links resolved); a path
    /// that does not exist is an error naming it.
    pub fn absolute(self) -> Result<DatasetSpec> {
        let abs = |p: PathBuf| std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e));
        Ok(match self {
            DatasetSpec::Named(n) => DatasetSpec::Named(n),
            DatasetSpec::Npz(p) => DatasetSpec::Npz(abs(p)?),
            DatasetSpec::Npy(p) => DatasetSpec::Npy(abs(p)?),
        })
    }

    /// A short name fit for a folder name: `mnist`, or `npz-<file stem>`, `npy-<folder name>`.
    pub fn short_name(&self) -> String {
        let stem = |kind: &str, p: &Path| {
            let s = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            format!("{kind}-{}", s.unwrap_or_else(|| "arrays".to_string()))
        };
        match self {
            DatasetSpec::Named(n) => n.as_str().to_string(),
            DatasetSpec::Npz(p) => stem("npz", p),
            DatasetSpec::Npy(p) => stem("npy", p),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Named(n) => write!(f, "{n}"),
            DatasetSpec::Npz(p) => write!(f, "{NPZ_PREFIX}{}", p.display()),
            DatasetSpec::Npy(p) => write!(f, "{NPY_PREFIX}{}", p.display()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let path = |rest: &str, what: &str| {
            if rest.is_empty() {
                Err(Error::invalid(
                    "dataset",
                    format!("{s:?} names no path: write {what}"),
                ))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = s.strip_prefix(NPZ_PREFIX) {
            return Ok(DatasetSpec::Npz(path(rest, "npz:FILE.npz")?));
        }
        if let Some(rest) = s.strip_prefix(NPY_PREFIX) {
            return Ok(DatasetSpec::Npy(path(rest, "npy:DIR")?));
        }
        s.parse().map(DatasetSpec::Named)
    }
}
