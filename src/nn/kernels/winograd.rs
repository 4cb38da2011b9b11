//! Winograd F(2x2, 3x3) and F(2x2, 5x5) convolution for 3x3 and 5x5,
//! stride-1, ungrouped layers (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016, arXiv:1509.09308).
//!
//! The description below is of the 3x3 case; the 5x5 one is the same with
//! 6x6 input tiles (36 positions, 36 multiplies per 2x2 tile and channel
//! pair instead of the direct 100, 2.78x fewer), `Bᵀ` of F(4, 3) on the
//! points 0, ±1, ±2 and `G` with sixths and twenty-fourths ([`G5`]):
//! results differ from the direct sums by ~7e-6 of the output's magnitude.
//! Its weight gradient runs the transposed F(5x5, 2x2) like the 3x3
//! layers' (below): error ~9e-6 of the gradient's magnitude. The 6x6 input
//! transform computes all six rows of `Bᵀ d` from one load per input row
//! and column shift (36 loads per 8 tiles instead of 216): 17 % fewer
//! instructions for a whole 16x64x52x52 forward (`valgrind --tool=callgrind
//! target/release/examples/time_conv fwd 16 64 32 52 52 5 0 3`), 1.25x
//! faster (the same example with 30 runs, 6 alternating old/new runs).
//!
//! SRCNN's 5x5 64 -> 32 layer against the direct kernels, 1 thread,
//! interleaved CPU-time medians (`cargo bench --bench nn --
//! conv_winograd`; 21x21 outputs use only 63 % of the computed tile pixels):
//!
//! | | forward | input gradient (transposed, padding 4) | weight gradient |
//! |---|---|---|---|
//! | 1x64x256x256 | 2.37x | | 1.91x |
//! | 16x64x25x25 (33² patches) | 1.33x | 1.56x (16x32x21x21) | 1.18x |
//! | 16x64x33x33 | | | 1.46x |
//! | 32x64x40x40 (48² patches) | | | 1.37x |
//!
//! Each 2x2 block ("tile") of output pixels of one channel depends on a 4x4
//! block `d` of every input plane. With the 4x4 transformed input
//! `V = Bᵀ d B` and transformed weights `U = G g Gᵀ`, the tile is
//! `Aᵀ [Σ_ci U ⊙ V] A`: the channel sum becomes 16 independent matrix
//! products `M_p = U_p V_p` (`[C_out x C_in] x [C_in x tiles]`, one per
//! position `p` of the 4x4 transformed tile), 16 multiplies per tile and
//! channel pair instead of the direct 36, i.e. 2.25x fewer. The transforms
//! only add and subtract (the 1/2 of `G` is exact), so the extra rounding is
//! a few ulps of the input magnitudes.
//!
//! The work is split into blocks of about [`BLOCK_TILES`] tiles of one
//! image (256 output pixels); each block is one rayon task, with its
//! buffers in the thread's scratch:
//!
//! 1. input transform into `V[p][panel][ci][lane]`, already in the layout
//!    the micro-kernel reads (panels of [`NR`] tiles), so the products need
//!    no packing (this is why they do not use the `gemm` crate, which packs
//!    its operands on every call);
//! 2. the 16 products with a register-blocked [`MR`] x [`NR`] micro-kernel
//!    (AVX2 + FMA, or portable code), summing input channels in index order;
//!    the weights `U_p` (`C_out x C_in`) stay in L1/L2 across the block;
//! 3. output transform, plus bias, straight into `y`.
//!
//! Single-thread on a 2-core Zen 3 (see `benches/nn.rs`), this runs 64 -> 64
//! 3x3 layers at 125-140 GFLOP/s of direct-convolution work against 70-75
//! for the im2col / tap-wise GEMM path (1.7-2.2x), with about 70 % of the
//! time in the products (at ~95 GFLOP/s, ~85 % of the FMA peak). The
//! results differ from the direct sums by about 1e-6 of the output's
//! magnitude (the tests allow 1e-4).
//!
//! The weight gradient of the same layers runs the transposed algorithm,
//! F(3x3, 2x2) ([`backward_weight`]): the input tiles go through the same
//! input transform, the 2x2 output-gradient tiles through `A e Aᵀ`, and the
//! 16 products reduce over tiles instead of channels. 64 -> 64 on
//! 1x64x256x256, one thread: 60.7 ms with the tap-wise GEMMs (80 GFLOP/s of
//! direct work), 36.8 ms this way (131). On training batches the gain
//! shrinks with the patch (tile rows padded to 8 tiles, more edge groups):
//! 16x64 at 48² 1.44x, 32² 1.14x, 24² 0.93-1.04x (three runs;
//! `NN_WEIGHT_GRAD_ONLY=1 cargo bench --bench nn -- conv_winograd`).
//!
//! Every output element is computed by one task with a summation order that
//! depends only on the layer's shape, so results do not depend on the
//! number of threads. The AVX2 + FMA and portable instances differ in the
//! last bits (fused multiply-adds).
//!
//! Tiles of an image are numbered `ty * twp + tx`, with the tile-row length
//! `tw` padded to `twp`, a multiple of [`LANES`]: then every group of
//! [`LANES`] consecutive tile numbers lies in one tile row and one panel,
//! and the transforms run on whole vectors. Padding tiles (and the output
//! pixels of an odd edge) are computed and dropped.

use super::{with_scratch, ConvGeom, Epilogue, SendPtr};
// The crate's one instruction-set level; these kernels have a portable and
// an AVX2 + FMA (x86-64) instance.
use crate::kernels::Isa;
use rayon::prelude::*;

/// Positions of the transformed `(K + 1) x (K + 1)` tile of a `K x K`
/// kernel (2x2 output pixels per tile).
const fn positions(k: usize) -> usize {
    (k + 1) * (k + 1)
}

/// Output channels per micro-tile (rows of `M`). 6 x 16 uses 12 of the 16
/// YMM registers for accumulators, 2 for the `V` row and 1 for the
/// broadcast weight (4 x 24 would need all 16, and LLVM then spills an
/// accumulator to the stack, halving the speed).
const MR: usize = 6;

/// Tiles per micro-tile (columns of `M`): two 8-float vectors.
const NR: usize = 16;

/// Tiles per vector of the transforms (one YMM register of `f32`).
const LANES: usize = 8;

/// Floats added to the distance between the 16 position slices of the
/// block buffers `V` and `M`: the slices are a multiple of 4 KB long for
/// common widths, and the transforms touch all 16 at once, which then map
/// to one L1 set (8 ways) and evict each other; one cache line of skew
/// spreads them.
const SKEW: usize = 16;

/// Tiles per block (a multiple of [`NR`]): 256 output pixels, a tile row
/// of a 128-pixel-wide output. Measured single-thread with
/// `cargo bench --bench nn -- conv` on 64 -> 64, 32 -> 32 and 192 -> 64:
/// 64 and 128 were within noise of each other, 32 and 256 a few percent
/// slower (more segment ends, resp. the block's `V` and `M` outgrowing L2).
/// The 5x5 layers (36 positions per tile) use the same: on SRCNN's 64 -> 32
/// layer (`cargo bench --bench nn -- conv_winograd`) 16 and 32 tiles were
/// no faster on 16x25x25 and 1.07x / 1.04x slower on 256x256.
const BLOCK_TILES: usize = 64;

/// Smallest `C_in` for which the Winograd forward is used. Measured
/// single-thread on 1x C_in x 128x128 (`NN_WINOGRAD_SWEEP=1 cargo bench
/// --bench nn -- conv`, Winograd vs the GEMM path): 3 -> 8..64 ran at
/// 0.94-1.03x, 4 -> 4 at 1.12x, 4 -> 64 at 1.07x, 6 -> 64 at 1.16x.
pub(super) const MIN_CIN: usize = 4;

/// Smallest `C_out` for which the Winograd forward is used: 16 -> 3 and
/// 64 -> 3 ran at 0.85x (half of the 6-row micro-kernel idle, and the
/// GEMM path's tap-wise kernel is good at few outputs), 64 -> 4 at 1.00x,
/// 64 -> 6 at 1.09x, 64 -> 12 at 1.49x.
pub(super) const MIN_COUT: usize = 6;

/// Smallest fraction of the computed output pixels (4 per tile, tile rows
/// padded to [`LANES`] tiles) that lie in the image, as `numerator /
/// denominator`. On small images most tiles are padding: per image,
/// 12x12 outputs (75 % used) ran at 1.38x, 8x8 (50 %) at 1.05x, 6x6
/// (37 %) at 0.71x (batches of 16-64 images, 64 -> 64).
const MIN_TILE_USE: (usize, usize) = (3, 5);

/// Whether `g` is a convolution the Winograd forward computes (3x3 or
/// 5x5), and one large enough for it to pay.
pub(super) fn applies(g: &ConvGeom) -> bool {
    let shape = (g.kh == 3 || g.kh == 5)
        && g.kw == g.kh
        && g.sh == 1
        && g.sw == 1
        && g.groups == 1
        && g.ph == g.pw;
    let computed = 4 * g.oh.div_ceil(2) * g.ow.div_ceil(2).next_multiple_of(LANES);
    shape
        && g.cin >= MIN_CIN
        && g.cout >= MIN_COUT
        && g.oh * g.ow * MIN_TILE_USE.1 >= computed * MIN_TILE_USE.0
}

