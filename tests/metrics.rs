//! Integration tests of `ssvae::metrics`: error rate, confusion layout, Hungarian clustering
//! accuracy (hand-computed cases, more/fewer clusters than classes, and a brute-force check over
//! every permutation on random tables), NMI against scikit-learn's values and special cases,
//! latent-unit activity, and row-wise argmax.

use ssvae::metrics::{
    active_units, argmax_rows, confusion, confusion_table, error_rate, hungarian_accuracy,
    hungarian_map, nmi, ACTIVE_UNIT_THRESHOLD,
};
use ssvae::rng::Rng;

/// Expand a `pred × true` count table into (pred, y) lists.
fn from_table(t: &[Vec<usize>]) -> (Vec<usize>, Vec<u8>) {
    let mut pred = Vec::new();
    let mut y = Vec::new();
    for (p, row) in t.iter().enumerate() {
        for (c, &n) in row.iter().enumerate() {
            for _ in 0..n {
                pred.push(p);
                y.push(c as u8);
            }
        }
    }
    (pred, y)
}

/// All permutations of 0..m (Heap's algorithm).
fn permutations(m: usize) -> Vec<Vec<usize>> {
    fn go(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            go(k - 1, a, out);
            if k.is_multiple_of(2) {
                a.swap(i, k - 1);
            } else {
                a.swap(0, k - 1);
            }
        }
    }
    let mut out = Vec::new();
    go(m, &mut (0..m).collect(), &mut out);
    out
}

#[test]
fn error_rate_counts_mismatches() {
    assert_eq!(error_rate(&[0, 1, 2, 3], &[0, 1, 1, 3]).unwrap(), 0.25);
    assert_eq!(error_rate(&[7], &[7]).unwrap(), 0.0);
    let e = error_rate(&[0, 1], &[0]).unwrap_err().to_string();
    assert!(e.contains("2 predictions for 1 labels"), "{e}");
    assert!(error_rate(&[], &[]).is_err());
}

#[test]
fn confusion_layout_is_pred_by_true() {
    let c = confusion(&[0, 0, 1, 2, 2], &[1, 1, 0, 0, 1], 3, 2).unwrap();
    assert_eq!(c, vec![vec![0, 2], vec![1, 0], vec![1, 1]]);
    let e = confusion(&[0, 3], &[0, 1], 3, 2).unwrap_err().to_string();
    assert!(e.contains("prediction 3 at index 1"), "{e}");
    let e = confusion(&[0, 1], &[0, 2], 3, 2).unwrap_err().to_string();
    assert!(e.contains("label 2 at index 1"), "{e}");
    assert!(confusion(&[0], &[0, 1], 3, 2).is_err());
}

