//! Direct tap-wise convolution micro-kernel (AVX2 + FMA) for the stride-1
//! layers that are not 3x3 Winograd ones: SRCNN's 9x9 and 5x5, FSRCNN's
//! 5x5, ESPCN's, and (forward only) the thin layers the GEMM paths serve
//! badly: one input channel (SRCNN's 9x9 1 -> 64, where im2col wrote 81
//! floats per pixel) or one or two output channels (its 5x5 32 -> 1, which
//! ran as AXPYs). SRCNN x3 on 528², 1 thread: 425 -> 413 ms.
//!
//! The tap-wise forward ([`super::taps_forward`]) copies a band of input
//! rows, zero-padded, into a scratch where the input of "wide" output pixel
//! `p` for tap `t` sits at `p + off[t]` in every channel plane. The portable
//! path runs one `gemm` call per tap (`[C_out x C_in] x [C_in x pixels]`,
//! accumulating); with few output channels (SRCNN's 5x5 64 -> 32) those
//! calls are too thin to reach the GEMM's speed, and reloading the output
//! band once per tap costs as much again. Here one register-blocked kernel
//! runs the whole reduction over `C_in x taps` for a block of [`MR`] output
//! channels and 16 pixels, reading the input straight from the band (no
//! packing) and the weights from one packed copy, and writes each output
//! once: the same structure as the Winograd products
//! ([`super::winograd`]), with the taps folded into the reduction.
//!
//! Single-thread on this 2-core Zen 3 (quiet machine, same run; the
//! per-tap GEMMs before): SRCNN's 5x5 64 -> 32 on 520² 400 -> 344 ms (68 ->
//! 79 GFLOP/s), a 5x5 16 -> 16 on 256² 18.4 -> 9.7 ms (44 -> 84 GFLOP/s).
//! Splitting the channel loop so the band columns stay in L1 did not help.
//!
//! Every output sums channels in index order and, within a channel, taps in
//! row-major order, whatever the band or thread: results do not depend on
//! the number of threads.

/// Output channels per micro-tile: 6 x 2 accumulator vectors, as in the
/// Winograd products.
pub(super) const MR: usize = 6;

/// Whether this CPU runs the kernel (AVX2 and FMA; std caches CPUID).
pub(super) fn available() -> bool {
    cfg!(target_arch = "x86_64") && crate::kernels::Isa::Avx2Fma.is_supported()
}

/// Packs one group's weights `[cog][cg][taps]` (PyTorch order) as
/// `[block][ci][tap][MR]`, blocks of [`MR`] output channels, the last one
/// padded with zeros.
pub(super) fn pack_weights(w: &[f32], cog: usize, cg: usize, taps: usize) -> Vec<f32> {
    let blocks = cog.div_ceil(MR);
    let mut out = vec![0.0f32; blocks * cg * taps * MR];
    for co in 0..cog {
        let (blk, r) = (co / MR, co % MR);
        for ci in 0..cg {
            for t in 0..taps {
                out[((blk * cg + ci) * taps + t) * MR + r] = w[(co * cg + ci) * taps + t];
            }
        }
    }
    out
}

/// `ys[co * mw + p] = sum_ci sum_t w[co][ci][t] * xs[ci * cs + p + offs[t]]`
/// for `co < cog`, `p < mw`; `wpack` from [`pack_weights`].
///
/// Panics unless [`available`], `mw` is a multiple of 8 and the slices
/// hold what the sums read and write.
#[allow(clippy::too_many_arguments)]
pub(super) fn product(
    cog: usize,
    cg: usize,
    offs: &[usize],
    wpack: &[f32],
    xs: &[f32],
    cs: usize,
    ys: &mut [f32],
    mw: usize,
) {
    let max_off = offs.iter().copied().max().unwrap_or(0);
    assert!(available() && mw % 8 == 0 && cs >= max_off + mw);
    assert!(cg == 0 || xs.len() >= (cg - 1) * cs + max_off + mw);
    assert!(ys.len() >= cog * mw && wpack.len() >= cog.div_ceil(MR) * cg * offs.len() * MR);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 and FMA are present (asserted); the asserts above bound
    // every read of `xs` (see `product_avx2`) and write of `ys`.
    unsafe {
        product_avx2(cog, cg, offs, wpack, xs, cs, ys, mw)
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA, and the bounds [`product`] asserts
/// must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn product_avx2(
    cog: usize,
    cg: usize,
    offs: &[usize],
    wpack: &[f32],
    xs: &[f32],
    cs: usize,
    ys: &mut [f32],
    mw: usize,
) {
    let taps = offs.len();
    let mut p = 0;
    // One or two output channels (SRCNN's last layer): a 6x16 tile would
    // hold only 2-4 accumulators, and their FMA latency chains, not the
    // loads, would set the pace (19 GFLOP/s). 48 pixels per tile give 6-12
    // independent chains.
    if cog <= 2 {
        while mw - p >= 48 {
            let (a, b, c) = (wpack.as_ptr(), xs.as_ptr().add(p), ys.as_mut_ptr().add(p));
            match cog {
                1 => kernel::<1, 6>(cg, offs, cs, a, b, c, mw),
                _ => kernel::<2, 6>(cg, offs, cs, a, b, c, mw),
            }
            p += 48;
        }
    }
    while p < mw {
        // 16 pixels at a time, then one block of 8 (mw is a multiple of 8);
        // pixel p + 8 NV - 1 < mw, so every load stays inside channel ci's
        // span ci * cs + [0, max_off + mw). Pixels outside, channel blocks
        // inside: the band columns of these pixels (all channels and taps)
        // stay in L1/L2 across the blocks, and the packed weights in L2.
        let two = mw - p >= 16;
        let b = xs.as_ptr().add(p);
        for blk in 0..cog.div_ceil(MR) {
            let rows = (cog - blk * MR).min(MR);
            let a = wpack.as_ptr().add(blk * cg * taps * MR);
            let c = ys.as_mut_ptr().add(blk * MR * mw + p);
            macro_rules! run {
                ($($r:literal)*) => {
                    match (rows, two) {
                        $(($r, true) => kernel::<$r, 2>(cg, offs, cs, a, b, c, mw),
                          ($r, false) => kernel::<$r, 1>(cg, offs, cs, a, b, c, mw),)*
                        _ => unreachable!("1 <= rows <= MR"),
                    }
                };
            }
            run!(1 2 3 4 5 6);
        }
        p += if two { 16 } else { 8 };
    }
}

/// One micro-tile: `R` output channels x `8 NV` pixels.
///
/// # Safety
/// As [`product_avx2`]; `a` points at the block's packed weights, `b` at
/// pixel `p` of channel 0 of the band, `c` at row 0, pixel `p` of the
/// output block (row stride `ldc`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn kernel<const R: usize, const NV: usize>(
    cg: usize,
    offs: &[usize],
    cs: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); NV]; R];
    let mut ap = a;
    for ci in 0..cg {
        let bc = b.add(ci * cs);
        for &o in offs {
            let bp = bc.add(o);
            let bv: [__m256; NV] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add(8 * v)));
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                for v in 0..NV {
                    accr[v] = _mm256_fmadd_ps(av, bv[v], accr[v]);
                }
            }
            ap = ap.add(MR);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        for (v, x) in accr.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc + 8 * v), *x);
        }
    }
}
