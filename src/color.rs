//! RGB ↔ YCbCr (ITU-R BT.601, studio range) exactly as MATLAB's `rgb2ycbcr` /
//! `ycbcr2rgb` compute it. The only copy of these constants in srkit.
//!
//! For RGB in `[0, 1]`, MATLAB (and BasicSR's `rgb2ycbcr`, which copies it)
//! computes, in units of 0..255:
//!
//! ```text
//! Y  =  16 + 65.481 R + 128.553 G +  24.966 B      (16 ..= 235)
//! Cb = 128 - 37.797 R -  74.203 G + 112.000 B      (16 ..= 240)
//! Cr = 128 + 112.000 R - 93.786 G -  18.214 B      (16 ..= 240)
//! ```
//!
//! and `ycbcr2rgb` applies the exact inverse of that 3x3 matrix
//! (`rgb = 255 * inv(T) * (ycbcr - offset / 255)` for double input).
//! srkit keeps images in a nominal `[0, 1]` range, so [`rgb_to_ycbcr`] stores
//! the three planes divided by 255 (what MATLAB returns for `double` input),
//! and [`luma_255`] returns the unrounded Y plane in 0..255 units, as the
//! super-resolution papers' evaluation code (MATLAB, BasicSR's
//! `calculate_psnr(..., test_y_channel=True)`) measures it.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::{BitDepth, Image};
use crate::kernels::{map, map3, Isa};

/// MATLAB's `rgb2ycbcr` matrix `T` (rows Y, Cb, Cr; columns R, G, B) for RGB
/// in `[0, 1]` and YCbCr in 0..255 units.
const T: [[f64; 3]; 3] = [
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
];

/// MATLAB's `rgb2ycbcr` offset (Y, Cb, Cr) in 0..255 units.
const OFFSET: [f64; 3] = [16.0, 128.0, 128.0];

/// How a single-channel (gray) image is turned into a Y plane by [`luma_255`].
///
/// Published SR tables disagree on grayscale test images such as Set14's
/// `bridge.png`; the two behaviours found in reference code are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GrayMode {
    /// The gray values themselves are Y (`Y = 255 v`). This is what the MATLAB
    /// evaluation scripts behind published tables do (`rgb2ycbcr` is skipped
    /// for 2-D images) and what BasicSR's `to_y_channel` does for 1-channel
    /// input.
    #[default]
    Native,
    /// The gray image is first expanded to `R = G = B = v` and converted, so
    /// `Y = 16 + 219 v`: the behaviour of OpenCV-based code that reads every
    /// file with `cv2.imread(..., IMREAD_COLOR)`.
    ExpandToRgb,
}

/// `f64::round` (half away from zero) without the libm call that baseline
/// x86-64 makes for it, in branch-free arithmetic the compiler vectorises;
/// identical results, NaN and huge values included.
#[inline(always)]
fn round_half_away(s: f64) -> f64 {
    /// 2^52: from here on every `f64` is an integer, and adding it to a
    /// smaller non-negative value rounds that value to an integer (ties to
    /// even, in the default rounding mode).
    const EXACT: f64 = 4_503_599_627_370_496.0;
    let t = s.abs();
    let even = (t + EXACT) - EXACT;
    // A tie rounded down to even goes up instead (half away from zero).
    let r = if even - t == -0.5 { even + 1.0 } else { even };
    let r = if t < EXACT { r } else { t };
    r.copysign(s)
}

/// Writes `out.len()` samples of row `row`, from column `x0` on, of the luma
/// plane [`luma_255`] returns.
///
/// # Panics
/// If the span is outside the image (callers validate their crops).
pub(crate) fn luma_row_255(img: &Image, gray: GrayMode, row: usize, x0: usize, out: &mut [f64]) {
    // Dispatch on the depth once, so the per-pixel loops are branch-free.
    if img.depth() == BitDepth::U8 {
        luma_row::<true>(img, gray, row, x0, out);
    } else {
        luma_row::<false>(img, gray, row, x0, out);
    }
}