/// Whether [`backward_weight`] computes the weight gradient of `g`: the
/// layers [`applies`] accepts.
pub(super) fn applies_weight(g: &ConvGeom) -> bool {
    applies(g)
}

/// The tiling of one convolution.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Tile rows (`ceil(oh / 2)`).
    th: usize,
    /// Tiles per row, `ceil(ow / 2)`, rounded up to a multiple of [`LANES`]
    /// (the tile-number stride of a tile row).
    twp: usize,
    /// Tiles per block, a multiple of [`NR`].
    block: usize,
    /// Blocks per image.
    blocks: usize,
    /// `C_out` rounded up to a multiple of [`MR`] (the padding rows of `U`
    /// are zero).
    cout_pad: usize,
    /// Input channels.
    cin: usize,
}

impl Plan {
    fn new(g: &ConvGeom) -> Plan {
        let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
        let twp = tw.next_multiple_of(LANES);
        let cout_pad = g.cout.next_multiple_of(MR);
        // Spread the image's tiles evenly over the blocks, so the last
        // block is not a sliver.
        let total = th * twp;
        let blocks = total.div_ceil(BLOCK_TILES);
        let block = total.div_ceil(blocks).next_multiple_of(NR);
        Plan {
            th,
            twp,
            block,
            blocks: total.div_ceil(block),
            cout_pad,
            cin: g.cin,
        }
    }

    /// Distance between the position slices of `V` for `tpad` tiles.
    fn v_stride(&self, tpad: usize) -> usize {
        self.cin * tpad + SKEW
    }

    /// Distance between the position slices of `M` for `tpad` tiles.
    fn m_stride(&self, tpad: usize) -> usize {
        self.cout_pad * tpad + SKEW
    }

    /// Tile numbers `b0..b1` of block `bi`.
    fn range(&self, bi: usize) -> (usize, usize) {
        let b0 = bi * self.block;
        (b0, (b0 + self.block).min(self.th * self.twp))
    }

    /// The tile rows of tile numbers `b0..b1`, as `(ty, tx0, tx1, off)`:
    /// tiles `tx0..tx1` of row `ty`, the first at offset `off` in the block.
    /// All of `tx0`, `tx1`, `off` are multiples of [`LANES`].
    fn rows(&self, b0: usize, b1: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let twp = self.twp;
        (b0 / twp..b1.div_ceil(twp)).map(move |ty| {
            let (r0, r1) = (ty * twp, (ty + 1) * twp);
            let (s, e) = (b0.max(r0), b1.min(r1));
            (ty, s - r0, e - r0, s - b0)
        })
    }
}

