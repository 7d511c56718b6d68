//! From per-token hidden states to one vector per text, and the post-processing after it.

use crate::model::Pooling;

/// Pools one text's hidden states `[seq, hidden]` (row-major) under its attention mask.
/// Works for left and right padding: positions are chosen by the mask, not by index.
pub fn pool(states: &[f32], mask: &[i64], hidden: usize, pooling: Pooling) -> Vec<f32> {
    let row = |t: usize| &states[t * hidden..(t + 1) * hidden];
    let real = || mask.iter().enumerate().filter(|(_, &m)| m != 0).map(|(t, _)| t);
    match pooling {
        Pooling::Mean => {
            let mut sum = vec![0f32; hidden];
            let mut count = 0usize;
            for t in real() {
                for (s, v) in sum.iter_mut().zip(row(t)) {
                    *s += v;
                }
                count += 1;
            }
            // sentence-transformers clamps the token count at 1e-9: an all-padding row pools to zeros.
            let denom = (count as f32).max(1e-9);
            sum.iter_mut().for_each(|s| *s /= denom);
            sum
        }
        Pooling::LastToken => real().last().map_or_else(|| vec![0f32; hidden], |t| row(t).to_vec()),
        Pooling::Cls => real().next().map_or_else(|| vec![0f32; hidden], |t| row(t).to_vec()),
    }
}

/// Matryoshka truncation to `dims`, then L2 normalization when the model asks for it.
pub fn finish(mut vector: Vec<f32>, dims: usize, normalize: bool) -> Vec<f32> {
    vector.truncate(dims);
    if normalize {
        l2_normalize(&mut vector);
    }
    vector
}

/// Same epsilon as torch.nn.functional.normalize: a zero vector stays zero instead of becoming NaN.
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|v| *v /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two tokens of hidden size 2 plus one pad.
    const STATES: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];

    #[test]
    fn mean_ignores_padding() {
        assert_eq!(pool(&STATES, &[1, 1, 0], 2, Pooling::Mean), vec![2.0, 3.0]);
    }

    #[test]
    fn last_token_follows_the_mask_for_both_padding_sides() {
        assert_eq!(pool(&STATES, &[1, 1, 0], 2, Pooling::LastToken), vec![3.0, 4.0]);
        assert_eq!(pool(&STATES, &[0, 1, 1], 2, Pooling::LastToken), vec![100.0, 100.0]);
    }

    #[test]
    fn cls_takes_the_first_real_token() {
        assert_eq!(pool(&STATES, &[0, 1, 1], 2, Pooling::Cls), vec![3.0, 4.0]);
    }

    #[test]
    fn truncation_renormalizes() {
        let v = finish(vec![3.0, 4.0, 12.0], 2, true);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(finish(vec![0.0, 0.0], 2, true), vec![0.0, 0.0]);
    }
}