/// A sample in 0..255 units as the evaluation code reads it: 8-bit images
/// (`ROUND`) are snapped to their integer grid (`round(255 v)`, i.e. the
/// `uint8` value the file held); 16-bit and float images are scaled without
/// rounding (`255 v`).
#[inline(always)]
fn scaled<const ROUND: bool>(v: f32) -> f64 {
    let s = f64::from(v) * 255.0;
    if ROUND {
        round_half_away(s)
    } else {
        s
    }
}

fn luma_row<const ROUND: bool>(
    img: &Image,
    gray: GrayMode,
    row: usize,
    x0: usize,
    out: &mut [f64],
) {
    // The AVX2 instances give the same bits (no FMA, no reassociation) at
    // twice the width; this conversion was a fifth of SSIM's time.
    let isa = Isa::detect();
    let start = row * img.width() + x0;
    let n = out.len();
    if img.color_channels() == 3 {
        let r = &img.plane(0)[start..start + n];
        let g = &img.plane(1)[start..start + n];
        let b = &img.plane(2)[start..start + n];
        let t = &T[0];
        let luma = |r: f32, g: f32, b: f32| {
            let (r, g, b) = (scaled::<ROUND>(r), scaled::<ROUND>(g), scaled::<ROUND>(b));
            OFFSET[0] + (t[0] * r + t[1] * g + t[2] * b) / 255.0
        };
        map3(isa, r, g, b, out, &luma);
        return;
    }
    let p = &img.plane(0)[start..start + n];
    match gray {
        GrayMode::Native => map(isa, p, out, &scaled::<ROUND>),
        GrayMode::ExpandToRgb => {
            let k = T[0][0] + T[0][1] + T[0][2];
            map(isa, p, out, &|v: f32| {
                OFFSET[0] + k * scaled::<ROUND>(v) / 255.0
            });
        }
    }
}

/// Writes `out.len()` samples of row `row`, from column `x0` on, of colour
/// channel `c` in 0..255 units (8-bit images rounded to their integer
/// values, others unrounded, as [`luma_255`] reads them).
pub(crate) fn channel_row_255(img: &Image, c: usize, row: usize, x0: usize, out: &mut [f64]) {
    let start = row * img.width() + x0;
    let src = &img.plane(c)[start..start + out.len()];
    if img.depth() == BitDepth::U8 {
        map(Isa::detect(), src, out, &scaled::<true>);
    } else {
        map(Isa::detect(), src, out, &scaled::<false>);
    }
}

/// The inverse of [`T`] (Cramer's rule, in `f64`), as MATLAB's `ycbcr2rgb`
/// computes `T^-1`.
fn t_inverse() -> [[f64; 3]; 3] {
    let m = &T;
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let det = m[0][0] * cof(1, 2, 1, 2) - m[0][1] * cof(1, 2, 0, 2) + m[0][2] * cof(1, 2, 0, 1);
    // inv[i][j] = adjugate / det; adjugate[i][j] = cofactor[j][i].
    [
        [
            cof(1, 2, 1, 2) / det,
            -cof(0, 2, 1, 2) / det,
            cof(0, 1, 1, 2) / det,
        ],
        [
            -cof(1, 2, 0, 2) / det,
            cof(0, 2, 0, 2) / det,
            -cof(0, 1, 0, 2) / det,
        ],
        [
            cof(1, 2, 0, 1) / det,
            -cof(0, 2, 0, 1) / det,
            cof(0, 1, 0, 1) / det,
        ],
    ]
}

fn require_rgb(img: &Image, op: &'static str) -> Result<()> {
    if img.color_channels() != 3 {
        return Err(Error::invalid(
            "channels",
            format!(
                "{op} needs a 3- or 4-channel image, got {}",
                img.shape_string()
            ),
        ));
    }
    Ok(())
}

