//! Evaluation metrics on host buffers: classification error, confusion matrices (and a
//! printable table of one), clustering accuracy under the best one-to-one cluster→class map
//! (the Hungarian / Kuhn–Munkres algorithm, O(n³), written here), normalized mutual
//! information, latent-unit activity (posterior collapse), and row-wise argmax of logits.
//!
//! They are what the papers report: test error of the M2 classifier q(y|x), and clustering ACC /
//! NMI for unsupervised runs. NMI follows scikit-learn (≥ 0.22) exactly, including its special
//! cases, so numbers are comparable with the literature's Python evaluations. Inputs of
//! mismatched length or out-of-range labels are errors, never panics.

use crate::{Error, Result};

fn check_len(op: &'static str, pred: usize, y: usize) -> Result<()> {
    if pred != y {
        return Err(Error::invalid(
            op,
            format!("{pred} predictions for {y} labels"),
        ));
    }
    Ok(())
}

/// A fraction (an error rate, an accuracy) in percent, as `ssvae` reports them everywhere
/// (console, metrics.csv's `_pct` columns, `eval --json`): rounded to 10⁻⁹ %, so that 0.2775
/// reads 27.75 rather than 27.750000000000004 (a rate of k in n examples, n up to 10⁹, loses
/// nothing by it).
pub fn percent(fraction: f64) -> f64 {
    (100.0 * fraction * 1e9).round() / 1e9
}

/// Fraction of `pred[i] != y[i]`, in [0, 1]. Errors: different lengths, empty input.
pub fn error_rate(pred: &[usize], y: &[u8]) -> Result<f64> {
    check_len("error_rate", pred.len(), y.len())?;
    if y.is_empty() {
        return Err(Error::invalid("error_rate", "no examples"));
    }
    let wrong = pred
        .iter()
        .zip(y)
        .filter(|(&p, &t)| p != t as usize)
        .count();
    Ok(wrong as f64 / y.len() as f64)
}

/// The `k_pred × k_true` contingency table `c[p][t] = #{i : pred[i] = p, y[i] = t}` (rows are
/// predictions / clusters, columns are true classes). Errors: different lengths, a prediction
/// ≥ `k_pred`, a label ≥ `k_true`.
pub fn confusion(
    pred: &[usize],
    y: &[u8],
    k_pred: usize,
    k_true: usize,
) -> Result<Vec<Vec<usize>>> {
    check_len("confusion", pred.len(), y.len())?;
    let mut c = vec![vec![0usize; k_true]; k_pred];
    for (i, (&p, &t)) in pred.iter().zip(y).enumerate() {
        if p >= k_pred {
            return Err(Error::invalid(
                "confusion",
                format!("prediction {p} at index {i} is not below {k_pred}"),
            ));
        }
        if t as usize >= k_true {
            return Err(Error::invalid(
                "confusion",
                format!("label {t} at index {i} is not below {k_true}"),
            ));
        }
        c[p][t as usize] += 1;
    }
    Ok(c)
}

/// The confusion matrix of `pred` (in `0..k_pred`) against `y` (in `0..k_true`) as text, for
/// people: a row per true class with its count per predicted class (or cluster, when
/// `clustering`) and the class's error — the share not predicted as itself or, for clusters,
/// not in the cluster the Hungarian map gives the class. Errors as [`confusion`]'s.
pub fn confusion_table(
    pred: &[usize],
    y: &[u8],
    k_pred: usize,
    k_true: usize,
    clustering: bool,
) -> Result<String> {
    let c = confusion(pred, y, k_pred, k_true)?;
    // The column that counts as right for each true class.
    let right: Vec<Option<usize>> = if clustering {
        let map = hungarian_map(pred, y, k_pred)?;
        (0..k_true)
            .map(|t| map.iter().position(|m| *m == Some(t)))
            .collect()
    } else {
        (0..k_true).map(Some).collect()
    };
    let width = pred.len().to_string().len().max(3);
    let mut s = format!(
        "confusion (rows: true class, columns: predicted {})\n{:>5}",
        if clustering { "cluster" } else { "class" },
        "",
    );
    for p in 0..k_pred {
        s += &format!(" {p:>width$}");
    }
    s += "   error\n";
    for t in 0..k_true {
        let row: Vec<usize> = (0..k_pred).map(|p| c[p][t]).collect();
        let total: usize = row.iter().sum();
        let ok = right[t].map_or(0, |p| row[p]);
        s += &format!("{t:>5}");
        for n in &row {
            s += &format!(" {n:>width$}");
        }
        let err = if total == 0 {
            "—".to_string()
        } else {
            format!("{:.2}%", 100.0 * (total - ok) as f64 / total as f64)
        };
        s += &format!("  {err:>6}\n");
    }
    Ok(s)
}