#[test]
fn hungarian_permuted_perfect_clustering_is_one() {
    let y: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let perm = [3, 7, 0, 9, 1, 4, 8, 2, 6, 5];
    let pred: Vec<usize> = y.iter().map(|&t| perm[t as usize]).collect();
    assert_eq!(hungarian_accuracy(&pred, &y, 10).unwrap(), 1.0);
    let map = hungarian_map(&pred, &y, 10).unwrap();
    for (t, &p) in perm.iter().enumerate() {
        assert_eq!(map[p], Some(t));
    }
    assert!((nmi(&pred, &y).unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn hungarian_known_3x3() {
    // pred × true counts:      t0 t1 t2
    //                     p0 [ 5, 4, 0 ]
    //                     p1 [ 4, 0, 0 ]
    //                     p2 [ 0, 0, 3 ]
    // The six maps p→t score: (0,1,2) 5+0+3=8, (0,2,1) 5+0+0=5, (1,0,2) 4+4+3=11,
    // (1,2,0) 4+0+0=4, (2,0,1) 0+4+0=4, (2,1,0) 0. Best: p0→1, p1→0, p2→2 with 11 of 16
    // matched, ACC = 0.6875. (Greedy on the largest cell, p0→0, would reach only 8/16.)
    let (pred, y) = from_table(&[vec![5, 4, 0], vec![4, 0, 0], vec![0, 0, 3]]);
    assert_eq!(hungarian_accuracy(&pred, &y, 3).unwrap(), 11.0 / 16.0);
    assert_eq!(
        hungarian_map(&pred, &y, 3).unwrap(),
        vec![Some(1), Some(0), Some(2)]
    );
}

#[test]
fn hungarian_more_and_fewer_clusters_than_classes() {
    let y = [0u8, 0, 1, 1, 2, 2];
    // 5 clusters (3 and 4 spare): class 2 is split over clusters 2 and 3; one of them matches.
    let pred = [0usize, 0, 1, 1, 2, 3];
    assert_eq!(hungarian_accuracy(&pred, &y, 5).unwrap(), 5.0 / 6.0);
    let map = hungarian_map(&pred, &y, 5).unwrap();
    assert_eq!(&map[..2], &[Some(0), Some(1)]);
    assert_eq!(map.iter().filter(|m| m.is_some()).count(), 3);
    assert_eq!(map[4], None);
    // Every point its own cluster: only 3 clusters can be mapped.
    assert_eq!(hungarian_accuracy(&[0, 1, 2, 3, 4, 5], &y, 6).unwrap(), 0.5);
    // 2 clusters for 3 classes.
    assert_eq!(
        hungarian_accuracy(&[0, 0, 1, 1, 1, 1], &y, 2).unwrap(),
        4.0 / 6.0
    );
    // Errors.
    assert!(hungarian_accuracy(&[0, 5], &[0, 1], 5).is_err());
    assert!(hungarian_accuracy(&[0], &[0, 1], 5).is_err());
    assert!(hungarian_accuracy(&[], &[], 5).is_err());
    assert!(hungarian_accuracy(&[0], &[0], 0).is_err());
}

#[test]
fn hungarian_matches_brute_force() {
    let mut rng = Rng::new(2024, 0);
    for trial in 0..300 {
        let kp = 1 + rng.below(6);
        let kt = 1 + rng.below(6);
        let mut table: Vec<Vec<usize>> = (0..kp)
            .map(|_| (0..kt).map(|_| rng.below(9)).collect())
            .collect();
        // Make sure the largest class index occurs, so that there are exactly kt classes.
        table[0][kt - 1] += 1;
        let (pred, y) = from_table(&table);
        let m = kp.max(kt);
        let best = permutations(m)
            .iter()
            .map(|perm| {
                (0..kp)
                    .filter(|&p| perm[p] < kt)
                    .map(|p| table[p][perm[p]])
                    .sum::<usize>()
            })
            .max()
            .unwrap();
        let acc = hungarian_accuracy(&pred, &y, kp).unwrap();
        assert_eq!(
            acc,
            best as f64 / y.len() as f64,
            "trial {trial}: table {table:?}"
        );
    }
}

#[test]
fn nmi_special_cases() {
    assert_eq!(nmi(&[0, 0, 1, 1], &[0, 0, 1, 1]).unwrap(), 1.0);
    assert!((nmi(&[5, 5, 2, 2], &[0, 0, 1, 1]).unwrap() - 1.0).abs() < 1e-12);
    // Independent: every (pred, y) pair occurs once, I(U;V) = 0.
    assert_eq!(nmi(&[0, 1, 0, 1], &[0, 0, 1, 1]).unwrap(), 0.0);
    // sklearn: both constant ⇒ 1; exactly one constant ⇒ 0; empty ⇒ 1.
    assert_eq!(nmi(&[4, 4, 4], &[1, 1, 1]).unwrap(), 1.0);
    assert_eq!(nmi(&[0, 1, 2, 3], &[0, 0, 0, 0]).unwrap(), 0.0);
    assert_eq!(nmi(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(), 0.0);
    assert_eq!(nmi(&[], &[]).unwrap(), 1.0);
    assert!(nmi(&[0, 1], &[0]).is_err());
}

#[test]
fn nmi_matches_sklearn_hand_computed() {
    // y = [0,0,0,1,1,1], pred = [0,0,1,1,2,2], n = 6.
    // Contingency (true × pred): [[2,1,0],[0,1,2]]; p(y) = (1/2, 1/2), p(pred) = (1/3, 1/3, 1/3).
    // I = Σ p_ij ln(p_ij / (p_i p_j)):
    //   (2/6) ln((2/6)/(1/6)) = (1/3) ln 2   [cells (0,0) and (1,2)]
    //   (1/6) ln((1/6)/(1/6)) = 0            [cells (0,1) and (1,1)]
    //   I = (2/3) ln 2 = 0.46209812037329684
    // H(y) = ln 2 = 0.6931471805599453, H(pred) = ln 3 = 1.0986122886681098,
    // arithmetic mean 0.8958797346140276, NMI = 0.46209812037329684 / 0.8958797346140276
    //   = 0.5158037429793889, the value sklearn's normalized_mutual_info_score reports.
    let y = [0u8, 0, 0, 1, 1, 1];
    let pred = [0usize, 0, 1, 1, 2, 2];
    let want = (2.0 / 3.0) * 2f64.ln() / ((2f64.ln() + 3f64.ln()) / 2.0);
    assert!((want - 0.5158037429793889).abs() < 1e-15, "{want}");
    let got = nmi(&pred, &y).unwrap();
    assert!((got - 0.5158037429793889).abs() < 1e-12, "{got}");
    // Symmetric in its arguments (y as clusters, pred as classes).
    let sw = nmi(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]).unwrap();
    assert!((sw - got).abs() < 1e-12, "{sw}");
}

#[test]
fn argmax_rows_picks_first_max_and_skips_nan() {
    let v = [
        0.1,
        0.7,
        0.2,
        3.0,
        3.0,
        -1.0,
        f32::NAN,
        -5.0,
        -7.0,
        f32::NAN,
        f32::NAN,
        f32::NAN,
    ];
    assert_eq!(argmax_rows(&v, 3).unwrap(), [1, 0, 1, 0]);
    assert_eq!(argmax_rows(&[], 4).unwrap(), Vec::<usize>::new());
    assert!(argmax_rows(&v, 5).is_err());
    assert!(argmax_rows(&v, 0).is_err());
    assert_eq!(
        argmax_rows(&[f32::NEG_INFINITY, f32::NEG_INFINITY], 2).unwrap(),
        [0]
    );
}

#[test]
fn confusion_table_has_a_row_per_true_class_and_its_error() {
    let cells = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .skip(2)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    // Classes: 0 → predicted 0 and 1 (50% wrong), 1 → 0, 1, 1 (1 of 3 wrong), 2 → no examples.
    let t = confusion_table(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 0], 3, 3, false).unwrap();
    assert!(t.starts_with("confusion (rows: true class, columns: predicted class)\n"));
    assert_eq!(
        cells(&t),
        [
            ["0", "1", "1", "0", "50.00%"],
            ["1", "1", "2", "0", "33.33%"],
            ["2", "0", "0", "0", "—"],
        ]
    );
    // As clusters, the same counts with the cluster names swapped: the Hungarian map (cluster 1
    // → class 0, cluster 0 → class 1) decides what is right, so the errors stay.
    let t = confusion_table(&[1, 1, 0, 0, 0], &[0, 1, 1, 1, 0], 3, 3, true).unwrap();
    assert!(t.contains("columns: predicted cluster"), "{t}");
    assert_eq!(
        cells(&t),
        [
            ["0", "1", "1", "0", "50.00%"],
            ["1", "2", "1", "0", "33.33%"],
            ["2", "0", "0", "0", "—"],
        ]
    );
    assert!(confusion_table(&[3], &[0], 3, 3, false).is_err());
}

#[test]
fn active_units_are_the_variances_of_the_posterior_means() {
    // Three units over four examples: a constant one (collapsed), one with variance 1.25
    // (values 0, 1, 2, 3 around 1.5) and one just below the threshold (±0.09 → 0.0081).
    let means = [
        5.0, 0.0, 0.09, //
        5.0, 1.0, -0.09, //
        5.0, 2.0, 0.09, //
        5.0, 3.0, -0.09,
    ];
    let var = active_units(&means, 3).unwrap();
    let want = [0.0, 1.25, 0.0081];
    for (v, w) in var.iter().zip(want) {
        assert!((v - w).abs() < 1e-9, "{var:?}");
    }
    let active = var.iter().filter(|&&v| v > ACTIVE_UNIT_THRESHOLD).count();
    assert_eq!(active, 1);
    // Bad input is an error, never a panic or a NaN.
    for (m, d) in [(&means[..], 0), (&means[..5], 3), (&[][..], 2)] {
        assert!(active_units(m, d).is_err(), "{} values, dim {d}", m.len());
    }
    let mut nan = means;
    nan[4] = f32::NAN;
    let e = active_units(&nan, 3).unwrap_err().to_string();
    assert!(e.contains("posterior mean 1 of row 1"), "{e}");
}