/// Applies `post(row, M * pre(rgb))` per pixel to the three colour planes;
/// alpha is copied. The result has [`BitDepth::F32`].
fn transform3(
    img: &Image,
    m: &[[f64; 3]; 3],
    pre: impl Fn([f64; 3]) -> [f64; 3],
    post: impl Fn(usize, f64) -> f64,
) -> Result<Image> {
    let n = img.pixel_count();
    let mut data = img.data().to_vec();
    let (color, _) = data.split_at_mut(3 * n);
    let (p0, rest) = color.split_at_mut(n);
    let (p1, p2) = rest.split_at_mut(n);
    for ((a, b), c) in p0.iter_mut().zip(p1.iter_mut()).zip(p2.iter_mut()) {
        let v = pre([f64::from(*a), f64::from(*b), f64::from(*c)]);
        let o = |r: usize| post(r, m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2]);
        *a = o(0) as f32;
        *b = o(1) as f32;
        *c = o(2) as f32;
    }
    Image::from_planar(
        img.width(),
        img.height(),
        img.channels(),
        BitDepth::F32,
        data,
    )
}

/// Converts an RGB(A) image in `[0, 1]` to YCbCr as MATLAB's `rgb2ycbcr` does
/// for `double` input.
///
/// The output planes are Y, Cb, Cr divided by 255 (so Y lies in
/// `[16/255, 235/255]`, Cb and Cr in `[16/255, 240/255]`), unrounded, with
/// [`BitDepth::F32`]; an alpha plane is copied unchanged. Samples are used as
/// stored (no snapping to the source bit depth).
///
/// Fails with [`Error::InvalidParameter`] unless the image has 3 or 4
/// channels.
pub fn rgb_to_ycbcr(img: &Image) -> Result<Image> {
    require_rgb(img, "rgb_to_ycbcr")?;
    transform3(img, &T, |v| v, |r, s| (s + OFFSET[r]) / 255.0)
}

/// Converts a YCbCr(A) image (planes Y, Cb, Cr in srkit's `[0, 1]` scale, as
/// produced by [`rgb_to_ycbcr`]) back to RGB in `[0, 1]`, as MATLAB's
/// `ycbcr2rgb` does for `double` input: `rgb = 255 * inv(T) * (ycbcr -
/// offset / 255)`.
///
/// The result is not clipped (out-of-gamut YCbCr gives values outside
/// `[0, 1]`, as in MATLAB) and has [`BitDepth::F32`]; alpha is copied.
///
/// Fails with [`Error::InvalidParameter`] unless the image has 3 or 4
/// channels.
pub fn ycbcr_to_rgb(img: &Image) -> Result<Image> {
    require_rgb(img, "ycbcr_to_rgb")?;
    let inv = t_inverse();
    transform3(
        img,
        &inv,
        |v| {
            [
                v[0] * 255.0 - OFFSET[0],
                v[1] * 255.0 - OFFSET[1],
                v[2] * 255.0 - OFFSET[2],
            ]
        },
        |_, s| s,
    )
}