/// `G` of F(2, 3) (4x3): `[[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2],
/// [0, 0, 1]]` (Lavin & Gray, eq. 7).
const G3: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `G` of F(2, 5) (6x5) for the interpolation points 0, 1, -1, 2, -2 and
/// infinity: row `j` of a finite point `a_j` is `a_j^k / Π_{l≠j} (a_j -
/// a_l)`, the last row picks the leading coefficient. Its `Bᵀ` is the one
/// of F(4, 3) on the same points (see [`input_rows5`]).
const G5: [[f64; 5]; 6] = [
    [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// `G[i][c]` of the `K x K` kernel's F(2, K).
fn g_entry<const K: usize>(i: usize, c: usize) -> f64 {
    if K == 3 {
        G3[i][c]
    } else {
        G5[i][c]
    }
}

/// Floats of the even/odd column scratch of [`input_transform`]'s
/// portable path: the `K + 1` input rows of a tile row, each split into
/// even and odd columns of `twp + K / 2` entries.
fn eo_len<const K: usize>(plan: &Plan) -> usize {
    2 * (K + 1) * (plan.twp + K / 2)
}

/// Transformed weights `U = G g Gᵀ` in the micro-kernel's layout
/// `[p][co / MR][ci][co % MR]`, zero for the padding output channels.
/// Computed in `f64` (it is small) so that `U` is correctly rounded (up to
/// the rounding of `G5`'s thirds and sixths).
fn transform_weights<const K: usize>(wt: &[f32], g: &ConvGeom, plan: &Plan) -> Vec<f32> {
    let t = K + 1;
    let (cin, cout) = (g.cin, g.cout);
    let pstride = plan.cout_pad * cin;
    let mut u = vec![0.0f32; positions(K) * pstride];
    for co in 0..cout {
        for ci in 0..cin {
            let k = &wt[(co * cin + ci) * K * K..][..K * K];
            // gg = G g: t x K.
            let mut gg = [[0.0f64; 5]; 6];
            for (i, row) in gg.iter_mut().enumerate().take(t) {
                for (c, v) in row.iter_mut().enumerate().take(K) {
                    *v = (0..K)
                        .map(|r| g_entry::<K>(i, r) * f64::from(k[r * K + c]))
                        .sum();
                }
            }
            for (i, row) in gg.iter().enumerate().take(t) {
                for j in 0..t {
                    let v: f64 = (0..K).map(|c| row[c] * g_entry::<K>(j, c)).sum();
                    u[(i * t + j) * pstride + ((co / MR) * cin + ci) * MR + co % MR] = v as f32;
                }
            }
        }
    }
    u
}

/// Winograd forward, `y = conv(x, w) + b`, for a geometry [`applies`]
/// accepts (any padding, any size). `y` is fully overwritten.
pub(super) fn forward(x: &[f32], wt: &[f32], epi: Epilogue, g: &ConvGeom, y: &mut [f32]) {
    forward_isa(Isa::detect(), x, wt, epi, g, y)
}

/// [`forward`] with a chosen instruction-set level (for the tests).
pub(super) fn forward_isa(
    isa: Isa,
    x: &[f32],
    wt: &[f32],
    epi: Epilogue,
    g: &ConvGeom,
    y: &mut [f32],
) {
    assert!(g.kw == g.kh && g.sh == 1 && g.sw == 1 && g.groups == 1 && g.ph == g.pw);
    assert!(x.len() == g.x_len() && wt.len() == g.w_len() && y.len() == g.y_len());
    if let Some(b) = epi.bias {
        assert_eq!(b.len(), g.cout);
    }
    match g.kh {
        3 => forward_k::<3>(isa, x, wt, epi, g, y),
        5 => forward_k::<5>(isa, x, wt, epi, g, y),
        k => panic!("no Winograd forward for {k}x{k} kernels"),
    }
}

/// [`forward_isa`] for `K x K` kernels, F(2x2, KxK).
fn forward_k<const K: usize>(
    isa: Isa,
    x: &[f32],
    wt: &[f32],
    epi: Epilogue,
    g: &ConvGeom,
    y: &mut [f32],
) {
    let pos = positions(K);
    let plan = Plan::new(g);
    let u = transform_weights::<K>(wt, g, &plan);
    let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    let yp = SendPtr(y.as_mut_ptr());
    let tasks: Vec<(usize, usize)> = (0..g.n)
        .flat_map(|n| (0..plan.blocks).map(move |bi| (n, bi)))
        .collect();
    tasks.par_iter().for_each(|&(n, bi)| {
        let (b0, b1) = plan.range(bi);
        let tpad = (b1 - b0).next_multiple_of(NR);
        let v_len = pos * plan.v_stride(tpad);
        let m_len = pos * plan.m_stride(tpad);
        let eo_len = eo_len::<K>(&plan);
        with_scratch(v_len + m_len + eo_len, |s| {
            let (v, s) = s.split_at_mut(v_len);
            let (m, eo) = s.split_at_mut(m_len);
            let x_img = &x[n * g.cin * in_plane..][..g.cin * in_plane];
            input_transform::<K>(isa, x_img, g, &plan, b0, b1, tpad, v, eo);
            multiply(isa, &u, v, m, g.cout, &plan, tpad, pos);
            // SAFETY: image n's output planes lie inside `y` (length checked
            // above). Block (n, bi) writes only the pixels of its own tiles,
            // and the blocks partition the tiles, so no other task writes
            // them.
            unsafe {
                let y_img = yp.get().add(n * g.cout * out_plane);
                output_transform::<K>(isa, m, epi, g, &plan, b0, b1, tpad, y_img);
            }
        })
    });
}

/// Input transform `V = Bᵀ d B`, with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`, of
/// tiles `b0..b1` of one image (`x_img`: its `C_in` planes) into `v`
/// (`[p][panel][ci][lane]`, `tpad` tiles, position stride
/// [`Plan::v_stride`]). `eo` is scratch of at least `8 * (twp + 1)` floats.
///
/// Per tile row and input channel: the AVX2 instance reads the input rows
/// in place ([`input_segment_avx2`]); the portable one first splits the
/// tile row's four input rows into even and odd columns ([`split_row`]),
/// after which the four columns of [`LANES`] consecutive tiles are four
/// contiguous vectors.
#[allow(clippy::too_many_arguments)]
fn input_transform<const K: usize>(
    isa: Isa,
    x_img: &[f32],
    g: &ConvGeom,
    plan: &Plan,
    b0: usize,
    b1: usize,
    tpad: usize,
    v: &mut [f32],
    eo: &mut [f32],
) {
    let (cin, t, pos) = (g.cin, K + 1, positions(K));
    let pstride = plan.v_stride(tpad);
    let v = &mut v[..pos * pstride];
    let plane = g.h * g.w;
    // Padding tiles of the last panel: zero (never read back, but keeps
    // uninitialised scratch, possibly denormal, out of the products).
    if b1 - b0 < tpad {
        let (panel, lane) = ((b1 - b0) / NR, (b1 - b0) % NR);
        for p in 0..pos {
            for ci in 0..cin {
                v[p * pstride + (panel * cin + ci) * NR..][lane..NR].fill(0.0);
            }
        }
    }
    for (ty, tx0, tx1, off) in plan.rows(b0, b1) {
        let n = tx1 - tx0;
        // Even/odd columns per tile row: the group's tiles and the K / 2
        // after them.
        let len = n + K / 2;
        let eo = &mut eo[..2 * t * len];
        for ci in 0..cin {
            let src = &x_img[ci * plane..][..plane];
            // Block offset of tile group k -> offset of its first lane in V.
            let dst = |k: usize| {
                let b = off + k;
                (b / NR * cin + ci) * NR + b % NR
            };
            // The last vector of the segment is written at
            // (pos - 1) * pstride + dst(n - LANES) + LANES - 1 < v.len().
            assert!((pos - 1) * pstride + dst(n - LANES) + LANES <= v.len());
            #[cfg(target_arch = "x86_64")]
            if isa.use_avx2_fma() {
                if ci + PREFETCH_CHANNELS < cin {
                    let next = &x_img[(ci + PREFETCH_CHANNELS) * plane..][..plane];
                    prefetch_segment::<K>(next, g, ty, tx0, n);
                }
                // SAFETY: the CPU supports AVX2; `dst(k)` increases with k,
                // so the assert bounds all writes.
                unsafe {
                    if K == 3 {
                        input_segment_avx2(src, g, ty, tx0, n, v.as_mut_ptr(), pstride, dst);
                    } else {
                        input_segment5_avx2(src, g, ty, tx0, n, v.as_mut_ptr(), pstride, dst);
                    }
                }
                continue;
            }
            for (r, pair) in eo.chunks_exact_mut(2 * len).enumerate() {
                let (e, o) = pair.split_at_mut(len);
                let iy = (2 * ty + r) as isize - g.ph as isize;
                split_row(src, g, iy, tx0, e, o);
            }
            for k in (0..n).step_by(LANES) {
                if K == 3 {
                    input_tile8_scalar(&eo[k..], len, &mut v[dst(k)..], pstride);
                } else {
                    input_tile8_scalar5(&eo[k..], len, &mut v[dst(k)..], pstride);
                }
            }
        }
    }
}

/// Which tile of a group of [`LANES`] each lane of the AVX2 transforms
/// holds. The in-lane shuffle that splits even and odd input columns leaves
/// the tiles in this order; the products do not care, and the output
/// transform's in-lane interleave of even and odd output columns puts them
/// back in order, so neither transform needs a lane-crossing permute. (The
/// portable instance keeps the natural order; each instance reads only
/// what it wrote.)
#[allow(dead_code)] // documentation of the layout
const TILE_ORDER_AVX2: [usize; LANES] = [0, 1, 4, 5, 2, 3, 6, 7];

/// How many input channels ahead [`input_transform`] prefetches its rows:
/// a segment's rows are a few cache lines each, too short for the hardware
/// prefetcher to pick up, and on images larger than the caches the input
/// transform otherwise waits on memory (1x64x256x256: 7.6 -> 6.1 ms).
const PREFETCH_CHANNELS: usize = 2;

/// Prefetches into L1 the input columns that the segment `tx0..tx0+n` of
/// tile row `ty` reads from `plane`.
#[cfg(target_arch = "x86_64")]
fn prefetch_segment<const K: usize>(plane: &[f32], g: &ConvGeom, ty: usize, tx0: usize, n: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let lo = (2 * tx0).saturating_sub(g.pw).min(g.w);
    let hi = (2 * (tx0 + n) + K - 1).saturating_sub(g.pw).min(g.w);
    for r in 0..K + 1 {
        let Some(iy) = (2 * ty + r).checked_sub(g.ph).filter(|&iy| iy < g.h) else {
            continue;
        };
        let row = &plane[iy * g.w..][lo..hi];
        for c in (0..row.len()).step_by(16).chain(row.len().checked_sub(1)) {
            // SAFETY: a prefetch has no architectural effect; the address
            // is inside `row` anyway.
            unsafe { _mm_prefetch(row.as_ptr().add(c).cast::<i8>(), _MM_HINT_T0) };
        }
    }
}

/// The `R` input rows of one tile row (`None` outside the image), and the
/// zero-padded copies that a group of tiles at the image's left or right
/// edge reads instead.
#[cfg(target_arch = "x86_64")]
struct GroupRows<'a, const R: usize, const SPAN: usize> {
    rows: [Option<&'a [f32]>; R],
    w: usize,
    zeros: [f32; SPAN],
    pad: [[f32; SPAN]; R],
}

#[cfg(target_arch = "x86_64")]
impl<'a, const R: usize, const SPAN: usize> GroupRows<'a, R, SPAN> {
    /// Input rows `2 ty - p ..` of `plane`.
    fn new(plane: &'a [f32], g: &ConvGeom, ty: usize) -> Self {
        GroupRows {
            rows: std::array::from_fn(|r| {
                let iy = (2 * ty + r) as isize - g.ph as isize;
                (iy >= 0 && iy < g.h as isize).then(|| &plane[iy as usize * g.w..][..g.w])
            }),
            w: g.w,
            zeros: [0.0; SPAN],
            pad: [[0.0; SPAN]; R],
        }
    }

    /// For each row, a pointer to `SPAN` readable floats holding its
    /// columns `c0..c0 + SPAN` (zero outside the image), valid until the
    /// next call.
    fn sources(&mut self, c0: isize) -> [*const f32; R] {
        let w = self.w as isize;
        if c0 >= 0 && c0 + SPAN as isize <= w {
            let zeros = self.zeros.as_ptr();
            return std::array::from_fn(|r| {
                self.rows[r].map_or(zeros, |row| row[c0 as usize..].as_ptr())
            });
        }
        // Columns lo..hi of the span are inside the image.
        let lo = (-c0).clamp(0, SPAN as isize) as usize;
        let hi = (w - c0).clamp(lo as isize, SPAN as isize) as usize;
        for (pr, row) in self.pad.iter_mut().zip(&self.rows) {
            pr.fill(0.0);
            if let Some(row) = row {
                let s = (c0 + lo as isize) as usize;
                pr[lo..hi].copy_from_slice(&row[s..s + hi - lo]);
            }
        }
        std::array::from_fn(|r| self.pad[r].as_ptr())
    }
}

/// The input transform of tiles `tx0..tx0+n` of tile row `ty` of one input
/// plane, straight from the plane: the even and odd columns of each input
/// row come from two loads and a shuffle ([`deinterleave_avx2`]); groups
/// touching the zero padding go through a small padded copy.
///
/// # Safety
/// The CPU must support AVX2; `n` must be a multiple of [`LANES`] and `v`
/// valid for writing `LANES` floats at `p * pstride + dst(k)` for `p < 16`
/// and every group `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn input_segment_avx2(
    plane: &[f32],
    g: &ConvGeom,
    ty: usize,
    tx0: usize,
    n: usize,
    v: *mut f32,
    pstride: usize,
    dst: impl Fn(usize) -> usize,
) {
    use std::arch::x86_64::*;
    // The 8 tiles of a group read 18 input columns from c0 = 2 (tx0+k) - p.
    let mut rows = GroupRows::<4, { 2 * LANES + 2 }>::new(plane, g, ty);
    for k in (0..n).step_by(LANES) {
        let src = rows.sources(2 * (tx0 + k) as isize - g.pw as isize);
        // Rows of Bᵀ d first, on the raw input columns (u = d_a ± d_b,
        // with the element-wise row pairs of Bᵀ), then (Bᵀ d) B per row:
        // few live registers, no spills.
        let v = v.add(dst(k));
        for (i, (ra, rb, add)) in [(0, 2, false), (1, 2, true), (2, 1, false), (1, 3, false)]
            .into_iter()
            .enumerate()
        {
            let row = |off: usize| {
                let (x, y) = (
                    _mm256_loadu_ps(src[ra].add(off)),
                    _mm256_loadu_ps(src[rb].add(off)),
                );
                if add {
                    _mm256_add_ps(x, y)
                } else {
                    _mm256_sub_ps(x, y)
                }
            };
            // Columns 0,2,..,14 (d0 of the tiles) and 1,3,..,15 (d1), then
            // shifted by one tile (d2, d3).
            let (e0, o0) = deinterleave_avx2(row(0), row(8));
            let (e1, o1) = deinterleave_avx2(row(2), row(10));
            _mm256_storeu_ps(v.add(4 * i * pstride), _mm256_sub_ps(e0, e1));
            _mm256_storeu_ps(v.add((4 * i + 1) * pstride), _mm256_add_ps(o0, e1));
            _mm256_storeu_ps(v.add((4 * i + 2) * pstride), _mm256_sub_ps(e1, o0));
            _mm256_storeu_ps(v.add((4 * i + 3) * pstride), _mm256_sub_ps(o0, o1));
        }
    }
}

/// The even and the odd elements of the 16 floats `a`, `b`, each in the
/// lane order of [`TILE_ORDER_AVX2`].
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn deinterleave_avx2(
    a: std::arch::x86_64::__m256,
    b: std::arch::x86_64::__m256,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    // Within 128-bit halves: [a0 a2 b0 b2 | a4 a6 b4 b6] and the odd ones.
    (_mm256_shuffle_ps(a, b, 0x88), _mm256_shuffle_ps(a, b, 0xDD))
}

/// Splits input row `iy` (possibly outside the image: zeros) into the even
/// and odd columns of the padded row starting at padded column `2 * tx0`:
/// `e[k] = x[iy][2 (tx0 + k) - p]`, `o[k] = x[iy][2 (tx0 + k) + 1 - p]`,
/// zero outside the image, for `k < e.len()`. Column `2k` of the tile
/// `tx0 + k` is then `e[k]`, column 1 `o[k]`, 2 `e[k + 1]`, 3 `o[k + 1]`.
/// (LLVM vectorises the interior loop with shuffles.)
fn split_row(plane: &[f32], g: &ConvGeom, iy: isize, tx0: usize, e: &mut [f32], o: &mut [f32]) {
    let (h, w) = (g.h as isize, g.w as isize);
    if iy < 0 || iy >= h {
        e.fill(0.0);
        o.fill(0.0);
        return;
    }
    let row = &plane[iy as usize * g.w..][..g.w];
    let len = e.len() as isize;
    // Column of e[0]; e[k] and o[k] are both inside for lo <= k < hi.
    let base = 2 * tx0 as isize - g.pw as isize;
    let lo = ((-base + 1) / 2).clamp(0, len);
    let hi = ((w - base) / 2).clamp(lo, len);
    let at = |c: isize| {
        if c >= 0 && c < w {
            row[c as usize]
        } else {
            0.0
        }
    };
    for k in (0..lo).chain(hi..len) {
        e[k as usize] = at(base + 2 * k);
        o[k as usize] = at(base + 2 * k + 1);
    }
    let (lo, hi) = (lo as usize, hi as usize);
    if hi > lo {
        let src = &row[(base + 2 * lo as isize) as usize..][..2 * (hi - lo)];
        for ((pair, ev), ov) in src.chunks_exact(2).zip(&mut e[lo..hi]).zip(&mut o[lo..hi]) {
            *ev = pair[0];
            *ov = pair[1];
        }
    }
}

/// The input transform of [`LANES`] tiles: `eo` holds the even and odd
/// columns of the four input rows (row `r`'s even at `2 r len`, odd at
/// `(2 r + 1) len`, the group's first tile at 0), `v` receives position `p`
/// at `p * pstride`.
fn input_tile8_scalar(eo: &[f32], len: usize, v: &mut [f32], pstride: usize) {
    // z[r][j] = (d B)[r][j].
    let mut z = [[[0.0f32; LANES]; 4]; 4];
    for (r, zr) in z.iter_mut().enumerate() {
        let e = &eo[2 * r * len..][..LANES + 1];
        let o = &eo[(2 * r + 1) * len..][..LANES + 1];
        for l in 0..LANES {
            zr[0][l] = e[l] - e[l + 1];
            zr[1][l] = o[l] + e[l + 1];
            zr[2][l] = e[l + 1] - o[l];
            zr[3][l] = o[l] - o[l + 1];
        }
    }
    for j in 0..4 {
        for l in 0..LANES {
            v[j * pstride + l] = z[0][j][l] - z[2][j][l];
            v[(4 + j) * pstride + l] = z[1][j][l] + z[2][j][l];
            v[(8 + j) * pstride + l] = z[2][j][l] - z[1][j][l];
            v[(12 + j) * pstride + l] = z[1][j][l] - z[3][j][l];
        }
    }
}

/// `Bᵀ d` for F(2, 5) on six values (or vectors) `d`:
/// `Bᵀ = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
/// [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]`,
/// evaluated with the shared terms `d4 - 4 d2`, `d3 - 4 d1`, `d4 - d2` and
/// `2 (d3 - d1)`. Generic over the arithmetic so that the portable and the
/// AVX2 transforms are one formula.
#[inline(always)]
fn input_rows5<T: Copy>(d: [T; 6], ops: &impl TransformOps<T>) -> [T; 6] {
    let p = ops.fma(-4.0, d[2], d[4]);
    let q = ops.fma(-4.0, d[1], d[3]);
    let r = ops.sub(d[4], d[2]);
    let s = ops.scale(2.0, ops.sub(d[3], d[1]));
    [
        ops.fma(4.0, d[0], ops.fma(-5.0, d[2], d[4])),
        ops.add(p, q),
        ops.sub(p, q),
        ops.add(r, s),
        ops.sub(r, s),
        ops.fma(4.0, d[1], ops.fma(-5.0, d[3], d[5])),
    ]
}

/// `Aᵀ m` for F(2, 5) on six values (or vectors):
/// `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]]`.
#[inline(always)]
fn output_rows5<T: Copy>(m: [T; 6], ops: &impl TransformOps<T>) -> [T; 2] {
    let (a, b) = (ops.add(m[1], m[2]), ops.sub(m[1], m[2]));
    let (c, d) = (ops.add(m[3], m[4]), ops.sub(m[3], m[4]));
    [
        ops.add(ops.add(m[0], a), c),
        ops.add(ops.fma(2.0, d, b), m[5]),
    ]
}

/// The arithmetic the F(2, 5) transforms need, on `f32` or on AVX2
/// vectors.
trait TransformOps<T> {
    fn add(&self, a: T, b: T) -> T;
    fn sub(&self, a: T, b: T) -> T;
    /// `c * a`.
    fn scale(&self, c: f32, a: T) -> T;
    /// `c * a + b` (fused where the instruction set has it).
    fn fma(&self, c: f32, a: T, b: T) -> T;
}

/// [`TransformOps`] on `f32`.
struct ScalarOps;

impl TransformOps<f32> for ScalarOps {
    #[inline(always)]
    fn add(&self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(&self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn scale(&self, c: f32, a: f32) -> f32 {
        c * a
    }
    #[inline(always)]
    fn fma(&self, c: f32, a: f32, b: f32) -> f32 {
        c * a + b
    }
}

/// [`TransformOps`] on AVX2 + FMA vectors; only made where the CPU has
/// them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2Ops(());

#[cfg(target_arch = "x86_64")]
impl TransformOps<std::arch::x86_64::__m256> for Avx2Ops {
    #[inline(always)]
    fn add(
        &self,
        a: std::arch::x86_64::__m256,
        b: std::arch::x86_64::__m256,
    ) -> std::arch::x86_64::__m256 {
        // SAFETY: an `Avx2Ops` exists only where AVX2 and FMA are present.
        unsafe { std::arch::x86_64::_mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(
        &self,
        a: std::arch::x86_64::__m256,
        b: std::arch::x86_64::__m256,
    ) -> std::arch::x86_64::__m256 {
        // SAFETY: as for `add`.
        unsafe { std::arch::x86_64::_mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn scale(&self, c: f32, a: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
        // SAFETY: as for `add`.
        unsafe { std::arch::x86_64::_mm256_mul_ps(std::arch::x86_64::_mm256_set1_ps(c), a) }
    }
    #[inline(always)]
    fn fma(
        &self,
        c: f32,
        a: std::arch::x86_64::__m256,
        b: std::arch::x86_64::__m256,
    ) -> std::arch::x86_64::__m256 {
        // SAFETY: as for `add`.
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(std::arch::x86_64::_mm256_set1_ps(c), a, b) }
    }
}

/// The F(2, 5) input transform of [`LANES`] tiles, portable: as
/// [`input_tile8_scalar`] with six input rows of six columns (row `r`'s
/// even columns at `2 r len`, odd at `(2 r + 1) len`; column `2c` of tile
/// `l` is `e[l + c]`, column `2c + 1` is `o[l + c]`).
fn input_tile8_scalar5(eo: &[f32], len: usize, v: &mut [f32], pstride: usize) {
    for l in 0..LANES {
        // z[r] = (d B) row r = Bᵀ applied to the row's six columns.
        let z: [[f32; 6]; 6] = std::array::from_fn(|r| {
            let e = &eo[2 * r * len + l..][..3];
            let o = &eo[(2 * r + 1) * len + l..][..3];
            input_rows5([e[0], o[0], e[1], o[1], e[2], o[2]], &ScalarOps)
        });
        for j in 0..6 {
            let col = input_rows5(std::array::from_fn(|r| z[r][j]), &ScalarOps);
            for (i, c) in col.into_iter().enumerate() {
                v[(i * 6 + j) * pstride + l] = c;
            }
        }
    }
}

/// The F(2, 5) input transform of one segment with AVX2, as
/// [`input_segment_avx2`]: six input rows, each tile reading six columns
/// (the even and odd columns at shifts of 0, 1 and 2 tiles).
///
/// # Safety
/// As [`input_segment_avx2`], for the 36 positions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn input_segment5_avx2(
    plane: &[f32],
    g: &ConvGeom,
    ty: usize,
    tx0: usize,
    n: usize,
    v: *mut f32,
    pstride: usize,
    dst: impl Fn(usize) -> usize,
) {
    use std::arch::x86_64::*;
    let ops = Avx2Ops(());
    // The 8 tiles of a group read 20 input columns from c0 = 2 (tx0+k) - p.
    let mut rows = GroupRows::<6, { 2 * LANES + 4 }>::new(plane, g, ty);
    for k in (0..n).step_by(LANES) {
        let src = rows.sources(2 * (tx0 + k) as isize - g.pw as isize);
        let v = v.add(dst(k));
        // Bᵀ d on the raw columns, all six rows at once, split into the
        // even and odd columns at shifts of 0, 1 and 2 tiles: `t[i]` holds
        // the six columns of row i of every tile. Then (Bᵀ d) B per row.
        // (Computing one row of Bᵀ d at a time from fresh loads, as the 3x3
        // transform does, took 6x the loads and spilled anyway.)
        let mut t = [[_mm256_setzero_ps(); 6]; 6];
        for shift in 0..3 {
            let rows = |off: usize| {
                let d: [__m256; 6] = std::array::from_fn(|r| _mm256_loadu_ps(src[r].add(off)));
                input_rows5(d, &ops)
            };
            let (lo, hi) = (rows(2 * shift), rows(2 * shift + 8));
            for (ti, (l, h)) in t.iter_mut().zip(lo.into_iter().zip(hi)) {
                let (e, o) = deinterleave_avx2(l, h);
                ti[2 * shift] = e;
                ti[2 * shift + 1] = o;
            }
        }
        for (i, ti) in t.into_iter().enumerate() {
            let out = input_rows5(ti, &ops);
            for (j, val) in out.into_iter().enumerate() {
                _mm256_storeu_ps(v.add((6 * i + j) * pstride), val);
            }
        }
    }
}

/// The F(2, 5) output transform of [`LANES`] tiles, portable (as
/// [`output_tile8_scalar`], positions `6 i + j`).
fn output_tile8_scalar5(m: &[f32], pstride: usize, bias: f32, out: &mut [[f32; 2 * LANES]; 2]) {
    for l in 0..LANES {
        let t = |p: usize| m[p * pstride + l];
        // s[j] = (Aᵀ M) column j, then Y = s A.
        let s: [[f32; 2]; 6] = std::array::from_fn(|j| {
            output_rows5(std::array::from_fn(|i| t(6 * i + j)), &ScalarOps)
        });
        for (r, o) in out.iter_mut().enumerate() {
            let y = output_rows5(std::array::from_fn(|j| s[j][r]), &ScalarOps);
            o[2 * l] = y[0] + bias;
            o[2 * l + 1] = y[1] + bias;
        }
    }
}

/// The F(2, 5) output transform of one segment with AVX2, as
/// [`output_segment_avx2`] for the 36 positions.
///
/// # Safety
/// As [`output_segment_avx2`], with `p < 36`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_segment5_avx2(
    m: *const f32,
    pstride: usize,
    bias: f32,
    cols: usize,
    row0: *mut f32,
    row1: Option<*mut f32>,
) {
    use std::arch::x86_64::*;
    let ops = Avx2Ops(());
    let b = _mm256_set1_ps(bias);
    for k in (0..cols).step_by(2 * LANES) {
        let t = |p: usize| _mm256_loadu_ps(m.add(p * pstride + k / 2));
        // Aᵀ M, column by column: s[j][r] is its row r, column j.
        let s: [[__m256; 2]; 6] =
            std::array::from_fn(|j| output_rows5(std::array::from_fn(|i| t(6 * i + j)), &ops));
        for (r, row) in [Some(row0), row1].into_iter().enumerate() {
            let Some(row) = row else { continue };
            // The two output columns of each tile.
            let y = output_rows5(std::array::from_fn(|j| s[j][r]), &ops);
            let (even, odd) = (_mm256_add_ps(y[0], b), _mm256_add_ps(y[1], b));
            let lo = _mm256_unpacklo_ps(even, odd);
            let hi = _mm256_unpackhi_ps(even, odd);
            let dst = row.add(k);
            if cols - k >= 2 * LANES {
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(LANES), hi);
            } else {
                let mut out = [0.0f32; 2 * LANES];
                _mm256_storeu_ps(out.as_mut_ptr(), lo);
                _mm256_storeu_ps(out.as_mut_ptr().add(LANES), hi);
                std::ptr::copy_nonoverlapping(out.as_ptr(), dst, cols - k);
            }
        }
    }
}

/// The `pos` products `M_p = U_p V_p` of one block: `m` is
/// `[p][co][tile]` (row stride `tpad`), of which rows `co < cout` are
/// computed.
#[allow(clippy::too_many_arguments)]
fn multiply(
    isa: Isa,
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
    cout: usize,
    plan: &Plan,
    tpad: usize,
    pos: usize,
) {
    let cin = plan.cin;
    let ups = plan.cout_pad * cin;
    let (vps, mps) = (plan.v_stride(tpad), plan.m_stride(tpad));
    assert!(u.len() >= pos * ups && v.len() >= pos * vps && m.len() >= pos * mps);
    for p in 0..pos {
        let (up, vp) = (&u[p * ups..][..ups], &v[p * vps..][..vps]);
        let mp = &mut m[p * mps..][..mps];
        for panel in 0..tpad / NR {
            let vb = &vp[panel * cin * NR..][..cin * NR];
            for cb in 0..cout.div_ceil(MR) {
                let rows = (cout - cb * MR).min(MR);
                let ua = &up[cb * cin * MR..][..cin * MR];
                let c = &mut mp[cb * MR * tpad + panel * NR..];
                micro_kernel(isa, rows, cin, ua, vb, c, tpad);
            }
        }
    }
}

/// `c[r * ldc + j] = Σ_i a[i * MR + r] * b[i * NR + j]` for `r < rows`,
/// `j < NR`, `i < k` (summed in order of `i`). `rows <= MR`.
#[inline]
fn micro_kernel(isa: Isa, rows: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize) {
    assert!((1..=MR).contains(&rows));
    assert!(a.len() >= k * MR && b.len() >= k * NR && c.len() >= (rows - 1) * ldc + NR);
    #[cfg(target_arch = "x86_64")]
    if isa.use_avx2_fma() {
        let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        // SAFETY: the CPU supports AVX2 and FMA; the asserts above bound
        // every read of `a`, `b` and write of `c`.
        unsafe {
            match rows {
                6 => micro_kernel_avx2::<6>(k, a, b, c, ldc),
                5 => micro_kernel_avx2::<5>(k, a, b, c, ldc),
                4 => micro_kernel_avx2::<4>(k, a, b, c, ldc),
                3 => micro_kernel_avx2::<3>(k, a, b, c, ldc),
                2 => micro_kernel_avx2::<2>(k, a, b, c, ldc),
                _ => micro_kernel_avx2::<1>(k, a, b, c, ldc),
            }
        }
        return;
    }
    let _ = isa;
    let mut acc = [[0.0f32; NR]; MR];
    for (ai, bi) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for (accr, &av) in acc.iter_mut().zip(ai).take(rows) {
            for (s, &bv) in accr.iter_mut().zip(bi) {
                *s += av * bv;
            }
        }
    }
    for (r, accr) in acc.iter().enumerate().take(rows) {
        c[r * ldc..][..NR].copy_from_slice(accr);
    }
}

/// The AVX2 + FMA [`micro_kernel`] for `R` rows: `2 R` YMM accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `R <= MR`; `a` must be valid for
/// reading `k * MR` floats, `b` for `k * NR`, and `c` for writing rows
/// `c + r * ldc .. + NR` for `r < R`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_kernel_avx2<const R: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for i in 0..k {
        let bp = b.add(i * NR);
        let bv = [_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8))];
        for (r, accr) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(i * MR + r));
            accr[0] = _mm256_fmadd_ps(av, bv[0], accr[0]);
            accr[1] = _mm256_fmadd_ps(av, bv[1], accr[1]);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        _mm256_storeu_ps(c.add(r * ldc), accr[0]);
        _mm256_storeu_ps(c.add(r * ldc + 8), accr[1]);
    }
}

