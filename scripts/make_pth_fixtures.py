#!/usr/bin/env python3
"""Builds tests/fixtures/pth/ for tests/pytorch_import.rs (srkit::models::pytorch).

Small PyTorch checkpoints in both serialisations torch.save writes, covering
what the reader must handle, and expected.json with the exact values torch
itself reads back from each file:

- bare_zip.pth, bare_legacy.pth: a bare state_dict (zip / legacy format);
  bare_archive.pth: the same saved through a BytesIO (zip folder 'archive/');
  bare_deflated.pth: bare_zip.pth re-zipped with deflate, as some published
  weight files are; bare_protocol5.pth: saved with pickle_protocol=5.
- wrapped_params.pth ({'params': sd}), wrapped_params_ema.pth ({'params':
  other, 'params_ema': sd}: the reader must pick params_ema),
  wrapped_state_dict.pth (a training checkpoint: epoch, state_dict, Adam
  state, a numpy scalar and an argparse.Namespace), wrapped_model_legacy.pth
  ({'model': sd}, legacy), dataparallel.pth (every key prefixed 'module.').
- whole_module.pth, whole_module_legacy.pth: torch.save(model) of the Net
  class below (nested submodules, PReLU, BatchNorm2d with
  num_batches_tracked, a conv without bias, a non-persistent buffer);
  wrapped_module.pth: {'model': model}; whole_module_protocol4.pth: saved
  with pickle_protocol=4.
- dtypes.pth, dtypes_legacy.pth: float16, bfloat16, float64, float32, a 0-dim
  tensor, and int64/bool tensors (which the reader skips).
- views.pth, views_legacy.pth: a transposed (non-contiguous) tensor, a strided
  slice, and two tensors sharing one storage at different offsets.
- malicious_os_system.pth (legacy framing, hand-written pickle whose REDUCE
  calls os.system), malicious_posix_system.pth (zip made by torch.save of an
  object whose __reduce__ is posix.system), malicious_eval.pkl (a plain
  protocol-4 pickle calling builtins.eval). None of them is ever run: this
  script only writes bytes, and the reader refuses the call.

expected.json maps each file to {"source", "tensors": [{"key", "shape",
"values"}]} in file order (values as float32 read by torch, so for float16
the f32 value of the f16; float64 rounded to float32), or to {"error": text
the reader's message must contain}. Under "real" it holds, for the
third-party files in ../shared/weights (read, not copied), each tensor's key,
shape, first 5 values and the sequential float64 sum of its float32 values.

Values are deterministic (fixed seeds). The file bytes are not entirely:
legacy files key storages by memory address, as torch does.

Run: pip install torch numpy && python3 scripts/make_pth_fixtures.py
"""
import argparse
import io
import json
import os
import pathlib
import pickle
import struct
import warnings
import zipfile

import numpy as np
import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "pth"
WEIGHTS = ROOT.parent / "shared" / "weights"
LEGACY = dict(_use_new_zipfile_serialization=False)


