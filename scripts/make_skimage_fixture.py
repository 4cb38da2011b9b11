#!/usr/bin/env python3
"""Build the PSNR/SSIM parity fixture read by tests/skimage_parity.rs.

For a few real HR images (Set5 and some of Set14, including the grayscale
Set14/bridge.png) this script:

1. loads the HR PNG from ../shared/data (relative to the repository root) and
   "modcrops" it to a multiple of 4 (top-left kept, as BasicSR/MATLAB do);
2. degrades it deterministically: Pillow BICUBIC down x4, then BICUBIC up x4;
3. cuts the same 64x64 region (the image centre) out of both, and saves the
   pair as 8-bit PNGs in tests/fixtures/skimage_pairs/;
4. re-reads the saved PNGs and writes tests/fixtures/skimage_metrics.json with
   the reference scores of both conventions:
   * "skimage": scikit-image `peak_signal_noise_ratio(ref, test,
     data_range=255)` and `structural_similarity(ref, test, data_range=255,
     channel_axis=-1 for colour)`, defaults otherwise, on the uint8 arrays
     (channels "rgb") and on the float64 Y plane (channels "y");
   * "paper": PSNR/SSIM computed here in NumPy float64 exactly as BasicSR's
     `calculate_psnr` / `calculate_ssim` (MATLAB `ssim_index`): crop_border 4,
     Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 unrounded (or each RGB
     channel), 11x11 Gaussian sigma 1.5 window, 'valid' filtering, population
     statistics. The 2-D window is applied directly (not separably), and is
     checked against cv2.filter2D(...)[5:-5, 5:-5] as BasicSR uses it.

Gray images are measured both "native" (the gray value is Y) and "expand"
(R = G = B, Y = 16 + 219 v). The script is deterministic: rerunning it rewrites
byte-identical files for the same library versions.

Usage (from the repository root): python3 scripts/make_skimage_fixture.py
"""

import json
import os
import sys

import numpy as np
from PIL import Image
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "skimage_pairs")
OUT_JSON = os.path.join(ROOT, "tests", "fixtures", "skimage_metrics.json")

IMAGES = [
    "Set5/baby.png",
    "Set5/bird.png",
    "Set5/butterfly.png",
    "Set5/head.png",
    "Set5/woman.png",
    "Set14/bridge.png",
    "Set14/comic.png",
    "Set14/monarch.png",
]
SCALE = 4
SIZE = 64
CROP_BORDER = 4


def modcrop(img, scale):
    w, h = img.size
    return img.crop((0, 0, w - w % scale, h - h % scale))