/// Output transform `Y = Aᵀ M A + bias`, `Aᵀ = [[1, 1, 1, 0], [0, 1, -1,
/// -1]]`, of tiles `b0..b1` (`m`: `[p][co][tile]`, position stride
/// [`Plan::m_stride`]), written into the output image `y_img` (the in-image
/// pixels of the tiles only).
///
/// # Safety
/// `y_img` must be valid for writing `C_out` planes of `oh x ow`, and no
/// other thread may access the pixels of tiles `b0..b1` during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform<const K: usize>(
    isa: Isa,
    m: &[f32],
    epi: Epilogue,
    g: &ConvGeom,
    plan: &Plan,
    b0: usize,
    b1: usize,
    tpad: usize,
    y_img: *mut f32,
) {
    let (pstride, pos) = (plan.m_stride(tpad), positions(K));
    let m = &m[..pos * pstride];
    let (oh, ow) = (g.oh, g.ow);
    for (ty, tx0, tx1, off) in plan.rows(b0, b1) {
        // Rows 2 ty and (if inside) 2 ty + 1; the segment's output columns
        // inside the image.
        let two_rows = 2 * ty + 1 < oh;
        let ox0 = 2 * tx0;
        if ox0 >= ow {
            continue;
        }
        let cols = (2 * tx1).min(ow) - ox0;
        for co in 0..g.cout {
            let bv = epi.bias_of(co);
            let src =
                &m[co * tpad + off..][..(pos - 1) * pstride + cols.div_ceil(2 * LANES) * LANES];
            // Columns ox0..ox0+cols < ow of row 2 ty < oh and, if
            // `two_rows`, of row 2 ty + 1 < oh of plane co: inside `y_img`,
            // pixels of this block's tiles (contract).
            let row0 = y_img.add((co * oh + 2 * ty) * ow + ox0);
            let row1 = two_rows.then(|| row0.add(ow));
            #[cfg(target_arch = "x86_64")]
            if isa.use_avx2_fma() {
                // SAFETY: the CPU supports AVX2; `src` holds the groups'
                // `pos` vectors at multiples of `pstride` (slice length);
                // the rows as above.
                if K == 3 {
                    output_segment_avx2(src.as_ptr(), pstride, bv, cols, row0, row1);
                } else {
                    output_segment5_avx2(src.as_ptr(), pstride, bv, cols, row0, row1);
                }
                relu_rows(epi, cols, row0, row1);
                continue;
            }
            for k in (0..cols).step_by(2 * LANES) {
                let mut out = [[0.0f32; 2 * LANES]; 2];
                if K == 3 {
                    output_tile8_scalar(&src[k / 2..], pstride, bv, &mut out);
                } else {
                    output_tile8_scalar5(&src[k / 2..], pstride, bv, &mut out);
                }
                let c = (cols - k).min(2 * LANES);
                // SAFETY: columns k..k+c of the rows above (k + c <= cols).
                std::ptr::copy_nonoverlapping(out[0].as_ptr(), row0.add(k), c);
                if let Some(row1) = row1 {
                    std::ptr::copy_nonoverlapping(out[1].as_ptr(), row1.add(k), c);
                }
            }
            relu_rows(epi, cols, row0, row1);
        }
    }
}

