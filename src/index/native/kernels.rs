//! Distance kernels, picked once per index at run time: AVX-512F, AVX2 + FMA, or portable code.
//!
//! The index ranks by one internal distance per metric: `-dot` for cosine and dot (cosine vectors
//! arrive normalized) and the squared Euclidean distance for l2. `AKIDB_SIMD=avx512|avx2|scalar`
//! caps the choice (benchmarks compare the paths on one machine); it never enables an instruction
//! set the CPU lacks.

use crate::domain::Metric;

/// A distance between two vectors of the index's width.
///
/// Unsafe to call because the SIMD variants need their CPU features: a `Kernel` is only ever
/// built by `Kernel::pick`, which checked them.
pub type DistanceFn = unsafe fn(&[f32], &[f32]) -> f32;

#[derive(Clone, Copy)]
pub struct Kernel {
    distance: DistanceFn,
    /// The instruction set in use, for logs and benchmark reports.
    pub name: &'static str,
}

impl Kernel {
    pub fn pick(metric: Metric) -> Kernel {
        let l2 = metric == Metric::L2;
        let cap = std::env::var("AKIDB_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            if cap != "avx2" && cap != "scalar" && std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel { distance: if l2 { x86::l2sq_avx512 } else { x86::neg_dot_avx512 }, name: "avx512" };
            }
            if cap != "scalar" && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernel { distance: if l2 { x86::l2sq_avx2 } else { x86::neg_dot_avx2 }, name: "avx2+fma" };
            }
        }
        let _ = cap;
        Kernel { distance: if l2 { l2sq_scalar } else { neg_dot_scalar }, name: "scalar" }
    }

    /// The internal distance between `a` and `b` (equal widths).
    #[inline(always)]
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        // SAFETY: `pick` chose this function only after detecting the features it needs.
        unsafe { (self.distance)(a, b) }
    }
}

/// Eight independent sums, so the compiler keeps them in vector registers without FMA.
unsafe fn neg_dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    -(acc.iter().sum::<f32>() + tail)
}

unsafe fn l2sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn neg_dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
            i += 32;
        }
        if i + 16 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            i += 16;
        }
        if i < n {
            // A masked load reads only the lanes that exist: no scalar tail.
            let mask: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
            acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, pa.add(i)), _mm512_maskz_loadu_ps(mask, pb.add(i)), acc1);
        }
        -_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            i += 32;
        }
        if i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
            let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, pa.add(i)), _mm512_maskz_loadu_ps(mask, pb.add(i)));
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn neg_dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
        while i < n {
            sum += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        -sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            i += 16;
        }
        if i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d, d, acc0);
            i += 8;
        }
        let mut sum = hsum256(_mm256_add_ps(acc0, acc1));
        while i < n {
            let d = *pa.add(i) - *pb.add(i);
            sum += d * d;
            i += 1;
        }
        sum
    }
}

/// Asks the CPU to start loading every cache line of `len` floats at `p` (the next neighbour's
/// vector: 50 floats span 4 lines, 384 span 25) while the current distance is computed.
#[inline(always)]
pub fn prefetch(p: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let (start, end) = (p as usize & !63, p as usize + len * 4);
        let mut line = start;
        while line < end {
            // SAFETY: a prefetch is a hint; it never faults, whatever the address.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line as *const i8) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
        match metric {
            Metric::L2 => a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum(),
            _ => -a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>(),
        }
    }

    #[test]
    fn every_kernel_agrees_with_the_reference_at_every_width() {
        let mut kernels: Vec<(Metric, DistanceFn)> = vec![(Metric::Dot, neg_dot_scalar), (Metric::L2, l2sq_scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push((Metric::Dot, x86::neg_dot_avx512));
                kernels.push((Metric::L2, x86::l2sq_avx512));
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push((Metric::Dot, x86::neg_dot_avx2));
                kernels.push((Metric::L2, x86::l2sq_avx2));
            }
        }
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for dims in 1..=130 {
            let a: Vec<f32> = (0..dims).map(|_| next()).collect();
            let b: Vec<f32> = (0..dims).map(|_| next()).collect();
            for (metric, kernel) in &kernels {
                // SAFETY: each kernel was pushed only when its features were detected.
                let got = unsafe { kernel(&a, &b) } as f64;
                let want = reference(*metric, &a, &b);
                assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "dims {dims}: {got} vs {want}");
            }
        }
    }
}
