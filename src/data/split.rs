//! Semi-supervised splits of a training set, and minibatching.
//!
//! [`split`] draws, with a seeded [`Rng`] (stream [`SPLIT_STREAM`]), the standard semi-supervised
//! protocol of Kingma et al. (2014) and its successors:
//!
//! 1. **labelled**: exactly `n_labels / classes` examples of every class, drawn uniformly without
//!    replacement within each class (`n_labels` must be a multiple of `classes`);
//! 2. **validation**: `n_validation` examples drawn uniformly at random (NOT class-balanced) from
//!    the examples that are not labelled;
//! 3. **unlabelled**: the whole training set minus the validation set. This pool **includes the
//!    labelled examples** (their labels are simply not used by the unsupervised term), as in
//!    Kingma et al.'s M2 code; papers differ on this, so say so when comparing numbers.
//!
//! All three index lists are sorted ascending; labelled ∩ validation = ∅ and
//! unlabelled ∩ validation = ∅. The same `(y, classes, n_labels, n_validation, seed)` always gives
//! the same split, on every platform.
//!
//! [`batches`] and [`Batcher`] cut a shuffled index list into minibatches (the last, partial batch
//! is kept); [`gather`] copies the selected records out of a [`Dataset`], [`subset`] makes them
//! a dataset of their own.

use super::Dataset;
use crate::rng::Rng;
use crate::{Error, Result};

/// The Philox stream [`split`] draws from (ASCII "SPLT"), so that a split does not share random
/// numbers with the training run that uses the same seed.
pub const SPLIT_STREAM: u32 = 0x5350_4C54;

/// Indices into a training set for semi-supervised learning; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemiSupervised {
    /// `n_labels` examples, exactly `n_labels / classes` of each class; sorted.
    pub labelled: Vec<usize>,
    /// Every example not in `validation`, labelled ones included; sorted.
    pub unlabelled: Vec<usize>,
    /// `n_validation` random non-labelled examples; sorted.
    pub validation: Vec<usize>,
}

/// Draw a semi-supervised split of the labels `y` (values in `0..classes`): `n_labels / classes`
/// labelled examples per class, `n_validation` random validation examples from the rest, and the
/// unlabelled pool = everything but the validation set (labelled examples included).
///
/// Errors: `classes == 0`; a label ≥ `classes`; `n_labels` not a multiple of `classes`; a class
/// with fewer examples than the per-class count; `n_labels + n_validation` larger than `y.len()`.
pub fn split(
    y: &[u8],
    classes: usize,
    n_labels: usize,
    n_validation: usize,
    seed: u64,
) -> Result<SemiSupervised> {
    const OP: &str = "split";
    if classes == 0 {
        return Err(Error::invalid(OP, "classes must be positive"));
    }
    if !n_labels.is_multiple_of(classes) {
        return Err(Error::invalid(
            OP,
            format!(
                "the number of labels ({n_labels}) must be a multiple of the number of classes ({classes}) so that every class gets the same count"
            ),
        ));
    }
    let per_class = n_labels / classes;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in y.iter().enumerate() {
        match by_class.get_mut(l as usize) {
            Some(v) => v.push(i),
            None => {
                return Err(Error::invalid(
                    OP,
                    format!("label {l} at index {i} is not below the {classes} classes"),
                ))
            }
        }
    }
    for (c, members) in by_class.iter().enumerate() {
        if members.len() < per_class {
            return Err(Error::invalid(
                OP,
                format!(
                    "too many labels: {n_labels} labels over {classes} classes is {per_class} per class, but class {c} has only {} examples",
                    members.len()
                ),
            ));
        }
    }
    if n_labels
        .checked_add(n_validation)
        .is_none_or(|total| total > y.len())
    {
        return Err(Error::invalid(
            OP,
            format!(
                "{n_labels} labelled + {n_validation} validation examples exceed the {} training examples",
                y.len()
            ),
        ));
    }

    let mut rng = Rng::new(seed, SPLIT_STREAM);
    let mut is_labelled = vec![false; y.len()];
    let mut labelled = Vec::with_capacity(n_labels);
    for members in by_class.iter_mut() {
        rng.shuffle(members);
        for &i in &members[..per_class] {
            is_labelled[i] = true;
            labelled.push(i);
        }
    }
    let mut rest: Vec<usize> = (0..y.len()).filter(|&i| !is_labelled[i]).collect();
    rng.shuffle(&mut rest);
    let mut validation = rest[..n_validation].to_vec();
    labelled.sort_unstable();
    validation.sort_unstable();
    let mut is_validation = vec![false; y.len()];
    for &i in &validation {
        is_validation[i] = true;
    }
    let unlabelled = (0..y.len()).filter(|&i| !is_validation[i]).collect();
    Ok(SemiSupervised {
        labelled,
        unlabelled,
        validation,
    })
}

/// `indices` shuffled with `rng` and cut into batches of `batch_size`; the last batch holds the
/// remainder when `batch_size` does not divide the count (it is kept, not dropped). An empty
/// `indices` gives no batches. Error: `batch_size == 0`.
pub fn batches(indices: &[usize], batch_size: usize, rng: &mut Rng) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return Err(Error::invalid("batches", "batch size must be positive"));
    }
    let mut order = indices.to_vec();
    rng.shuffle(&mut order);
    Ok(order.chunks(batch_size).map(<[usize]>::to_vec).collect())
}