/// The epilogue's ReLU on the `cols` pixels just written at `row0` (and
/// `row1`), still in L1.
///
/// # Safety
/// As for the writes of [`output_transform`] to those rows.
#[inline]
unsafe fn relu_rows(epi: Epilogue, cols: usize, row0: *mut f32, row1: Option<*mut f32>) {
    if epi.relu {
        for row in std::iter::once(row0).chain(row1) {
            for v in std::slice::from_raw_parts_mut(row, cols) {
                *v = v.max(0.0);
            }
        }
    }
}

/// The output transform of [`LANES`] tiles: `m` holds position `p` of the
/// tiles at `p * pstride`; `out[i]` receives output row `i` of the tiles
/// (two pixels per tile), plus `bias`.
fn output_tile8_scalar(m: &[f32], pstride: usize, bias: f32, out: &mut [[f32; 2 * LANES]; 2]) {
    for l in 0..LANES {
        let t = |p: usize| m[p * pstride + l];
        // s[i][j] = (Aᵀ M)[i][j], then Y = s A.
        let s: [[f32; 4]; 2] = [
            std::array::from_fn(|j| t(j) + t(4 + j) + t(8 + j)),
            std::array::from_fn(|j| t(4 + j) - t(8 + j) - t(12 + j)),
        ];
        for (o, si) in out.iter_mut().zip(&s) {
            o[2 * l] = si[0] + si[1] + si[2] + bias;
            o[2 * l + 1] = si[1] - si[2] - si[3] + bias;
        }
    }
}

