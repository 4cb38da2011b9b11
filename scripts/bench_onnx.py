#!/usr/bin/env python3
"""onnxruntime CPU reference for benches/nn.rs `srcnn_infer`.

SRCNN 9-5-5 (1 -> 64 -> 32 -> 1, valid convolutions, ReLU) inference on a
512x512 Y plane at x3: the 528x528 edge-padded input gives the 512x512
output; only the network is timed. The model is the PyTorch one of
scripts/bench_torch.py, exported to ONNX in memory here (nothing binary is
committed), run with intra_op_num_threads 2 and 1 (inter-op 1, sequential
execution, all graph optimisations). Prints wall-time medians and the
single-thread CPU (thread) time, which stays comparable under load.

Needs: pip install onnxruntime onnx. Run: python3 scripts/bench_onnx.py
"""
import io
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

# One timing helper and FLOP count for both Python peers.
from bench_torch import INFER_FLOP, median_ms



def export_srcnn():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 64, 9), nn.ReLU(), nn.Conv2d(64, 32, 5), nn.ReLU(), nn.Conv2d(32, 1, 5)
    ).eval()
    x = torch.rand(1, 1, 528, 528)
    buf = io.BytesIO()
    # The TorchScript exporter (dynamo=False) needs no onnxscript.
    torch.onnx.export(net, (x,), buf, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    with torch.no_grad():
        ref = net(x).numpy()
    return buf.getvalue(), x.numpy(), ref


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main():
    model, x, ref = export_srcnn()
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}")
    for threads in (2, 1):
        s = session(model, threads)
        y = s.run(None, {"x": x})[0]
        assert y.shape == (1, 1, 512, 512)
        err = float(np.abs(y - ref).max())
        ms = median_ms(lambda: s.run(None, {"x": x}), 11, warmup=2)
        print(f"srcnn_infer 9-5-5 528x528 -> 512x512 {threads}t: median {ms:.1f} ms, "
              f"{INFER_FLOP / ms / 1e6:.1f} GFLOP/s (max |ort - torch| {err:.1e})")
    # With intra_op_num_threads = 1 the work runs on the calling thread.
    s = session(model, 1)
    ms = median_ms(lambda: s.run(None, {"x": x}), 7, warmup=1, clock=time.thread_time)
    print(f"srcnn_infer 1t cpu-time: {ms:.1f} ms = {INFER_FLOP / ms / 1e6:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