/// The luma (Y) plane in 0..255 units (`f64`, unrounded, row-major), alpha
/// ignored — the plane SR papers measure PSNR/SSIM on.
///
/// Samples are first read as the evaluation code reads them: 8-bit images as
/// their integer values `round(255 v)`, 16-bit and float images as `255 v`
/// without rounding. For RGB(A), `Y = 16 + (65.481 R + 128.553 G + 24.966 B)
/// / 255` with R, G, B in 0..255 (MATLAB `rgb2ycbcr`, BasicSR
/// `rgb2ycbcr(..., y_only=True)`). For gray(+alpha) images, `gray` chooses
/// between the gray values themselves ([`GrayMode::Native`]) and
/// `16 + 219 v` ([`GrayMode::ExpandToRgb`]).
pub fn luma_255(img: &Image, gray: GrayMode) -> Result<Vec<f64>> {
    let w = img.width();
    let mut y = vec![0.0; img.pixel_count()];
    y.par_chunks_mut(w)
        .enumerate()
        .for_each(|(row, out)| luma_row_255(img, gray, row, 0, out));
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(pixels: &[[f32; 3]], depth: BitDepth) -> Image {
        let planes: Vec<Vec<f32>> = (0..3)
            .map(|c| pixels.iter().map(|p| p[c]).collect())
            .collect();
        let refs: Vec<&[f32]> = planes.iter().map(|p| p.as_slice()).collect();
        Image::from_planes(pixels.len(), 1, depth, &refs).unwrap()
    }

    #[test]
    fn known_values_match_matlab() {
        // MATLAB: rgb2ycbcr([0 0 0; 1 1 1; 1 0 0; 0 1 0; 0 0 1]) * 255
        let img = rgb(
            &[
                [0.0, 0.0, 0.0],
                [1.0, 1.0, 1.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 1.0],
            ],
            BitDepth::F32,
        );
        let y = rgb_to_ycbcr(&img).unwrap();
        let expect = [
            [16.0, 128.0, 128.0],
            [235.0, 128.0, 128.0],
            [81.481, 90.203, 240.0],
            [144.553, 53.797, 34.214],
            [40.966, 240.0, 109.786],
        ];
        for (i, e) in expect.iter().enumerate() {
            for (c, &want) in e.iter().enumerate() {
                let got = f64::from(y.get(i, 0, c)) * 255.0;
                assert!((got - want).abs() < 1e-4, "pixel {i} c{c}: {got} vs {want}");
            }
        }
        assert_eq!(y.depth(), BitDepth::F32);
    }

    #[test]
    fn round_trip_and_alpha() {
        let n = 50;
        let mut data = Vec::new();
        for c in 0..4 {
            data.extend((0..n).map(|i| ((i * 37 + c * 11) % 256) as f32 / 255.0));
        }
        let img = Image::from_planar(10, 5, 4, BitDepth::U8, data).unwrap();
        let back = ycbcr_to_rgb(&rgb_to_ycbcr(&img).unwrap()).unwrap();
        for (a, b) in img.data().iter().zip(back.data()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(back.plane(3), img.plane(3));
        let inv = t_inverse();
        for (i, row) in inv.iter().enumerate() {
            for j in 0..3 {
                let s: f64 = row.iter().zip(&T).map(|(a, t)| a * t[j]).sum();
                assert!((s - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn luma_matches_formula_and_gray_modes() {
        let img = rgb(&[[10.0 / 255.0, 200.0 / 255.0, 30.0 / 255.0]], BitDepth::U8);
        let y = luma_255(&img, GrayMode::Native).unwrap();
        let e = 16.0 + (65.481 * 10.0 + 128.553 * 200.0 + 24.966 * 30.0) / 255.0;
        assert!((y[0] - e).abs() < 1e-12);

        let gray = Image::from_planar(2, 1, 1, BitDepth::U8, vec![0.0, 100.0 / 255.0]).unwrap();
        assert_eq!(luma_255(&gray, GrayMode::Native).unwrap(), vec![0.0, 100.0]);
        let ex = luma_255(&gray, GrayMode::ExpandToRgb).unwrap();
        assert!((ex[0] - 16.0).abs() < 1e-12);
        assert!((ex[1] - (16.0 + 219.0 * 100.0 / 255.0)).abs() < 1e-9);

        let gray_alpha = Image::from_planar(1, 1, 2, BitDepth::F32, vec![0.5, 1.0]).unwrap();
        assert_eq!(
            luma_255(&gray_alpha, GrayMode::Native).unwrap(),
            vec![127.5]
        );
    }

    #[test]
    fn fast_round_matches_std() {
        let cases = [
            3.5,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -2.5,
            0.499_999_999_999_999_94,
            254.999_99,
            127.500_000_1,
            1e300,
            -1e300,
            4_503_599_627_370_497.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for v in cases {
            assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
        }
        assert!(round_half_away(f64::NAN).is_nan());
        let values: Vec<f32> = (0..=255u8).map(|i| f32::from(i) / 255.0).collect();
        let img = Image::from_planar(256, 1, 1, BitDepth::U8, values).unwrap();
        let mut out = vec![0.0; 256];
        channel_row_255(&img, 0, 0, 0, &mut out);
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as f64));
    }

    #[test]
    fn rejects_gray_for_conversion() {
        let gray = Image::zeros(2, 2, 1, BitDepth::U8).unwrap();
        assert!(matches!(
            rgb_to_ycbcr(&gray),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(ycbcr_to_rgb(&gray).is_err());
    }
}
