#!/usr/bin/env python3
"""Builds tests/fixtures/arch_parity.safetensors for tests/arch_parity.rs.

PyTorch reference forward passes of the four architectures srkit ports in
src/models/{edsr,rcan,rdn,rrdbnet}.rs, on small configs with random weights:

| case        | architecture | config                                                   |
|-------------|--------------|----------------------------------------------------------|
| edsr_x2     | EDSR         | 2 blocks, 16 feats, x2, res_scale 1                      |
| edsr_x3     | EDSR         | 2 blocks, 16 feats, x3, res_scale 0.1                    |
| rcan_x2     | RCAN         | 2 groups x 2 blocks, 16 feats, squeeze 4, x2             |
| rcan_x4     | RCAN         | 1 group x 2 blocks, 8 feats, squeeze 4, x4, res_scale 0.5 |
| rdn_x2      | RDN          | D 2, C 3, G0 16, G 8, x2, rgb_range 255                  |
| rdn_x4      | RDN          | D 2, C 3, G0 16, G 8, x4, rgb_range 255                  |
| rrdbnet_x4  | RRDBNet      | 2 blocks, 16 feats, grow 8, x4                           |
| rrdbnet_x2  | RRDBNet      | 1 block, 8 feats, grow 8, x2 (pixel unshuffle 2)         |
| rrdbnet_x1  | RRDBNet      | 1 block, 8 feats, grow 8, x1 (pixel unshuffle 4)         |

The reference modules below are written after BasicSR 1.4.2
(basicsr/archs/{arch_util,edsr_arch,rcan_arch,rrdbnet_arch}.py) and, for RDN,
which BasicSR lacks, the official EDSR-PyTorch src/model/rdn.py; their
parameter names are those files' state_dict keys. `--basicsr DIR` (DIR holds
the `basicsr` package, e.g. the unpacked `pip download basicsr` sdist)
additionally loads BasicSR's own EDSR, RCAN and RRDBNet classes (with stubs
for their unrelated imports), and checks that they take the same state_dicts
strictly, give the same outputs and have the same default parameter counts.

Weights are drawn in float32 with fixed seeds: PyTorch's default conv init,
plus N(0, 0.05) added to every bias (they would otherwise all start in a
narrow band, and BasicSR zero-fills some). The reference forward runs in
float64 and is stored as float32, so the fixture is the exact answer up to
the f32 rounding of the stored values.

Stored keys: `<case>.input` `[1, 3, H, W]` in [0, 1], `<case>.output`, and
`<case>.param.<state_dict key>`. The header's `__metadata__` holds `configs`
(each case's constructor arguments, JSON) and `default_param_counts`
(PyTorch's parameter counts of the papers' default models, JSON).

Run: pip install torch safetensors && python3 scripts/make_arch_fixtures.py
"""
import argparse
import importlib.util
import json
import math
import pathlib
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def conv3(c_in, c_out):
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


# ---------------------------------------------------------------- EDSR / RCAN
class Upsample(nn.Sequential):
    """BasicSR Upsample: log2(s) x (conv -> 4 C, PixelShuffle(2)), or conv -> 9 C, PixelShuffle(3)."""

    def __init__(self, scale, num_feat):
        layers = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv3(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3(num_feat, 9 * num_feat), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported")
        super().__init__(*layers)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat, res_scale):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = conv3(num_feat, num_feat)
        self.conv2 = conv3(num_feat, num_feat)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x))) * self.res_scale


class MeanShifted(nn.Module):
    """EDSR's and RCAN's input/output convention: (x - mean) * range in, / range + mean out."""

    def setup_range(self, img_range, rgb_mean):
        self.img_range = img_range
        # float32 constants, as BasicSR's torch.Tensor(rgb_mean) (and srkit) hold them
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x))
        res = res + x
        x = self.conv_last(self.upsample(res))
        return x / self.img_range + self.mean


class EDSR(MeanShifted):
    def __init__(self, num_feat=64, num_block=16, upscale=4, res_scale=1.0, img_range=255.0, rgb_mean=DIV2K_MEAN):
        super().__init__()
        self.setup_range(img_range, rgb_mean)
        self.conv_first = conv3(3, num_feat)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = conv3(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv3(num_feat, 3)


class ChannelAttention(nn.Module):
    def __init__(self, num_feat, squeeze_factor):
        super().__init__()
        squeezed = num_feat // squeeze_factor
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, squeezed, 1),
            nn.ReLU(),
            nn.Conv2d(squeezed, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.attention(x)


class RCAB(nn.Module):
    def __init__(self, num_feat, squeeze_factor, res_scale):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            conv3(num_feat, num_feat), nn.ReLU(), conv3(num_feat, num_feat), ChannelAttention(num_feat, squeeze_factor)
        )

    def forward(self, x):
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    def __init__(self, num_feat, num_block, squeeze_factor, res_scale):
        super().__init__()
        self.residual_group = nn.Sequential(*[RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block)])
        self.conv = conv3(num_feat, num_feat)

    def forward(self, x):
        return self.conv(self.residual_group(x)) + x


