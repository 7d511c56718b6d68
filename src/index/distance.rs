//! Distances hnsw_rs does not ship.

use hnsw_rs::prelude::Distance;

/// Inner product as a distance for the `dot` metric, on vectors as given (not normalized).
///
/// hnsw_rs asserts that distances are non-negative, so `-(a·b)` cannot be used directly. This
/// maps the inner product through a strictly decreasing, positive, overflow-free function:
/// `1 - dot` for `dot <= 0` and `1 / (1 + dot)` above. The order of results is that of the inner
/// product; `dot_from_distance` inverts it for the score.
#[derive(Debug, Default, Clone, Copy)]
pub struct DistNegDot;

impl Distance<f32> for DistNegDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        distance_from_dot(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
    }
}

pub fn distance_from_dot(dot: f32) -> f32 {
    if dot <= 0.0 {
        1.0 - dot
    } else {
        1.0 / (1.0 + dot)
    }
}

pub fn dot_from_distance(distance: f32) -> f32 {
    if distance >= 1.0 {
        1.0 - distance
    } else {
        1.0 / distance - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_positive_decreasing_and_invertible() {
        let dots = [-1e30f32, -5.0, -0.5, 0.0, 0.25, 3.0, 1e6];
        let distances: Vec<f32> = dots.iter().map(|&d| distance_from_dot(d)).collect();
        assert!(distances.iter().all(|&d| d > 0.0 && d.is_finite()));
        assert!(distances.windows(2).all(|w| w[0] > w[1]));
        for (&dot, &distance) in dots.iter().zip(&distances).skip(1).take(5) {
            assert!((dot_from_distance(distance) - dot).abs() < 1e-4 * dot.abs().max(1.0), "{dot}");
        }
    }
}