/// The output transform of one segment of a tile row with AVX2 (lanes in
/// [`TILE_ORDER_AVX2`]): `m` holds position `p` of the segment's tiles at
/// `p * pstride`; writes `cols` pixels of output row 0 to `row0` and, if
/// given, of row 1 to `row1`.
///
/// # Safety
/// The CPU must support AVX2; `m` must be valid for reading
/// `ceil(cols / 16) * LANES` floats at each `p * pstride`, `p < 16`;
/// `row0` and `row1` for writing `cols` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_segment_avx2(
    m: *const f32,
    pstride: usize,
    bias: f32,
    cols: usize,
    row0: *mut f32,
    row1: Option<*mut f32>,
) {
    use std::arch::x86_64::*;
    let b = _mm256_set1_ps(bias);
    for k in (0..cols).step_by(2 * LANES) {
        let t = |p: usize| _mm256_loadu_ps(m.add(p * pstride + k / 2));
        for (i, row) in [Some(row0), row1].into_iter().enumerate() {
            let Some(row) = row else { continue };
            // Row i of Aᵀ M, then the two output columns of each tile.
            let s: [__m256; 4] = std::array::from_fn(|j| {
                if i == 0 {
                    _mm256_add_ps(_mm256_add_ps(t(j), t(4 + j)), t(8 + j))
                } else {
                    _mm256_sub_ps(_mm256_sub_ps(t(4 + j), t(8 + j)), t(12 + j))
                }
            });
            let even = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]), b);
            let odd = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[1], s[2]), s[3]), b);
            // Lanes hold tiles [0 1 4 5 | 2 3 6 7]: the in-lane interleave
            // gives pixels 0..8 ([t0 t1 | t2 t3]) and 8..16 in order.
            let lo = _mm256_unpacklo_ps(even, odd);
            let hi = _mm256_unpackhi_ps(even, odd);
            let dst = row.add(k);
            if cols - k >= 2 * LANES {
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(LANES), hi);
            } else {
                let mut out = [0.0f32; 2 * LANES];
                _mm256_storeu_ps(out.as_mut_ptr(), lo);
                _mm256_storeu_ps(out.as_mut_ptr().add(LANES), hi);
                std::ptr::copy_nonoverlapping(out.as_ptr(), dst, cols - k);
            }
        }
    }
}

/// Weight gradient of a convolution [`applies`] accepts, by Winograd
/// F(3x3, 2x2) (F(5x5, 2x2) for the 5x5 layers): `dW[co][ci]` is the
/// correlation of the padded input plane `ci` with the output gradient
/// plane `co`, and per 2x2 output tile that is a 3x3 correlation of the
/// tile's 4x4 input block `d` with its 2x2 gradient block `e`:
/// `Gᵀ [(A e Aᵀ) ⊙ (Bᵀ d B)] G`, with the forward's `Bᵀ` (so
/// [`input_transform`] serves unchanged), `A` the forward's `Aᵀ`
/// transposed and `G` the forward's (the forward's bilinear form read with
/// `g` and `y` exchanging roles). Summed over tiles in the transformed
/// domain, the 16 positions are 16 products `[C_out x tiles] x [tiles x
/// C_in]`, then one `Gᵀ M G` per channel pair: 16 multiplies per tile and
/// pair instead of 36 (5x5: 36 instead of 100). `dw` is fully overwritten.
pub(super) fn backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    backward_weight_isa(Isa::detect(), x, dy, g, dw)
}

/// Output channels per vector block of the gradient products (two vectors).
const GRAD_CO: usize = 2 * LANES;

/// [`backward_weight`] with a chosen instruction-set level (for the tests).
pub(super) fn backward_weight_isa(isa: Isa, x: &[f32], dy: &[f32], g: &ConvGeom, dw: &mut [f32]) {
    assert!(g.kh == g.kw && g.sh == 1 && g.sw == 1 && g.groups == 1 && g.ph == g.pw);
    assert!(x.len() == g.x_len() && dy.len() == g.y_len() && dw.len() == g.w_len());
    match g.kh {
        3 => backward_weight_k::<3>(isa, x, dy, g, dw),
        5 => backward_weight_k::<5>(isa, x, dy, g, dw),
        k => panic!("no Winograd weight gradient for {k}x{k} kernels"),
    }
}