class RCAN(MeanShifted):
    def __init__(
        self,
        num_feat=64,
        num_group=10,
        num_block=20,
        squeeze_factor=16,
        upscale=4,
        res_scale=1.0,
        img_range=255.0,
        rgb_mean=DIV2K_MEAN,
    ):
        super().__init__()
        self.setup_range(img_range, rgb_mean)
        self.conv_first = conv3(3, num_feat)
        self.body = nn.Sequential(
            *[ResidualGroup(num_feat, num_block, squeeze_factor, res_scale) for _ in range(num_group)]
        )
        self.conv_after_body = conv3(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv3(num_feat, 3)


# ----------------------------------------------------------------------- RDN
class RDBConv(nn.Module):
    def __init__(self, c_in, growth):
        super().__init__()
        self.conv = nn.Sequential(conv3(c_in, growth), nn.ReLU())

    def forward(self, x):
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    def __init__(self, g0, g, c):
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + i * g, g) for i in range(c)])
        self.LFF = nn.Conv2d(g0 + c * g, g0, 1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """Official EDSR-PyTorch RDN (config B by default); `img_range` is its --rgb_range."""

    def __init__(self, upscale=4, g0=64, d=16, c=8, g=64, img_range=255.0):
        super().__init__()
        self.img_range = img_range
        self.SFENet1 = conv3(3, g0)
        self.SFENet2 = conv3(g0, g0)
        self.RDBs = nn.ModuleList([RDB(g0, g, c) for _ in range(d)])
        self.GFF = nn.Sequential(nn.Conv2d(d * g0, g0, 1), conv3(g0, g0))
        if upscale in (2, 3):
            up = [conv3(g0, g * upscale * upscale), nn.PixelShuffle(upscale), conv3(g, 3)]
        elif upscale == 4:
            up = [conv3(g0, 4 * g), nn.PixelShuffle(2), conv3(g, 4 * g), nn.PixelShuffle(2), conv3(g, 3)]
        else:
            raise ValueError("scale must be 2, 3 or 4")
        self.UPNet = nn.Sequential(*up)

    def forward(self, x):
        # srkit's interface is [0, 1]; the official network sees [0, rgb_range].
        f1 = self.SFENet1(x * self.img_range)
        h = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            h = block(h)
            outs.append(h)
        h = self.GFF(torch.cat(outs, 1)) + f1
        return self.UPNet(h) / self.img_range


# ------------------------------------------------------------------- RRDBNet
def pixel_unshuffle(x, r):
    b, c, hh, ww = x.shape
    return x.view(b, c, hh // r, r, ww // r, r).permute(0, 1, 3, 5, 2, 4).reshape(b, c * r * r, hh // r, ww // r)


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat, num_grow_ch):
        super().__init__()
        for i in range(5):
            c_out = num_feat if i == 4 else num_grow_ch
            setattr(self, f"conv{i + 1}", conv3(num_feat + i * num_grow_ch, c_out))

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = conv3(3 * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = conv3(num_feat, num_feat)
        self.conv_up1 = conv3(num_feat, num_feat)
        self.conv_up2 = conv3(num_feat, num_feat)
        self.conv_hr = conv3(num_feat, num_feat)
        self.conv_last = conv3(num_feat, 3)

    def forward(self, x):
        lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(lrelu(self.conv_hr(feat)))


# ---------------------------------------------------------------------- cases
ARCHS = {"edsr": EDSR, "rcan": RCAN, "rdn": RDN, "rrdbnet": RRDBNet}

# (case, arch, constructor kwargs, input H, W)
CASES = [
    ("edsr_x2", "edsr", dict(num_feat=16, num_block=2, upscale=2, res_scale=1.0), 12, 10),
    ("edsr_x3", "edsr", dict(num_feat=16, num_block=2, upscale=3, res_scale=0.1), 12, 10),
    ("rcan_x2", "rcan", dict(num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=2), 12, 10),
    (
        "rcan_x4",
        "rcan",
        dict(num_feat=8, num_group=1, num_block=2, squeeze_factor=4, upscale=4, res_scale=0.5),
        12,
        10,
    ),
    ("rdn_x2", "rdn", dict(upscale=2, g0=16, d=2, c=3, g=8), 12, 10),
    ("rdn_x4", "rdn", dict(upscale=4, g0=16, d=2, c=3, g=8), 12, 10),
    ("rrdbnet_x4", "rrdbnet", dict(scale=4, num_feat=16, num_block=2, num_grow_ch=8), 12, 10),
    ("rrdbnet_x2", "rrdbnet", dict(scale=2, num_feat=8, num_block=1, num_grow_ch=8), 12, 10),
    ("rrdbnet_x1", "rrdbnet", dict(scale=1, num_feat=8, num_block=1, num_grow_ch=8), 12, 8),
]

# The papers' models, as srkit's `XxxConfig::default()` builds them.
DEFAULTS = {
    "edsr": dict(num_feat=256, num_block=32, upscale=4, res_scale=0.1),
    "edsr_baseline": dict(num_feat=64, num_block=16, upscale=4),
    "rcan": dict(),
    "rdn": dict(),
    "rrdbnet": dict(),
}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def randomize(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.05)


# --------------------------------------------------- optional BasicSR check
def load_basicsr(root):
    """Imports BasicSR's edsr/rcan/rrdbnet archs from `root` without the rest of the package."""
    root = pathlib.Path(root) / "basicsr"

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class Registry:
        def register(self, *a, **k):
            return lambda cls: cls

    class DeformStub(nn.Module):
        pass

    stub("basicsr")
    stub("basicsr.archs")
    stub("basicsr.ops")
    stub("basicsr.ops.dcn", ModulatedDeformConvPack=DeformStub, modulated_deform_conv=None)
    stub("basicsr.utils", get_root_logger=lambda *a, **k: None)
    stub("basicsr.utils.registry", ARCH_REGISTRY=Registry())
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            stub("torchvision", __version__="0.0.0")
    mods = {}
    for name in ["arch_util", "edsr_arch", "rcan_arch", "rrdbnet_arch"]:
        full = f"basicsr.archs.{name}"
        spec = importlib.util.spec_from_file_location(full, root / "archs" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return {
        "edsr": lambda num_feat=64, num_block=16, upscale=4, res_scale=1.0: mods["edsr_arch"].EDSR(
            3, 3, num_feat=num_feat, num_block=num_block, upscale=upscale, res_scale=res_scale
        ),
        # BasicSR's RCAN defaults to num_block 16; the paper (and srkit's default) use 20.
        "rcan": lambda num_block=20, **kw: mods["rcan_arch"].RCAN(3, 3, num_block=num_block, **kw),
        "rrdbnet": lambda **kw: mods["rrdbnet_arch"].RRDBNet(3, 3, **kw),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--basicsr", help="folder holding the basicsr package, to cross-check against")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/arch_parity.safetensors"))
    args = ap.parse_args()
    basicsr = load_basicsr(args.basicsr) if args.basicsr else None

    tensors, configs = {}, {}
    for i, (case, arch, kw, h, w) in enumerate(CASES):
        torch.manual_seed(1000 + i)
        net = ARCHS[arch](**kw)
        randomize(net)
        x = torch.rand(1, 3, h, w)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        with torch.no_grad():
            y = net.double()(x.double()).float()
        tensors[f"{case}.input"] = x
        tensors[f"{case}.output"] = y
        for k, v in state.items():
            tensors[f"{case}.param.{k}"] = v
        configs[case] = {"arch": arch, **kw}
        if basicsr and arch in basicsr:
            ref = basicsr[arch](**kw)
            ref.load_state_dict(state, strict=True)
            with torch.no_grad():
                y_ref = ref.double()(x.double()).float()
            err = (y_ref - y).abs().max().item()
            assert err < 1e-6, f"{case}: BasicSR differs by {err}"
            print(f"{case}: BasicSR {type(ref).__name__} agrees (max diff {err:.2e})")
        print(f"{case}: {n_params(net)} parameters, input {tuple(x.shape)} -> output {tuple(y.shape)}")

    counts = {}
    for name, kw in DEFAULTS.items():
        arch = name.split("_")[0]
        counts[name] = n_params(ARCHS[arch](**kw))
        if basicsr and arch in basicsr:
            ref_count = n_params(basicsr[arch](**kw))
            assert ref_count == counts[name], f"{name}: BasicSR has {ref_count} parameters, we {counts[name]}"
        print(f"default {name} {kw}: {counts[name]:,} parameters")

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out), metadata={"configs": json.dumps(configs), "default_param_counts": json.dumps(counts)})
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
