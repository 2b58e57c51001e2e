"""TorchServe's model: a torch MLP 64->256->256->10, saved as TorchScript."""

import sys

import numpy as np
import torch
from torch import nn

out = sys.argv[1]
torch.manual_seed(0)
m = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
X = torch.rand(512, 64)
y = torch.randint(0, 10, (512,))
opt = torch.optim.Adam(m.parameters())
for _ in range(20):
    opt.zero_grad()
    nn.functional.cross_entropy(m(X), y).backward()
    opt.step()
m.eval()
torch.jit.script(m).save(f"{out}/mlp.pt")
np.save(f"{out}/sample.npy", np.random.RandomState(1).rand(8, 64).astype(np.float32))
