//! Broadcasting geometry shared by the backends: the strides an operand is read with when it is
//! stretched to the output's shape, and the merge of dimensions that both operands traverse
//! contiguously (fewer, longer dimensions: a shorter index computation per element on the GPU,
//! longer inner rows on the CPU).

/// Strides of an operand with `dims` read as `out` (0 on a stretched dim).
pub fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let mut s = vec![0; dims.len()];
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        s[i] = if dims[i] == 1 && out[i] != 1 { 0 } else { acc };
        acc *= dims[i];
    }
    s
}

/// Drop size-1 dims and merge neighbours that both operands traverse contiguously:
/// returns (dims, a_strides, b_strides), outermost first.
pub fn simplify(out: &[usize], sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut d, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        if let (Some(&la), Some(&lb)) = (a.last(), b.last()) {
            // The previous (outer) dim continues this one for both operands: merge.
            if la == sa[i] * out[i] && lb == sb[i] * out[i] {
                let k = d.len() - 1;
                d[k] *= out[i];
                a[k] = sa[i];
                b[k] = sb[i];
                continue;
            }
        }
        d.push(out[i]);
        a.push(sa[i]);
        b.push(sb[i]);
    }
    (d, a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: walk every output index with the simplified geometry and with the plain one.
    fn offsets(dims: &[usize], sa: &[usize], sb: &[usize]) -> Vec<(usize, usize)> {
        let n: usize = dims.iter().product();
        (0..n)
            .map(|i| {
                let (mut rem, mut a, mut b) = (i, 0, 0);
                for d in (0..dims.len()).rev() {
                    let c = rem % dims[d];
                    rem /= dims[d];
                    a += c * sa[d];
                    b += c * sb[d];
                }
                (a, b)
            })
            .collect()
    }

    #[test]
    fn simplify_keeps_the_index_map() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[4, 1, 3], &[1, 5, 1], &[4, 5, 3]),
            (&[2, 3, 4, 5], &[1, 1, 1, 5], &[2, 3, 4, 5]),
            (&[2, 3, 4, 5], &[2, 3, 4, 5], &[2, 3, 4, 5]),
            (&[1, 1, 7], &[3, 1, 7], &[3, 1, 7]),
            (
                &[1, 1, 1, 1, 1, 1, 1, 1],
                &[2, 1, 2, 1, 2, 1, 2, 1],
                &[2, 1, 2, 1, 2, 1, 2, 1],
            ),
            (
                &[2, 1, 2, 1, 2, 1, 2, 2],
                &[1, 3, 1, 3, 1, 3, 1, 2],
                &[2, 3, 2, 3, 2, 3, 2, 2],
            ),
            (&[1], &[1], &[1]),
        ];
        for (ld, rd, od) in cases {
            let (sa, sb) = (broadcast_strides(ld, od), broadcast_strides(rd, od));
            let (d, a, b) = simplify(od, &sa, &sb);
            assert_eq!(
                offsets(od, &sa, &sb),
                offsets(&d, &a, &b),
                "{ld:?} {rd:?} {od:?}"
            );
        }
        // Trailing broadcast of a row vector collapses to 2 dims.
        let (d, _, _) = simplify(
            &[2, 3, 4, 5],
            &broadcast_strides(&[2, 3, 4, 5], &[2, 3, 4, 5]),
            &broadcast_strides(&[1, 1, 1, 5], &[2, 3, 4, 5]),
        );
        assert_eq!(d, vec![24, 5]);
    }
}
