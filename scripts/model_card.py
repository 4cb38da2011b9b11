#!/usr/bin/env python3
"""Writes models/<name>.md, the model card of a model trained by `srkit train`.

Runs the built srkit binary to score the model on Set5, Set14 and BSD100 (paper
convention, BI degradation) next to bicubic, records the scores in the model
file (`srkit eval --record`, read back by `srkit models`), and writes the card
from those numbers, the file's training record and the run's CSV log.

Usage: python3 scripts/model_card.py models/srcnn_x3.safetensors "<exact train command>"
(needs `cargo build --release` first; no Python package beyond the standard library).
"""
import csv
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRKIT = os.path.join(ROOT, "target", "release", "srkit")
DATA = os.path.join(ROOT, "..", "shared", "data")

# SRCNN 9-5-5 as published (Dong et al., TPAMI 2016, Table 4/5; SSIM and B100 as
# tabulated by Kim et al., VDSR, CVPR 2016, Table 3).
PAPER = {
    2: {"Set5": (36.66, 0.9542), "Set14": (32.45, 0.9067), "BSD100": (31.36, 0.8879)},
    3: {"Set5": (32.75, 0.9090), "Set14": (29.30, 0.8215), "BSD100": (28.41, 0.7863)},
    4: {"Set5": (30.48, 0.8628), "Set14": (27.50, 0.7513), "BSD100": (26.90, 0.7101)},
}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["srkit"])


def main():
    model, command = sys.argv[1], sys.argv[2]
    meta = header(model)
    scale = meta["scales"][0]
    out_json = model + ".eval.json"
    sets = ["Set5", "Set14", "BSD100"]
    args = [SRKIT, "eval", "--method", "bicubic", "--model", model, "--scale", str(scale),
            "--record", "--json", out_json]
    for s in sets:
        args += ["--dataset", os.path.join(DATA, s)]
    table = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    results = json.load(open(out_json))["results"]
    os.remove(out_json)
    meta = header(model)
    t = meta["training"]
    stem = os.path.splitext(os.path.basename(model))[0]
    log = list(csv.DictReader(open(os.path.join(os.path.dirname(model), stem + ".log.csv"))))
    name = stem.replace("_", "-")

    def cell(method, ds):
        r = next(r for r in results if r["method"] == method and r["dataset"] == ds)
        return f"{r['psnr']:.2f} / {r['ssim']:.4f}"

    rows = [f"| srkit {name} | " + " | ".join(cell(name, s) for s in sets) + " |",
            "| SRCNN 9-5-5, paper | " + " | ".join(
                f"{PAPER[scale][s][0]:.2f} / {PAPER[scale][s][1]:.4f}" for s in sets) + " |",
            "| bicubic (srkit) | " + " | ".join(cell("bicubic", s) for s in sets) + " |"]
    cfg = meta["config"]
    ours = {r["dataset"]: r["psnr"] for r in results if r["method"] == name}
    short = [s for s in sets[:2] if ours[s] < PAPER[scale][s][0]]
    last = log[-1]
    status = (f"Status: at or above the paper on Set5 and Set14."
              if not short else
              f"Status: training is not finished — below the paper on {', '.join(short)}; it is "
              f"resumed from its checkpoint in later sessions (last log row: step {last['step']}, "
              f"{float(last['val_psnr']):.3f} dB on Set5).")
    card = f"""# {name}: SRCNN {cfg['f1']}-{cfg['f2']}-{cfg['f3']} (n1 = {cfg['n1']}, n2 = {cfg['n2']}), x{scale}

Built into the binary (`srkit upscale --model {name}`, and the default for x{scale}).
Architecture: Dong et al., "Image Super-Resolution Using Deep Convolutional Networks",
TPAMI 2016 (`src/models/srcnn.rs`). Input: Y (BT.601) of the bicubic-upscaled image in [0, 1].

## How it was trained

```
{command}
```

- Data: {", ".join(os.path.relpath(d, ROOT) for d in t["data"])} (the "291" set: T91 + BSD200),
  BI degradation (MATLAB-exact bicubic, 8-bit), random 33x33 patches with
  flips and 90° rotations; batch {t['batch_size']}; MSE loss; Adam.
- Steps so far: {t['steps']} (best validation at this step); {t['wall_seconds'] / 3600:.2f} h
  of wall-clock time on this machine (2-core AMD Zen 3, one thread, shared with builds, benchmarks and the other two trainings, and paused at times), summed over
  resumed runs. Validation: {t['val_dataset']}, {t['val_psnr']:.3f} dB / {t['val_ssim']:.4f}.
- Learning-rate history and validation curve: `{stem}.log.csv`, `{stem}.curve.png`;
  checkpoint to resume from: `{stem}.ckpt.safetensors` (add `--resume` to the command).

## Scores (PSNR dB / SSIM, Y channel, {scale} border pixels cropped)

| method | Set5 | Set14 | BSD100 |
|---|---|---|---|
{chr(10).join(rows)}

Reproduce: `srkit eval --method bicubic --model models/{stem}.safetensors --scale {scale} \\
  --dataset ../shared/data/Set5 --dataset ../shared/data/Set14 --dataset ../shared/data/BSD100`

{status}
"""
    with open(os.path.join(os.path.dirname(model), stem + ".md"), "w") as f:
        f.write(card)
    print(table)


if __name__ == "__main__":
    main()