/// [`backward_weight_isa`] for `K x K` kernels, F(KxK, 2x2).
fn backward_weight_k<const K: usize>(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    g: &ConvGeom,
    dw: &mut [f32],
) {
    let (pos, side) = (positions(K), K + 1);
    let plan = Plan::new(g);
    let (cin, cout) = (g.cin, g.cout);
    let cop = cout.next_multiple_of(GRAD_CO);
    let (in_plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    // The AVX2 input transform leaves the tiles of each vector in
    // TILE_ORDER_AVX2; the gradient transform must put them in the same.
    let permuted = cfg!(target_arch = "x86_64") && isa.use_avx2_fma();
    let tasks: Vec<(usize, usize)> = (0..g.n)
        .flat_map(|n| (0..plan.blocks).map(move |bi| (n, bi)))
        .collect();
    // M[p][ci][co], co padded to `cop`.
    let m = super::deterministic_sum(&tasks, pos * cin * cop, |acc, &(n, bi)| {
        let (b0, b1) = plan.range(bi);
        let tpad = (b1 - b0).next_multiple_of(NR);
        let v_len = pos * plan.v_stride(tpad);
        let u_len = pos * (tpad * cop + SKEW);
        let eo_len = eo_len::<K>(&plan);
        // A tile row segment has at most `tpad` tiles (2 columns each).
        let stage_len = 4 * tpad * cop;
        with_scratch(v_len + u_len + eo_len + stage_len, |s| {
            let (v, s) = s.split_at_mut(v_len);
            let (u, s) = s.split_at_mut(u_len);
            let (eo, stage) = s.split_at_mut(eo_len);
            let x_img = &x[n * cin * in_plane..][..cin * in_plane];
            input_transform::<K>(isa, x_img, g, &plan, b0, b1, tpad, v, eo);
            let dy_img = &dy[n * cout * out_plane..][..cout * out_plane];
            gradient_transform::<K>(isa, dy_img, g, &plan, b0, b1, tpad, cop, permuted, u, stage);
            gradient_products(isa, u, v, plan.v_stride(tpad), cop, cin, tpad, pos, acc);
        })
    });
    // dW = Gᵀ M G per channel pair, in f64 (it is small).
    let gt: [[f64; 6]; K] = std::array::from_fn(|k| {
        std::array::from_fn(|i| if i < side { g_entry::<K>(i, k) } else { 0.0 })
    });
    for ci in 0..cin {
        for co in 0..cout {
            let mut mm = [[0.0f64; 6]; 6];
            for (i, row) in mm.iter_mut().enumerate().take(side) {
                for (j, v) in row.iter_mut().enumerate().take(side) {
                    *v = f64::from(m[((i * side + j) * cin + ci) * cop + co]);
                }
            }
            for (ky, gk) in gt.iter().enumerate() {
                // Row ky of Gᵀ M, then its products with G's columns.
                let mut row = [0.0f64; 6];
                for (gi, mi) in gk.iter().zip(&mm) {
                    for (r, v) in row.iter_mut().zip(mi) {
                        *r += gi * v;
                    }
                }
                for (kx, gx) in gt.iter().enumerate() {
                    let v: f64 = row.iter().zip(gx).map(|(a, b)| a * b).sum();
                    dw[((co * cin + ci) * K + ky) * K + kx] = v as f32;
                }
            }
        }
    }
}

/// The transformed output gradient `A e Aᵀ` of tiles `b0..b1`, with
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]` and `e` the tile's 2x2 block of
/// `dy_img` (zero outside the `oh x ow` output), into `u[p][t][co]` (`t`:
/// the tile's place in the block's `V`, `co` padded to `cop`, position
/// stride `tpad · cop + SKEW`); padding tiles and channels are zero.
/// `permuted`: tiles placed in [`TILE_ORDER_AVX2`] within each vector, as
/// the AVX2 input transform leaves `V`. `stage` holds a tile row's two
/// gradient rows channels-last, so that the transform runs on vectors of
/// output channels.
#[allow(clippy::too_many_arguments)]
fn gradient_transform<const K: usize>(
    isa: Isa,
    dy_img: &[f32],
    g: &ConvGeom,
    plan: &Plan,
    b0: usize,
    b1: usize,
    tpad: usize,
    cop: usize,
    permuted: bool,
    u: &mut [f32],
    stage: &mut [f32],
) {
    let (cout, oh, ow) = (g.cout, g.oh, g.ow);
    let pstride = tpad * cop + SKEW;
    for p in 0..positions(K) {
        u[p * pstride..][(b1 - b0) * cop..tpad * cop].fill(0.0);
    }
    for (ty, tx0, tx1, off) in plan.rows(b0, b1) {
        let cols = 2 * (tx1 - tx0);
        let stage = &mut stage[..2 * cols * cop];
        stage.fill(0.0);
        for r in 0..2 {
            let y = 2 * ty + r;
            if y >= oh {
                continue;
            }
            let (x0, x1) = ((2 * tx0).min(ow), (2 * tx1).min(ow));
            for co in 0..cout {
                let src = &dy_img[(co * oh + y) * ow..][x0..x1];
                for (c, v) in src.iter().enumerate() {
                    stage[(r * cols + c) * cop + co] = *v;
                }
            }
        }
        for k in 0..tx1 - tx0 {
            let b = off + k;
            let t = if permuted {
                b - b % LANES + TILE_ORDER_AVX2[b % LANES]
            } else {
                b
            };
            let at = |r: usize, c: usize| (r * cols + 2 * k + c) * cop;
            let corners = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
            #[cfg(target_arch = "x86_64")]
            if isa.use_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA.
                unsafe { gradient_tile_avx2::<K>(stage, corners, cop, u, t * cop, pstride) };
                continue;
            }
            let _ = isa;
            gradient_tile::<K>(stage, corners, cop, u, t * cop, pstride);
        }
    }
}

/// [`gradient_tile`] with AVX2 + FMA vectors of eight output channels.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gradient_tile_avx2<const K: usize>(
    stage: &[f32],
    corners: [usize; 4],
    cop: usize,
    u: &mut [f32],
    at: usize,
    pstride: usize,
) {
    use std::arch::x86_64::*;
    let ops = Avx2Ops(());
    for co in (0..cop).step_by(LANES) {
        let e = corners.map(|c| _mm256_loadu_ps(stage[c + co..][..LANES].as_ptr()));
        gradient_tile_values::<K, _>(e, &ops, |p, v| {
            _mm256_storeu_ps(u[p * pstride + at + co..][..LANES].as_mut_ptr(), v)
        });
    }
}

/// One tile of [`gradient_transform`] for all `cop` channels, portable:
/// `e00, e01, e10, e11` at `stage[corners[..]..]`, the `(K + 1)²` values
/// of `A e Aᵀ` to `u[p * pstride + at..]`.
fn gradient_tile<const K: usize>(
    stage: &[f32],
    corners: [usize; 4],
    cop: usize,
    u: &mut [f32],
    at: usize,
    pstride: usize,
) {
    for co in 0..cop {
        let e = corners.map(|c| stage[c + co]);
        gradient_tile_values::<K, _>(e, &ScalarOps, |p, v| u[p * pstride + at + co] = v);
    }
}

/// `A e Aᵀ` of one 2x2 gradient block `e = [e00, e01, e10, e11]` (values or
/// vectors), position by position through `put(p, value)`.
#[inline(always)]
fn gradient_tile_values<const K: usize, T: Copy>(
    e: [T; 4],
    ops: &impl TransformOps<T>,
    mut put: impl FnMut(usize, T),
) {
    let side = K + 1;
    // The two columns of A e, then each row of A e times Aᵀ.
    let c0 = gradient_rows::<K, T>(e[0], e[2], ops);
    let c1 = gradient_rows::<K, T>(e[1], e[3], ops);
    for i in 0..side {
        let row = gradient_rows::<K, T>(c0[i], c1[i], ops);
        for (j, v) in row.into_iter().take(side).enumerate() {
            put(i * side + j, v);
        }
    }
}

/// `A (e0, e1)` for F(2, K), the first `K + 1` entries: F(2, 3)'s
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`, F(2, 5)'s
/// `[[1, 0], [1, 1], [1, -1], [1, 2], [1, -2], [0, 1]]` (the transposes of
/// the output transforms' `Aᵀ`; every entry exact).
#[inline(always)]
fn gradient_rows<const K: usize, T: Copy>(e0: T, e1: T, ops: &impl TransformOps<T>) -> [T; 6] {
    let (s, d) = (ops.add(e0, e1), ops.sub(e0, e1));
    if K == 3 {
        let m = ops.scale(-1.0, e1);
        [e0, s, d, m, m, m]
    } else {
        [e0, s, d, ops.fma(2.0, e1, e0), ops.fma(-2.0, e1, e0), e1]
    }
}

/// `acc[p][ci][co] += Σ_t u[p][t][co] · V[p][t][ci]` over the block's
/// `tpad` tiles, for the `pos` positions (`V` in [`input_transform`]'s
/// `[p][panel][ci][lane]` layout).
#[allow(clippy::too_many_arguments)]
fn gradient_products(
    isa: Isa,
    u: &[f32],
    v: &[f32],
    v_pstride: usize,
    cop: usize,
    cin: usize,
    tpad: usize,
    pos: usize,
    acc: &mut [f32],
) {
    let panels = tpad / NR;
    let u_pstride = tpad * cop + SKEW;
    assert!(cop % GRAD_CO == 0 && u.len() >= pos * u_pstride);
    assert!(v.len() >= (pos - 1) * v_pstride + panels * cin * NR && acc.len() >= pos * cin * cop);
    for p in 0..pos {
        let (up, vp) = (&u[p * u_pstride..][..tpad * cop], &v[p * v_pstride..]);
        let ap = &mut acc[p * cin * cop..][..cin * cop];
        #[cfg(target_arch = "x86_64")]
        if isa.use_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA; the asserts bound the
            // reads (see `gradient_position_avx2`).
            unsafe { gradient_position_avx2(up, vp, cop, cin, tpad, ap) };
            continue;
        }
        let _ = isa;
        for ci in 0..cin {
            let arow = &mut ap[ci * cop..][..cop];
            for t in 0..tpad {
                let vt = vp[(t / NR * cin + ci) * NR + t % NR];
                for (a, uv) in arow.iter_mut().zip(&up[t * cop..][..cop]) {
                    *a += uv * vt;
                }
            }
        }
    }
}

/// Input channels per register block of [`gradient_position_avx2`]: 6 x 2
/// accumulator vectors, as in the forward products.
#[cfg(target_arch = "x86_64")]
const GRAD_CI: usize = 6;

