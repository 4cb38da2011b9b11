#!/usr/bin/env python3
"""Reference outputs of the real third-party checkpoints in ../shared/weights,
computed by PyTorch, for tests/pytorch_models.rs (CI has no PyTorch).

For FSRCNN x3 (legacy format) and realesr-animevideov3 (SRVGGNetCompact, zip
format) the script builds the network as its authors' code defines it
(yjn870/FSRCNN-pytorch models.py; Real-ESRGAN srvgg_arch.py), loads the
checkpoint with torch.load, runs it on a fixed crop of Set5's butterfly
(LR input as the benchmarks make it is not needed here: any input checks the
arithmetic) and writes input and output to
tests/fixtures/pytorch_models.safetensors.

Rerun: python3 scripts/make_import_fixture.py   (needs torch, numpy, pillow)
"""
import json
import pathlib
import struct

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEIGHTS = ROOT.parent / "shared" / "weights"
OUT = ROOT / "tests" / "fixtures" / "pytorch_models.safetensors"


class FSRCNN(nn.Module):
    def __init__(self, scale, d=56, s=12, m=4):
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d))
        mid = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4,
                                            output_padding=scale - 1)

    def forward(self, x):
        return self.last_part(self.mid_part(self.first_part(x)))


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_feat=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList([nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(nn.PReLU(num_feat))
        self.body.append(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.set_grad_enabled(False)
    rgb = np.asarray(Image.open(ROOT.parent / "shared" / "data" / "Set5" / "butterfly.png")
                     .convert("RGB"), dtype=np.float32) / 255.0
    crop = rgb[100:124, 60:92]  # 24 x 32
    rgb_in = torch.from_numpy(crop.transpose(2, 0, 1)[None].copy())
    # MATLAB rgb2ycbcr's Y in [0, 1], as srkit feeds Y models.
    y = (16.0 + crop @ np.array([65.481, 128.553, 24.966], dtype=np.float32)) / 255.0
    y_in = torch.from_numpy(y[None, None].astype(np.float32))

    fsrcnn = FSRCNN(3)
    fsrcnn.load_state_dict(torch.load(WEIGHTS / "fsrcnn-pytorch" / "fsrcnn_x3.pth",
                                      map_location="cpu"))
    srvgg = SRVGGNetCompact()
    ckpt = torch.load(WEIGHTS / "realesr-animevideov3" / "realesr-animevideov3.pth",
                      map_location="cpu")
    srvgg.load_state_dict(ckpt["params"])

    tensors = {
        "fsrcnn_x3.input": y_in.numpy(),
        "fsrcnn_x3.output": fsrcnn(y_in).numpy(),
        "animevideov3.input": rgb_in.numpy(),
        "animevideov3.output": srvgg(rgb_in).numpy(),
    }
    write_safetensors(OUT, tensors, {"torch": torch.__version__})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