def degrade(img, scale):
    w, h = img.size
    lr = img.resize((w // scale, h // scale), Image.BICUBIC)
    return lr.resize((w, h), Image.BICUBIC)


def centre_box(img, size):
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return (x0, y0, x0 + size, y0 + size)


def luma(arr, gray):
    """Y in 0..255 (float64, unrounded) as MATLAB rgb2ycbcr / BasicSR."""
    a = arr.astype(np.float64)
    if a.ndim == 3:
        return 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
    if gray == "native":
        return a
    return 16.0 + (65.481 + 128.553 + 24.966) * a / 255.0


def planes(arr, channels, gray):
    if channels == "y":
        return [luma(arr, gray)]
    a = arr.astype(np.float64)
    return [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]


def gaussian_window():
    """cv2.getGaussianKernel(11, 1.5) outer itself (== fspecial('gaussian', 11, 1.5))."""
    d = np.arange(11, dtype=np.float64) - 5.0
    g = np.exp(-(d * d) / (2.0 * 1.5 * 1.5))
    g /= g.sum()
    return np.outer(g, g)


def filter_valid(img, win):
    """2-D correlation, 'valid' region, summing the 121 shifted products."""
    k = win.shape[0]
    h, w = img.shape
    out = np.zeros((h - k + 1, w - k + 1), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += win[i, j] * img[i : i + h - k + 1, j : j + w - k + 1]
    return out


def paper_ssim_plane(x, y):
    """BasicSR basicsr/metrics/psnr_ssim.py::_ssim, float64."""
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    win = gaussian_window()
    mu1 = filter_valid(x, win)
    mu2 = filter_valid(y, win)
    try:  # the same thing as BasicSR computes it, when OpenCV is available
        import cv2

        ref = cv2.filter2D(x, -1, win)[5:-5, 5:-5]
        assert np.max(np.abs(ref - mu1)) < 1e-9
    except ImportError:
        pass
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = filter_valid(x**2, win) - mu1_sq
    sigma2_sq = filter_valid(y**2, win) - mu2_sq
    sigma12 = filter_valid(x * y, win) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return ssim_map.mean()


def paper_scores(ref, test, channels, gray, crop):
    pr = [p[crop:-crop, crop:-crop] if crop else p for p in planes(ref, channels, gray)]
    pt = [p[crop:-crop, crop:-crop] if crop else p for p in planes(test, channels, gray)]
    mse = np.mean(np.stack([(a - b) ** 2 for a, b in zip(pr, pt)]))
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(255.0 * 255.0 / mse)
    ssim = np.mean([paper_ssim_plane(a, b) for a, b in zip(pr, pt)])
    return float(psnr), float(ssim)


def skimage_scores(ref, test, channels, gray):
    if channels == "rgb":
        a, b = ref, test  # uint8, as skimage users pass them
    else:
        a, b = luma(ref, gray), luma(test, gray)
    colour = a.ndim == 3
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, data_range=255, channel_axis=-1 if colour else None)
    return float(psnr), float(ssim)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    pairs = []
    for rel in IMAGES:
        hr = Image.open(os.path.join(DATA, rel))
        hr.load()
        if hr.mode not in ("L", "RGB"):
            sys.exit(f"{rel}: unexpected mode {hr.mode}")
        hr = modcrop(hr, SCALE)
        sr = degrade(hr, SCALE)
        box = centre_box(hr, SIZE)
        stem = rel.replace("/", "_").removesuffix(".png")
        names = {}
        for kind, img in (("ref", hr), ("test", sr)):
            name = f"{stem}_{kind}.png"
            img.crop(box).save(os.path.join(OUT_DIR, name), optimize=True)
            names[kind] = name
        ref = np.asarray(Image.open(os.path.join(OUT_DIR, names["ref"])))
        test = np.asarray(Image.open(os.path.join(OUT_DIR, names["test"])))
        assert ref.dtype == np.uint8 and ref.shape == test.shape

        gray_modes = ["native", "expand"] if ref.ndim == 2 else ["native"]
        cases = []
        for gray in gray_modes:
            for channels in ("y", "rgb"):
                if channels == "rgb" and gray != "native":
                    continue  # the gray mode only matters for Y
                p, s = paper_scores(ref, test, channels, gray, CROP_BORDER)
                cases.append(dict(convention="paper", channels=channels, gray=gray,
                                  crop_border=CROP_BORDER, psnr=p, ssim=s))
                p, s = skimage_scores(ref, test, channels, gray)
                cases.append(dict(convention="skimage", channels=channels, gray=gray,
                                  crop_border=0, psnr=p, ssim=s))
        pairs.append(dict(name=rel, reference=names["ref"], test=names["test"],
                          width=int(ref.shape[1]), height=int(ref.shape[0]),
                          channels=1 if ref.ndim == 2 else int(ref.shape[2]),
                          region=list(box), cases=cases))
        print(rel, ref.shape, [(c["convention"], c["channels"], c["gray"], round(c["psnr"], 4), round(c["ssim"], 6)) for c in cases])

    doc = dict(
        generator="scripts/make_skimage_fixture.py",
        description=(
            "HR crops (modcrop 4, centre 64x64) vs the same crop of Pillow BICUBIC down x4 + up x4; "
            "'skimage' = scikit-image peak_signal_noise_ratio/structural_similarity(data_range=255) "
            "defaults, crop 0; 'paper' = BasicSR calculate_psnr/calculate_ssim in float64, crop 4"
        ),
        versions=dict(numpy=np.__version__, skimage=skimage.__version__,
                      pillow=Image.__version__),
        pairs=pairs,
    )
    with open(OUT_JSON, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