/// An endless source of shuffled minibatches over a fixed index list: one epoch is one pass in a
/// fresh random order (the last batch of an epoch may be partial), then it reshuffles. Useful
/// for the labelled stream of M2, which cycles many times per unlabelled epoch.
#[derive(Clone, Debug)]
pub struct Batcher {
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    epoch: usize,
    rng: Rng,
}

impl Batcher {
    /// A batcher over `indices` (non-empty) in batches of `batch_size` (positive), shuffling
    /// with `rng`.
    pub fn new(indices: &[usize], batch_size: usize, mut rng: Rng) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid("Batcher", "batch size must be positive"));
        }
        if indices.is_empty() {
            return Err(Error::invalid("Batcher", "no indices to batch"));
        }
        let mut order = indices.to_vec();
        rng.shuffle(&mut order);
        Ok(Batcher {
            order,
            batch_size,
            pos: 0,
            epoch: 0,
            rng,
        })
    }

    /// The next minibatch; starts a new, reshuffled epoch when the current one is exhausted.
    pub fn next_batch(&mut self) -> &[usize] {
        if self.pos >= self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.pos = 0;
            self.epoch += 1;
        }
        let start = self.pos;
        let end = (start + self.batch_size).min(self.order.len());
        self.pos = end;
        &self.order[start..end]
    }

    /// Completed epochs so far (the epoch of the batch last returned).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Batches per epoch, the partial one included.
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Number of indices cycled over.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Never true (a batcher is built from a non-empty list); present for API hygiene.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Where the batcher stands (current order, cursor, epoch, shuffling RNG), so that a
    /// checkpoint can resume the exact same sequence of batches.
    pub fn state(&self) -> BatcherState {
        let (seed, stream, next_block) = self.rng.state();
        BatcherState {
            order: self.order.clone(),
            pos: self.pos,
            epoch: self.epoch,
            rng: (seed, stream, next_block),
        }
    }

    /// A batcher over `indices` in batches of `batch_size` that continues from `state`.
    /// Errors: a zero batch size, or a state whose order is not a permutation of `indices` or
    /// whose cursor is past its end (a checkpoint from another split).
    pub fn from_state(indices: &[usize], batch_size: usize, state: BatcherState) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid("Batcher", "batch size must be positive"));
        }
        let mut a = indices.to_vec();
        let mut b = state.order.clone();
        a.sort_unstable();
        b.sort_unstable();
        if a != b || a.is_empty() {
            return Err(Error::invalid(
                "Batcher",
                format!(
                    "saved order of {} indices is not a permutation of the {} indices to batch",
                    state.order.len(),
                    indices.len()
                ),
            ));
        }
        if state.pos > state.order.len() {
            return Err(Error::invalid(
                "Batcher",
                format!(
                    "saved cursor {} is past the {} indices",
                    state.pos,
                    state.order.len()
                ),
            ));
        }
        let (seed, stream, next_block) = state.rng;
        Ok(Batcher {
            order: state.order,
            batch_size,
            pos: state.pos,
            epoch: state.epoch,
            rng: Rng::from_state(seed, stream, next_block),
        })
    }
}

/// A [`Batcher`]'s position: see [`Batcher::state`] and [`Batcher::from_state`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatcherState {
    /// The current epoch's order.
    pub order: Vec<usize>,
    /// Next position in `order`.
    pub pos: usize,
    /// Completed passes.
    pub epoch: usize,
    /// The shuffling generator's (seed, stream, next block), as [`Rng::state`].
    pub rng: (u64, u32, u64),
}

/// Records `idx` of `ds` as a dataset of their own (named `<ds.name>[<what>]`), e.g. a
/// validation set cut from a training set. Error: an index ≥ `ds.n`.
pub fn subset(ds: &Dataset, idx: &[usize], what: &str) -> Result<Dataset> {
    let (x, y) = gather(ds, idx)?;
    Ok(Dataset {
        x,
        y,
        n: idx.len(),
        channels: ds.channels,
        height: ds.height,
        width: ds.width,
        classes: ds.classes,
        name: format!("{}[{what}]", ds.name),
    })
}

/// Copy records `idx` of `ds` into a contiguous `(idx.len() × dim, idx.len())` pair, in the
/// order given. Error: an index ≥ `ds.n` (or a dataset whose buffers are too short).
pub fn gather(ds: &Dataset, idx: &[usize]) -> Result<(Vec<f32>, Vec<u8>)> {
    let mut x = Vec::with_capacity(idx.len() * ds.dim());
    let mut y = Vec::with_capacity(idx.len());
    for &i in idx {
        match (ds.image(i), ds.y.get(i)) {
            (Some(img), Some(&l)) if i < ds.n => {
                x.extend_from_slice(img);
                y.push(l);
            }
            _ => {
                return Err(Error::invalid(
                    "gather",
                    format!(
                        "index {i} out of range for {} with {} records",
                        ds.name, ds.n
                    ),
                ))
            }
        }
    }
    Ok((x, y))
}