/// Minimum-cost perfect matching of the square `n × n` matrix `cost` (row-major): returns
/// `col[r]`, the column assigned to row `r`. The Hungarian algorithm with potentials
/// (Kuhn 1955, Munkres 1957; the O(n³) shortest-augmenting-path form of Jonker–Volgenant).
fn min_cost_assignment(cost: &[i64], n: usize) -> Vec<usize> {
    const INF: i64 = i64::MAX / 4;
    // 1-based rows/columns; index 0 is the virtual start of each augmenting path.
    let mut u = vec![0i64; n + 1];
    let mut v = vec![0i64; n + 1];
    let mut row_of = vec![0usize; n + 1]; // row_of[j]: row matched to column j (0 = none)
    let mut way = vec![0usize; n + 1];
    let mut minv = vec![INF; n + 1];
    let mut used = vec![false; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|m| *m = INF);
        used.iter_mut().for_each(|b| *b = false);
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let mut delta = INF;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col = vec![0usize; n];
    for j in 1..=n {
        if row_of[j] != 0 {
            col[row_of[j] - 1] = j - 1;
        }
    }
    col
}

/// The one-to-one cluster→class map that maximises the number of matches between `pred`
/// (clusters in `0..k`) and `y` (classes `0..=max(y)`): entry `p` is `Some(class)` or `None` for a
/// cluster left unmatched (possible when there are more clusters than classes). Computed by the
/// Hungarian algorithm on the confusion matrix padded with zeros to a square. Errors: different
/// lengths, empty input, a prediction ≥ `k`, `k == 0`.
pub fn hungarian_map(pred: &[usize], y: &[u8], k: usize) -> Result<Vec<Option<usize>>> {
    check_len("hungarian_accuracy", pred.len(), y.len())?;
    if y.is_empty() {
        return Err(Error::invalid("hungarian_accuracy", "no examples"));
    }
    if k == 0 {
        return Err(Error::invalid(
            "hungarian_accuracy",
            "k (number of clusters) must be positive",
        ));
    }
    let classes = y.iter().map(|&t| t as usize + 1).max().unwrap_or(1);
    let c = confusion(pred, y, k, classes)?;
    let m = k.max(classes);
    // Maximise matches = minimise −count; padded cells cost 0.
    let mut cost = vec![0i64; m * m];
    for (p, row) in c.iter().enumerate() {
        for (t, &cnt) in row.iter().enumerate() {
            cost[p * m + t] = -(cnt as i64);
        }
    }
    let col = min_cost_assignment(&cost, m);
    Ok((0..k)
        .map(|p| Some(col[p]).filter(|&t| t < classes))
        .collect())
}

/// Clustering accuracy: the fraction of examples matched under the best one-to-one map from
/// clusters (`pred` in `0..k`) to classes (`y`), as in Xie et al. (DEC) and most VAE clustering
/// papers. `k` may differ from the number of classes (the matrix is padded to a square); with
/// more clusters than classes, the examples of unmatched clusters count as errors.
pub fn hungarian_accuracy(pred: &[usize], y: &[u8], k: usize) -> Result<f64> {
    let map = hungarian_map(pred, y, k)?;
    let hits = pred
        .iter()
        .zip(y)
        .filter(|(&p, &t)| map[p] == Some(t as usize))
        .count();
    Ok(hits as f64 / y.len() as f64)
}

/// Sorted distinct values of `v` and, for each element, the index of its value among them.
fn factorize(v: impl Iterator<Item = usize> + Clone) -> (usize, Vec<usize>) {
    let mut uniq: Vec<usize> = v.clone().collect();
    uniq.sort_unstable();
    uniq.dedup();
    let idx = v.map(|x| uniq.binary_search(&x).unwrap_or(0)).collect();
    (uniq.len(), idx)
}

/// Shannon entropy (nats) of a labelling given its class counts, as sklearn's `entropy`.
fn entropy(counts: &[usize]) -> f64 {
    let nz: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64)
        .collect();
    if nz.len() <= 1 {
        return 0.0;
    }
    let sum: f64 = nz.iter().sum();
    let ls = sum.ln();
    -nz.iter().map(|&c| (c / sum) * (c.ln() - ls)).sum::<f64>()
}

