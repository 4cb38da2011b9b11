#!/usr/bin/env python3
"""srkit vs PyTorch CPU inference, architecture by architecture, same weights,
same input size, same thread count, in one run (issue: deeper networks).

For each case the script builds the PyTorch reference network (the modules of
scripts/make_arch_fixtures.py and scripts/make_import_fixture.py, which the
parity tests check srkit against), gives it random weights, saves its
state_dict as a .pth, times `forward` under torch.inference_mode, then runs
`target/release/examples/time_model` on that .pth (srkit reads the checkpoint
itself) with the same input size. FLOPs are counted from the convolutions
actually run (2 per multiply-add). Medians over RUNS runs after a warm-up;
wall time and process CPU time (the latter is robust to other processes).

Run: cargo build --release --example time_model && python3 scripts/bench_archs.py [THREADS] [RUNS] [NAME...]
(NAME: run only the networks whose name contains one of these, e.g. ESPCN)
"""
import importlib.util
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMER = ROOT / "target" / "release" / "examples" / "time_model"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


arch = load_script("make_arch_fixtures")
imp = load_script("make_import_fixture")


class VDSR(nn.Module):
    """twtygqyy/pytorch-vdsr layout, with biases (the paper's 665,921)."""

    def __init__(self):
        super().__init__()
        self.input = nn.Conv2d(1, 64, 3, padding=1)
        self.residual_layer = nn.Sequential(*[nn.Sequential() for _ in range(18)])
        for block in self.residual_layer:
            block.add_module("conv", nn.Conv2d(64, 64, 3, padding=1))
            block.add_module("relu", nn.ReLU())
        self.output = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x):
        return self.output(self.residual_layer(torch.relu(self.input(x)))) + x


class ESPCN(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(),
                                        nn.Conv2d(64, 32, 3, padding=1), nn.Tanh())
        self.last_part = nn.Sequential(nn.Conv2d(32, scale * scale, 3, padding=1),
                                       nn.PixelShuffle(scale))

    def forward(self, x):
        return self.last_part(self.first_part(x))


def cases():
    return [
        ("RRDBNet x4 (ESRGAN, 23 blocks)", lambda: arch.RRDBNet(4, 64, 23, 32), (3, 128, 128)),
        ("RCAN x4 (10x20, 64)", lambda: arch.RCAN(num_feat=64, num_group=10, num_block=20,
                                                  squeeze_factor=16, upscale=4), (3, 128, 128)),
        ("RDN x4 (D16 C8 G64)", lambda: arch.RDN(4), (3, 128, 128)),
        ("EDSR-baseline x4 (16x64)", lambda: arch.EDSR(num_feat=64, num_block=16, upscale=4),
         (3, 128, 128)),
        ("VDSR (20x64)", VDSR, (1, 512, 512)),
        ("SRVGGNetCompact x4 (16x64)", imp.SRVGGNetCompact, (3, 128, 128)),
        ("FSRCNN x3 (56,12,4)", lambda: imp.FSRCNN(3), (1, 256, 256)),
        ("ESPCN x3", lambda: ESPCN(3), (1, 256, 256)),
    ]


def conv_flops(model, x):
    total = 0

    def hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        if isinstance(m, nn.ConvTranspose2d):
            total += 2 * inp[0].numel() * (m.out_channels // m.groups) * k
        else:
            total += 2 * out.numel() * (m.in_channels // m.groups) * k

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        model(x)
    for h in hs:
        h.remove()
    return total


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    only = sys.argv[3:]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"threads {threads}, runs {runs}, torch {torch.__version__}")
    print("| network | input | GFLOP | PyTorch ms (cpu) | srkit ms (cpu) | PyTorch GFLOP/s | srkit GFLOP/s | srkit speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, (c, h, w) in cases():
            if only and not any(o.lower() in name.lower() for o in only):
                continue
            model = make().eval()
            if hasattr(arch, "randomize"):
                arch.randomize(model)
            x = torch.rand(1, c, h, w)
            flop = conv_flops(model, x)
            wall, cpu = [], []
            with torch.inference_mode():
                model(x)
                for _ in range(runs):
                    t, p = time.perf_counter(), time.process_time()
                    model(x)
                    cpu.append(time.process_time() - p)
                    wall.append(time.perf_counter() - t)
            tw, tc = statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3
            pth = pathlib.Path(tmp) / "m.pth"
            torch.save(model.state_dict(), pth)
            del model
            out = subprocess.run([str(TIMER), str(pth), str(c), str(h), str(w), str(runs),
                                  str(threads)], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout)
            sw, sc = r["wall_ms"], r["cpu_ms"]
            g = flop / 1e9
            print(f"| {name} | {c}x{h}x{w} | {g:.1f} | {tw:.0f} ({tc:.0f}) | {sw:.0f} ({sc:.0f}) | "
                  f"{g / tc * 1e3:.1f} | {g / sc * 1e3:.1f} | {tc / sc:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
