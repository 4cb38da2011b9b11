#!/usr/bin/env python3
"""Peer timings for benches/resize.rs: OpenCV and Pillow on the same sizes.

Times cv2.resize (INTER_CUBIC, INTER_AREA) and Pillow's Image.resize(BICUBIC)
on a deterministic synthetic 8-bit RGB image, single-threaded
(cv2.setNumThreads(1); Pillow's resize is single-threaded), and prints the
median of the repeats in milliseconds.

Cases (as in benches/resize.rs):
  * bicubic x4 upscale    512x512   -> 2048x2048
  * x4 downscale          2048x2048 -> 512x512

Notes: OpenCV's INTER_CUBIC uses a = -0.75 and does NOT antialias when
downscaling (it samples 4x4 taps), so it is cheaper but not comparable in
quality for the downscale; INTER_AREA is OpenCV's antialiased downscaler.
Pillow's BICUBIC (a = -0.5) antialiases like MATLAB's imresize.

Usage: python3 scripts/bench_resize.py [--repeats N]
"""

import argparse
import statistics
import time

import cv2
import numpy as np
from PIL import Image


def synthetic_rgb8(w, h):
    """Gradient plus seeded noise, deterministic."""
    rng = np.random.default_rng(12345)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // w + y * 127 // h + c * 40) % 256 for c in range(3)], axis=-1)
    noise = rng.integers(0, 64, size=(h, w, 3))
    return ((base * 3 + noise) // 4).clip(0, 255).astype(np.uint8)


def median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    cv2.setNumThreads(1)

    cases = [
        ("upscale_x4_512_to_2048_rgb8", (512, 512), (2048, 2048)),
        ("downscale_x4_2048_to_512_rgb8", (2048, 2048), (512, 512)),
    ]
    print(f"OpenCV {cv2.__version__}, Pillow {Image.__version__}, threads=1, "
          f"median of {args.repeats} (min..max) in ms")
    for name, (sw, sh), (dw, dh) in cases:
        arr = synthetic_rgb8(sw, sh)
        pil = Image.fromarray(arr)
        runs = [
            ("opencv_INTER_CUBIC", lambda: cv2.resize(arr, (dw, dh), interpolation=cv2.INTER_CUBIC)),
            ("opencv_INTER_AREA", lambda: cv2.resize(arr, (dw, dh), interpolation=cv2.INTER_AREA)),
            ("pillow_BICUBIC", lambda: pil.resize((dw, dh), Image.Resampling.BICUBIC)),
        ]
        for label, fn in runs:
            med, lo, hi = median_ms(fn, args.repeats)
            print(f"{name:32s} {label:20s} {med:9.2f}  ({lo:.2f}..{hi:.2f})")


if __name__ == "__main__":
    main()