class Block(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.PReLU(ch)

    def forward(self, x):
        return self.act(self.conv(x))


class Net(nn.Module):
    """Nested submodules, PReLU, BatchNorm (num_batches_tracked), a conv
    without bias and a non-persistent buffer (not part of the state_dict)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(1, 4, 3, padding=1)
        self.body = nn.Sequential(Block(4), Block(4))
        self.bn = nn.BatchNorm2d(4)
        self.tail = nn.Conv2d(4, 2, 1, bias=False)
        self.register_buffer("cache", torch.arange(3.0), persistent=False)

    def forward(self, x):
        return self.tail(self.bn(self.body(self.head(x))))


def small_state_dict(seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    sd = {
        "conv1.weight": r(4, 3, 3, 3),
        "conv1.bias": r(4),
        "act.weight": torch.full((4,), 0.25),
        "conv2.weight": r(2, 4, 1, 1),
        "conv2.bias": r(2),
    }
    from collections import OrderedDict

    return OrderedDict(sd)


def trained_net():
    torch.manual_seed(0)
    net = Net()
    net.train()
    with torch.no_grad():
        for _ in range(3):  # moves BatchNorm's running stats and num_batches_tracked
            net(torch.randn(2, 1, 5, 5))
    net.eval()
    return net


def entries(sd):
    """Expected tensors of a state_dict, as the reader returns them."""
    out = []
    for k, v in sd.items():
        if not torch.is_floating_point(v):
            continue  # integer / bool tensors are skipped
        out.append(
            {"key": k, "shape": list(v.shape), "values": v.detach().float().flatten().tolist()}
        )
    return out


def sequential_sum(values):
    """Left-to-right float64 sum (Python >= 3.12's sum() compensates; the
    Rust test adds in order, so this must not)."""
    total = 0.0
    for x in values:
        total += x
    return total


def dump(expected):
    """JSON with one line per tensor, for readable diffs."""
    lines = ["{"]
    for i, (name, v) in enumerate(expected.items()):
        lines.append(f" {json.dumps(name)}: {{")
        for j, (name2, v2) in enumerate(v.items()):
            if isinstance(v2, dict) and "tensors" in v2 and isinstance(v2["tensors"], list):
                inner = ",\n".join("   " + json.dumps(t) for t in v2["tensors"])
                body = f'{{"source": {json.dumps(v2["source"])}, "tensors": [\n{inner}\n  ]}}'
            elif isinstance(v2, list):
                body = "[\n" + ",\n".join("   " + json.dumps(t) for t in v2) + "\n  ]"
            else:
                body = json.dumps(v2)
            comma = "," if j + 1 < len(v) else ""
            lines.append(f"  {json.dumps(name2)}: {body}{comma}")
        lines.append(" }," if i + 1 < len(expected) else " }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def legacy_framing(main_pickle):
    """A legacy-format file around a hand-written main pickle (no storages)."""
    b = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, b, protocol=2)
    pickle.dump(1001, b, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True}, b, protocol=2)
    b.write(main_pickle)
    pickle.dump([], b, protocol=2)
    return b.getvalue()


class PosixSystem:
    """Pickles as posix.system(cmd): torch.save writes it, nothing runs it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/srkit_pth_fixture_pwned",))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    expected = {}

    sets = {}  # expected tensor lists, shared by the files that hold the same weights

    def save(name, obj, source, sd, **kw):
        torch.save(obj, OUT / name, **kw)
        tensors = entries(sd)
        set_name = next((k for k, v in sets.items() if v == tensors), None)
        if set_name is None:
            set_name = name.split(".")[0]
            sets[set_name] = tensors
        expected[name] = {"source": source, "tensors": set_name}

    sd = small_state_dict(1)
    save("bare_zip.pth", sd, "", sd)
    save("bare_legacy.pth", sd, "", sd, **LEGACY)
    buf = io.BytesIO()
    torch.save(sd, buf)  # saved to a stream: the zip's folder is 'archive/'
    (OUT / "bare_archive.pth").write_bytes(buf.getvalue())
    expected["bare_archive.pth"] = expected["bare_zip.pth"]
    with zipfile.ZipFile(OUT / "bare_zip.pth") as src, zipfile.ZipFile(
        OUT / "bare_deflated.pth", "w", zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    expected["bare_deflated.pth"] = expected["bare_zip.pth"]

    # Pickle protocols 4 and 5 (FRAME, MEMOIZE, STACK_GLOBAL, short strings).
    save("bare_protocol5.pth", sd, "", sd, pickle_protocol=5)

    save("wrapped_params.pth", {"params": sd}, "params", sd)
    other = small_state_dict(2)
    save("wrapped_params_ema.pth", {"params": other, "params_ema": sd}, "params_ema", sd)

    torch.manual_seed(3)
    net = trained_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(1, 1, 4, 4)).mean().backward()
    opt.step()
    ckpt = {
        "epoch": 3,
        "state_dict": net.state_dict(),
        "optimizer": opt.state_dict(),
        "best_psnr": np.float64(30.5),
        "args": argparse.Namespace(lr=1e-3, name="net"),
    }
    save("wrapped_state_dict.pth", ckpt, "state_dict", net.state_dict())
    save("wrapped_model_legacy.pth", {"model": sd}, "model", sd, **LEGACY)
    dp = {"module." + k: v for k, v in sd.items()}
    save("dataparallel.pth", dp, "", sd)

    net = trained_net()
    save("whole_module.pth", net, "", net.state_dict())
    # Legacy torch.save(model) embeds each nn class's source code (some 30 KB
    # here); the reader ignores it, so leave it out as torch does when the
    # source cannot be found.
    get_source = torch.serialization.get_source_lines_and_file
    torch.serialization.get_source_lines_and_file = None  # calling it raises: no source stored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save("whole_module_legacy.pth", net, "", net.state_dict(), **LEGACY)
    torch.serialization.get_source_lines_and_file = get_source
    save("wrapped_module.pth", {"model": net}, "model", net.state_dict())
    save("whole_module_protocol4.pth", net, "", net.state_dict(), pickle_protocol=4)

    g = torch.Generator().manual_seed(4)
    base = torch.randn(3, 5, generator=g, dtype=torch.float64)
    dt = {
        "half": (base * 3).to(torch.float16),
        "bf16": (base * 7).to(torch.bfloat16),
        "double": base * 1e-3,
        "float": base.float(),
        "scalar": torch.tensor(1.5),
        "steps": torch.tensor([1, 2, 3]),
        "mask": torch.tensor([True, False]),
    }
    save("dtypes.pth", dt, "", dt)
    save("dtypes_legacy.pth", dt, "", dt, **LEGACY)

    flat = torch.arange(24, dtype=torch.float32) / 8 - 1
    grid = flat.view(4, 6)
    views = {
        "transposed": grid.t(),  # [6, 4], strides (1, 6)
        "strided": grid[1:, ::2],  # [3, 3], offset 6, strides (6, 2)
        "shared_a": flat[2:8],  # offset 2 into the same storage
        "shared_b": flat[10:20].view(2, 5),  # offset 10
    }
    for v in views.values():
        assert v.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    save("views.pth", views, "", views)
    save("views_legacy.pth", views, "", views, **LEGACY)

    # Malicious files: bytes only, never unpickled here.
    cmd = b"touch /tmp/srkit_pth_fixture_pwned"
    evil = (
        b"\x80\x02cos\nsystem\n"  # GLOBAL os.system
        + b"X" + struct.pack("<I", len(cmd)) + cmd  # BINUNICODE cmd
        + b"\x85R."  # TUPLE1 REDUCE STOP
    )
    (OUT / "malicious_os_system.pth").write_bytes(legacy_framing(evil))
    expected["malicious_os_system.pth"] = {"error": "refusing to call os.system"}
    torch.save({"params": PosixSystem()}, OUT / "malicious_posix_system.pth")
    expected["malicious_posix_system.pth"] = {"error": "refusing to call posix.system"}
    code = b"__import__('os').system('touch /tmp/srkit_pth_fixture_pwned')"
    plain = (
        b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94"  # STACK_GLOBAL
        + b"X" + struct.pack("<I", len(code)) + code
        + b"\x85R."
    )
    (OUT / "malicious_eval.pkl").write_bytes(plain)
    expected["malicious_eval.pkl"] = {"error": "refusing to call builtins.eval"}

    real = {}
    for rel in [
        "fsrcnn-pytorch/fsrcnn_x2.pth",
        "fsrcnn-pytorch/fsrcnn_x3.pth",
        "fsrcnn-pytorch/fsrcnn_x4.pth",
        "realesr-animevideov3/realesr-animevideov3.pth",
    ]:
        obj = torch.load(WEIGHTS / rel, map_location="cpu", weights_only=True)
        src = "params" if "params" in obj else ""
        sd = obj[src] if src else obj
        real[rel] = {
            "source": src,
            "tensors": [
                {
                    "key": k,
                    "shape": list(v.shape),
                    "first5": v.float().flatten()[:5].tolist(),
                    "sum": sequential_sum(v.float().flatten().tolist()),
                }
                for k, v in sd.items()
            ],
        }
    expected["real"] = real
    expected["sets"] = sets

    with open(OUT / "expected.json", "w") as f:
        f.write(dump(expected))
    total = sum(p.stat().st_size for p in OUT.iterdir())
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:7d}  {p.name}")
    print(f"{total:7d}  total")


if __name__ == "__main__":
    main()
