//! Turning a model's `logits` into class probabilities and a ranking. One implementation for the
//! ONNX Runtime crate and the browser crate, so both report the same numbers in the same order.

/// Numerically stable softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first); `k` larger than
/// the number of values returns all of them.
pub fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_and_top_k() {
        let p = softmax(&[1.0, 3.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k_indices(&p, 3), [1, 3, 2]);
        assert_eq!(top_k_indices(&p, 10).len(), 4);
        let p = softmax(&[0.0, 1000.0]);
        assert!(p[1] > 0.999 && p.iter().all(|v| v.is_finite()));
    }
}
