#!/usr/bin/env python3
"""Time scikit-image's Gaussian SSIM on the pair benches/ssim.rs uses.

The 2048x2048 8-bit gray pair is built from the same integer formula as
benches/ssim.rs (x = column, y = row):
    a = (x + 2y + (x*y >> 6)) mod 256
    b = clamp(a + ((7x + 13y) mod 11) - 5, 0, 255)
and timed with
    structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                          use_sample_covariance=False, data_range=255)
(the settings skimage documents as matching Wang et al. 2004). Prints the
median of 5 runs (after one warm-up) in milliseconds.

Usage: python3 scripts/bench_ssim.py
"""

import statistics
import time

import numpy as np
import skimage
from skimage.metrics import structural_similarity

SIZE = 2048


def pair():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.int64)
    a = (x + 2 * y + ((x * y) >> 6)) % 256
    b = np.clip(a + (7 * x + 13 * y) % 11 - 5, 0, 255)
    return a.astype(np.uint8), b.astype(np.uint8)


def run(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )


def main():
    a, b = pair()
    value = run(a, b)  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run(a, b)
        times.append(time.perf_counter() - t0)
    print(f"scikit-image {skimage.__version__}, numpy {np.__version__}")
    print(f"skimage gaussian SSIM 2048x2048 = {value:.12f}")
    print("runs (ms): " + ", ".join(f"{t * 1e3:.1f}" for t in times))
    print(f"median: {statistics.median(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
