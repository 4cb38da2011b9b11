#!/usr/bin/env python3
"""Builds tests/fixtures/torch_parity.safetensors for tests/nn_torch_parity.rs.

A small SRCNN-like network (conv 9x9 1->8, ReLU, conv 5x5 8->4, ReLU,
conv 5x5 4->1, all 'same' padding) plus an upsampling branch on the
4-channel features (ConvTranspose2d 4->4 k3 s2 p1 op1, PReLU(4),
Conv2d 4->4 k3 p1 groups 2, PixelShuffle(2)). Loss = MSE(srcnn, t1) +
MSE(up, t2). Weights and data are drawn in float32 with fixed seeds; the
reference forward/backward and three Adam steps (PyTorch defaults) run in
float64 and are stored as float32, so the fixture is the exact answer up
to the f32 rounding of the stored values.

Stored keys: input, target_srcnn, target_up, out_srcnn, out_up, loss,
param.<name>, grad.<name> (gradients at the initial weights) and
adam3.<name> (weights after three Adam steps, gradient recomputed each step).

Run: pip install torch safetensors && python3 scripts/make_torch_fixture.py
"""
import pathlib

import torch
import torch.nn as nn
from safetensors.torch import save_file


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 9, padding=4)
        self.conv2 = nn.Conv2d(8, 4, 5, padding=2)
        self.conv3 = nn.Conv2d(4, 1, 5, padding=2)
        self.up_t = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.prelu = nn.PReLU(4)
        self.up_c = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        y1 = self.conv3(h)
        u = self.prelu(self.up_t(h))
        y2 = self.shuffle(self.up_c(u))
        return y1, y2


def main():
    torch.manual_seed(1234)
    net = Net()  # float32 init, PyTorch defaults
    with torch.no_grad():
        net.prelu.weight.copy_(torch.tensor([0.25, 0.1, -0.2, 0.4]))
    x = torch.rand(2, 1, 12, 12)
    t1 = torch.rand(2, 1, 12, 12)
    t2 = torch.rand(2, 1, 48, 48)
    out = {"input": x, "target_srcnn": t1, "target_up": t2}
    for n, p in net.named_parameters():
        out["param." + n] = p.detach().clone()

    net = net.double()
    xd, t1d, t2d = x.double(), t1.double(), t2.double()
    opt = torch.optim.Adam(net.parameters())
    for step in range(3):
        opt.zero_grad()
        y1, y2 = net(xd)
        loss = nn.functional.mse_loss(y1, t1d) + nn.functional.mse_loss(y2, t2d)
        loss.backward()
        if step == 0:
            out["out_srcnn"] = y1.detach()
            out["out_up"] = y2.detach()
            out["loss"] = loss.detach().reshape(1)
            for n, p in net.named_parameters():
                out["grad." + n] = p.grad.detach().clone()
        opt.step()
    for n, p in net.named_parameters():
        out["adam3." + n] = p.detach().clone()

    out = {k: v.float().contiguous() for k, v in out.items()}
    dst = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch_parity.safetensors"
    save_file(out, str(dst))
    print(f"wrote {dst} ({dst.stat().st_size} bytes), loss {out['loss'].item():.6f}")


if __name__ == "__main__":
    main()
