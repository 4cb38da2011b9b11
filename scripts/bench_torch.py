#!/usr/bin/env python3
"""PyTorch CPU reference timings for benches/nn.rs (same shapes, same work).

- conv 3x3, 64 -> 64, padding 1, with bias, forward on 1x64x256x256
  (GFLOP/s = 2*64*64*9*256*256 / time);
- one SRCNN 9-5-5 (1 -> 64 -> 32 -> 1, valid convolutions, ReLU) training
  step on a batch of 16 33x33 patches: forward, MSE, backward, Adam update;
- SRCNN 9-5-5 inference (torch.inference_mode) on a 512x512 Y plane at x3:
  the 528x528 edge-padded input gives the 512x512 output (benches/nn.rs
  `srcnn_infer`; scripts/bench_onnx.py runs the same model in onnxruntime).

Each with torch.set_num_threads(2) and (1); prints the median of >= 10 runs
after warm-up, plus single-thread CPU (thread) time, which stays comparable
when other processes load the machine. Run: python3 scripts/bench_torch.py
"""
import statistics
import time

import torch
import torch.nn as nn


def median_ms(fn, runs, warmup=3, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = clock()
        fn()
        ts.append(clock() - t)
    return statistics.median(ts) * 1e3


# FLOPs of SRCNN 9-5-5 on a 512x512 output (2 per multiply-add).
INFER_FLOP = 2 * (1 * 64 * 81 + 64 * 32 * 25 + 32 * 1 * 25) * 512 * 512


def srcnn_955():
    return nn.Sequential(
        nn.Conv2d(1, 64, 9), nn.ReLU(), nn.Conv2d(64, 32, 5), nn.ReLU(), nn.Conv2d(32, 1, 5)
    )


def bench_infer():
    torch.manual_seed(1)
    net = srcnn_955().eval()
    x = torch.rand(1, 1, 528, 528)
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            ms = median_ms(lambda: net(x), 11, warmup=2)
        print(f"srcnn_infer 9-5-5 528x528 -> 512x512 {threads}t: median {ms:.1f} ms, "
              f"{INFER_FLOP / ms / 1e6:.1f} GFLOP/s")
    torch.set_num_threads(1)
    with torch.inference_mode():
        ms = median_ms(lambda: net(x), 7, warmup=1, clock=time.thread_time)
    print(f"srcnn_infer 1t cpu-time: {ms:.1f} ms = {INFER_FLOP / ms / 1e6:.1f} GFLOP/s")


def main():
    torch.manual_seed(0)
    x = torch.rand(1, 64, 256, 256) * 2 - 1
    conv = nn.Conv2d(64, 64, 3, padding=1)
    flop = 2 * 64 * 64 * 9 * 256 * 256

    srcnn = srcnn_955()
    opt = torch.optim.Adam(srcnn.parameters())
    xb = torch.rand(16, 1, 33, 33)
    tb = torch.rand(16, 1, 17, 17)

    def step():
        opt.zero_grad()
        loss = nn.functional.mse_loss(srcnn(xb), tb)
        loss.backward()
        opt.step()

    print(f"torch {torch.__version__}")
    bench_infer()
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with torch.no_grad():
            ms = median_ms(lambda: conv(x), 15)
        print(f"conv3x3 64->64 1x64x256x256 {threads}t: median {ms:.1f} ms, {flop / ms / 1e6:.1f} GFLOP/s")
        ms = median_ms(step, 30)
        print(f"srcnn 9-5-5 train step b16 33x33 {threads}t: median {ms:.2f} ms")
    # With one thread all work runs on this thread: its CPU time is robust to
    # other processes sharing the cores (compare with NN_BREAKDOWN=1 cargo bench).
    torch.set_num_threads(1)
    step_cpu = median_ms(step, 100, clock=time.thread_time)
    with torch.no_grad():
        conv_cpu = median_ms(lambda: conv(x), 30, clock=time.thread_time)
    print(f"1t cpu-time: srcnn step {step_cpu:.2f} ms; conv3x3 {conv_cpu:.1f} ms = {flop / conv_cpu / 1e6:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