/// Normalized mutual information between `pred` and `y` with the arithmetic-mean normaliser,
/// NMI = I(U;V) / ((H(U) + H(V)) / 2), exactly as scikit-learn's
/// `normalized_mutual_info_score(y, pred)` (default `average_method="arithmetic"` since 0.22):
/// 1.0 when both labellings are constant (or both empty), 0.0 when the mutual information is 0
/// (in particular when exactly one labelling is constant). Label values are arbitrary ids; only
/// equality matters. Error: different lengths.
pub fn nmi(pred: &[usize], y: &[u8]) -> Result<f64> {
    check_len("nmi", pred.len(), y.len())?;
    let (kt, ti) = factorize(y.iter().map(|&t| t as usize));
    let (kp, pi_) = factorize(pred.iter().copied());
    if kt == kp && kt <= 1 {
        return Ok(1.0);
    }
    // Contingency, rows = true classes, columns = clusters (sklearn's layout and order).
    let mut cont = vec![0usize; kt * kp];
    for (&t, &p) in ti.iter().zip(&pi_) {
        cont[t * kp + p] += 1;
    }
    let mut row = vec![0usize; kt];
    let mut col = vec![0usize; kp];
    for t in 0..kt {
        for p in 0..kp {
            row[t] += cont[t * kp + p];
            col[p] += cont[t * kp + p];
        }
    }
    let mi = if kt == 1 || kp == 1 {
        0.0
    } else {
        let total = y.len() as f64;
        let log_total = total.ln();
        // Σ_ij n_ij/N · (log n_ij − log N) + n_ij/N · (−log(a_i b_j) + log Σa + log Σb),
        // term by term as sklearn's mutual_info_score, terms below machine epsilon zeroed.
        let mut s = 0.0f64;
        for t in 0..kt {
            for p in 0..kp {
                let n = cont[t * kp + p];
                if n == 0 {
                    continue;
                }
                let nz = n as f64;
                let c_nm = nz / total;
                let outer = (row[t] as f64) * (col[p] as f64);
                let log_outer = -outer.ln() + log_total + log_total;
                let term = c_nm * (nz.ln() - log_total) + c_nm * log_outer;
                if term.abs() >= f64::EPSILON {
                    s += term;
                }
            }
        }
        s.max(0.0)
    };
    if mi == 0.0 {
        return Ok(0.0);
    }
    let h = (entropy(&row) + entropy(&col)) / 2.0;
    Ok(mi / h)
}

/// The variance threshold above which a latent unit counts as active (Burda, Grosse and
/// Salakhutdinov 2016; the same as Kingma et al.'s M1+M2 code keeping the z1 dimensions whose
/// posterior-mean standard deviation exceeds 0.1).
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

/// Activity of each latent unit: the variance over the examples of its posterior mean,
/// `A_u = Var_x(E_q(z|x)[z_u])`, from `means` (n rows of `dim` values, row-major; the population
/// variance, divided by n, accumulated in f64). A unit whose A_u is at most
/// [`ACTIVE_UNIT_THRESHOLD`] ignores its input: its posterior is (nearly) the same for every x,
/// the signature of posterior collapse. Errors: `dim == 0`, no rows, ragged rows, or a
/// non-finite mean.
pub fn active_units(means: &[f32], dim: usize) -> Result<Vec<f64>> {
    if dim == 0 || means.is_empty() || !means.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "active_units",
            format!(
                "{} values do not form one or more rows of {dim}",
                means.len()
            ),
        ));
    }
    if let Some(i) = means.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "active_units",
            format!(
                "posterior mean {} of row {} is {}",
                i % dim,
                i / dim,
                means[i]
            ),
        ));
    }
    let n = (means.len() / dim) as f64;
    let mut mean = vec![0.0f64; dim];
    for row in means.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; dim];
    for row in means.chunks_exact(dim) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    var.iter_mut().for_each(|s| *s /= n);
    Ok(var)
}

/// Index of the largest value in each row of the row-major `values` (`cols` columns), e.g. the
/// predicted class from logits. Ties go to the first index; NaN never wins (a row of NaNs gives
/// 0). Errors: `cols == 0`, or `values.len()` not a multiple of `cols`.
pub fn argmax_rows(values: &[f32], cols: usize) -> Result<Vec<usize>> {
    if cols == 0 {
        return Err(Error::invalid("argmax_rows", "cols must be positive"));
    }
    if !values.len().is_multiple_of(cols) {
        return Err(Error::invalid(
            "argmax_rows",
            format!("{} values do not form rows of {cols}", values.len()),
        ));
    }
    Ok(values
        .chunks_exact(cols)
        .map(|row| {
            let mut best = 0usize;
            let mut best_v = f32::NEG_INFINITY;
            let mut seen = false;
            for (j, &v) in row.iter().enumerate() {
                if !v.is_nan() && (!seen || v > best_v) {
                    best = j;
                    best_v = v;
                    seen = true;
                }
            }
            best
        })
        .collect())
}
