//! Per-ISA inner loops (`unsafe` lives only here), one file per client
//! module, each behind safe dispatchers with a scalar fallback and runtime
//! CPU detection.

//! The instruction-set levels and the element-wise maps shared by the
//! kernels live here; both instances of every kernel give the same bits
//! unless its module says otherwise.

pub(crate) mod resample;
pub(crate) mod ssim;

/// An instruction-set level the kernels have an instance for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Portable code (SSE2 on baseline x86-64).
    Scalar,
    /// x86 AVX2 without FMA (the instances that must give the portable
    /// code's bits: resampling, colour conversion).
    Avx2,
    /// x86 AVX2 with FMA; kernels without an FMA instance run their AVX2
    /// one.
    Avx2Fma,
}

impl Isa {
    /// The best level this CPU supports.
    pub(crate) fn detect() -> Isa {
        [Isa::Avx2Fma, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.is_supported())
            .unwrap_or(Isa::Scalar)
    }

    /// Whether this CPU can run the level's instances (cached by std after
    /// the first query).
    #[inline]
    pub(crate) fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Isa::Avx2Fma => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
            Isa::Avx2 | Isa::Avx2Fma => false,
        }
    }

    /// True when an AVX2 (no FMA) instance should run.
    #[inline]
    pub(crate) fn use_avx2(self) -> bool {
        self != Isa::Scalar && Isa::Avx2.is_supported()
    }

    /// True when an AVX2 + FMA instance should run.
    #[inline]
    #[allow(dead_code)] // unused on non-x86 targets
    pub(crate) fn use_avx2_fma(self) -> bool {
        self == Isa::Avx2Fma && self.is_supported()
    }
}

/// `f` applied element-wise: `dst[i] = f(src[i])` (a conversion loop that
/// vectorises, 4-wide with AVX2).
///
/// Panics if the lengths differ.
pub(crate) fn map<A, B, F>(isa: Isa, src: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A) -> B,
{
    assert_eq!(src.len(), dst.len());
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { map_avx2(src, dst, f) };
        return;
    }
    let _ = isa;
    map_body(src, dst, f);
}

/// [`map_body`] compiled for AVX2 (no FMA).
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2")]
unsafe fn map_avx2<A, B, F>(src: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A) -> B,
{
    map_body(src, dst, f);
}

#[inline(always)]
pub(crate) fn map_body<A, B, F>(src: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A) -> B,
{
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f(s);
    }
}

/// `f` applied element-wise to three sources: `dst[i] = f(a[i], b[i],
/// c[i])` (colour conversions; vectorises 4-wide over `f64` with AVX2).
///
/// Panics if the lengths differ.
pub(crate) fn map3<A, B, F>(isa: Isa, a: &[A], b: &[A], c: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A, A, A) -> B,
{
    assert!(a.len() == dst.len() && b.len() == dst.len() && c.len() == dst.len());
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if isa.use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { map3_avx2(a, b, c, dst, f) };
        return;
    }
    let _ = isa;
    map3_body(a, b, c, dst, f);
}

/// [`map3_body`] compiled for AVX2 (no FMA).
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
#[target_feature(enable = "avx2")]
unsafe fn map3_avx2<A, B, F>(a: &[A], b: &[A], c: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A, A, A) -> B,
{
    map3_body(a, b, c, dst, f);
}

#[inline(always)]
fn map3_body<A, B, F>(a: &[A], b: &[A], c: &[A], dst: &mut [B], f: &F)
where
    A: Copy,
    F: Fn(A, A, A) -> B,
{
    for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = f(a, b, c);
    }
}