/// One position of [`gradient_products`], in blocks of [`GRAD_CO`] output
/// x [`GRAD_CI`] input channels: per tile, two vectors of `u` and six
/// broadcast `V` values, twelve FMAs.
///
/// # Safety
/// AVX2 and FMA; `up` holds `tpad x cop` floats, `vp` the `tpad / NR`
/// panels of `cin x NR`, `ap` `cin x cop`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gradient_position_avx2(
    up: &[f32],
    vp: &[f32],
    cop: usize,
    cin: usize,
    tpad: usize,
    ap: &mut [f32],
) {
    for co0 in (0..cop).step_by(GRAD_CO) {
        for ci0 in (0..cin).step_by(GRAD_CI) {
            macro_rules! run {
                ($($s:literal)*) => {
                    match (cin - ci0).min(GRAD_CI) {
                        $($s => gradient_block::<$s>(up, vp, cop, cin, tpad, co0, ci0, ap),)*
                        _ => unreachable!("1 <= s <= GRAD_CI"),
                    }
                };
            }
            run!(1 2 3 4 5 6);
        }
    }
}

/// Channels `co0..co0 + GRAD_CO` x `ci0..ci0 + S`.
///
/// # Safety
/// As [`gradient_position_avx2`]; `co0 + GRAD_CO <= cop`, `ci0 + S <= cin`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gradient_block<const S: usize>(
    up: &[f32],
    vp: &[f32],
    cop: usize,
    cin: usize,
    tpad: usize,
    co0: usize,
    ci0: usize,
    ap: &mut [f32],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; S];
    let (u0, v0) = (up.as_ptr().add(co0), vp.as_ptr());
    for panel in 0..tpad / NR {
        let vb = v0.add((panel * cin + ci0) * NR);
        for l in 0..NR {
            let t = panel * NR + l;
            let ua = _mm256_loadu_ps(u0.add(t * cop));
            let ub = _mm256_loadu_ps(u0.add(t * cop + LANES));
            for (j, a) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*vb.add(j * NR + l));
                a[0] = _mm256_fmadd_ps(ua, b, a[0]);
                a[1] = _mm256_fmadd_ps(ub, b, a[1]);
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        let dst = ap.as_mut_ptr().add((ci0 + j) * cop + co0);
        _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), a[0]));
        _mm256_storeu_ps(
            dst.add(LANES),
            _mm256_add_ps(_mm256_loadu_ps(dst.add(LANES)), a[1]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{im2col_backward_input, im2col_forward};
    use super::*;
    use rand::{Rng, SeedableRng};

    fn geom(n: usize, cin: usize, cout: usize, h: usize, w: usize, p: usize) -> ConvGeom {
        geom_k(3, n, cin, cout, h, w, p)
    }

    /// A `k x k` stride-1 convolution.
    fn geom_k(
        k: usize,
        n: usize,
        cin: usize,
        cout: usize,
        h: usize,
        w: usize,
        p: usize,
    ) -> ConvGeom {
        ConvGeom {
            n,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            sh: 1,
            sw: 1,
            ph: p,
            pw: p,
            groups: 1,
            oh: h + 2 * p + 1 - k,
            ow: w + 2 * p + 1 - k,
        }
    }

    fn uniform(len: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// `max |a - b| / max |b|`.
    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
        let d = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        d / scale
    }

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        if Isa::detect() == Isa::Avx2Fma {
            v.push(Isa::Avx2Fma);
        }
        v
    }

    /// All shapes of the tests for `k x k` kernels: every size 1..=7 (both
    /// paddings, where the output is not empty), then wider images with
    /// several blocks per tile row, several tile rows per block, odd sizes
    /// and many channels.
    fn shapes(k: usize) -> Vec<(usize, usize, usize, usize, usize, usize)> {
        let chans = [
            (1, 1),
            (3, 5),
            (16, 16),
            (17, 33),
            (64, 64),
            (130, 7),
            (5, 130),
            (33, 48),
            (2, 64),
        ];
        let mut v = Vec::new();
        let mut i = 0;
        for p in [0, k / 2] {
            for h in 1..=7 {
                for w in 1..=7 {
                    if h + 2 * p >= k && w + 2 * p >= k {
                        let (cin, cout) = chans[i % chans.len()];
                        i += 1;
                        v.push((2, cin, cout, h, w, p));
                    }
                }
            }
        }
        v.extend([
            (1, 64, 64, 37, 53, 1),
            (3, 32, 48, 20, 130, 0),
            (2, 130, 130, 9, 11, 1),
            (1, 16, 24, 100, 3, 1),
            (2, 64, 32, 6, 300, 1),
            (1, 192, 64, 19, 97, 1),
            (2, 24, 3, 33, 31, 0),
            // SRCNN's middle layer on a training batch (valid, 25² -> 21²).
            (4, 64, 32, 25, 25, 0),
        ]);
        v
    }

    /// The geometries of [`shapes`] for 3x3 (index 0) and 5x5 (index 1)
    /// kernels.
    fn all_geoms() -> impl Iterator<Item = (usize, ConvGeom)> {
        [3, 5].into_iter().enumerate().flat_map(|(ki, k)| {
            shapes(k)
                .into_iter()
                .map(move |(n, cin, cout, h, w, p)| (ki, geom_k(k, n, cin, cout, h, w, p)))
        })
    }

    #[test]
    fn forward_matches_im2col() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut worst = [[0.0f32; 2]; 2];
        for (ki, g) in all_geoms() {
            let x = uniform(g.x_len(), &mut rng);
            let wt = uniform(g.w_len(), &mut rng);
            let bias = uniform(g.cout, &mut rng);
            for (b, relu) in [
                (None, false),
                (Some(&bias[..]), false),
                (Some(&bias[..]), true),
            ] {
                let epi = Epilogue { bias: b, relu };
                let mut want = vec![0.0; g.y_len()];
                im2col_forward(&x, &wt, epi, &g, &mut want);
                if relu {
                    // The ReLU acts (tiny outputs may all be positive).
                    assert!(want.iter().all(|&v| v >= 0.0), "{g:?}");
                    assert!(g.y_len() < 64 || want.contains(&0.0), "{g:?}");
                }
                for (i, isa) in isas().into_iter().enumerate() {
                    let mut got = vec![f32::NAN; g.y_len()];
                    forward_isa(isa, &x, &wt, epi, &g, &mut got);
                    let e = rel_err(&got, &want);
                    worst[ki][i] = worst[ki][i].max(e);
                    assert!(e <= 1e-4, "{isa:?} rel err {e} for {g:?}");
                }
            }
        }
        println!("winograd forward: max |err| / max |y| = {worst:?} ([3x3, 5x5] x [scalar, AVX2])");
    }

    #[test]
    fn backward_weight_matches_im2col() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let mut worst = [[0.0f32; 2]; 2];
        for (ki, g) in all_geoms() {
            let x = uniform(g.x_len(), &mut rng);
            let dy = uniform(g.y_len(), &mut rng);
            let mut want = vec![0.0; g.w_len()];
            super::super::im2col_backward_weight(&x, &dy, &g, &mut want);
            for (i, isa) in isas().into_iter().enumerate() {
                let mut got = vec![f32::NAN; g.w_len()];
                backward_weight_isa(isa, &x, &dy, &g, &mut got);
                let e = rel_err(&got, &want);
                worst[ki][i] = worst[ki][i].max(e);
                assert!(e <= 1e-4, "{isa:?} rel err {e} for {g:?}");
            }
        }
        println!(
            "winograd weight gradient: max |err| / max |dw| = {worst:?} ([3x3, 5x5] x [scalar, AVX2])"
        );
    }

    #[test]
    fn backward_input_matches_im2col() {
        // Padding 0 here means a padding-(k - 1) ("full") Winograd
        // convolution.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for (k, n, cin, cout, h, w, p) in [
            (3, 2, 16, 32, 9, 13, 1),
            (3, 1, 64, 64, 30, 41, 1),
            (3, 2, 48, 16, 11, 16, 0),
            (3, 1, 20, 20, 10, 16, 0),
            (5, 2, 16, 32, 9, 13, 2),
            (5, 4, 64, 32, 25, 25, 0),
            (5, 1, 20, 24, 30, 33, 1),
        ] {
            let g = geom_k(k, n, cin, cout, h, w, p);
            let gt = g.transposed().expect("square, stride 1");
            assert!(applies(&gt), "{gt:?}");
            let dy = uniform(g.y_len(), &mut rng);
            let wt = uniform(g.w_len(), &mut rng);
            let (mut got, mut want) = (vec![f32::NAN; g.x_len()], vec![0.0; g.x_len()]);
            super::super::conv2d_backward_input(&dy, &wt, &g, &mut got);
            im2col_backward_input(&dy, &wt, &g, &mut want);
            let e = rel_err(&got, &want);
            assert!(e <= 1e-4, "rel err {e} for {g:?}");
        }
    }

    #[test]
    fn result_does_not_depend_on_thread_count() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let g = geom(3, 40, 36, 23, 75, 1);
        let x = uniform(g.x_len(), &mut rng);
        let wt = uniform(g.w_len(), &mut rng);
        let bias = uniform(g.cout, &mut rng);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut y = vec![0.0; g.y_len()];
            pool.install(|| forward(&x, &wt, Epilogue::bias(Some(&bias)), &g, &mut y));
            y
        };
        let one = run(1);
        for t in [2, 3, 7] {
            assert!(run(t) == one, "{t} threads differ from 1");
        }
    }
}
