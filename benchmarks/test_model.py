"""Whole model: a CGA U-Net training step vs the baseline U-Net (the SAM's overhead), with GroupNorm and with
BatchNorm (which runs channels-last on the CPU)."""

import pytest
import torch

from cga_model import CGALoss, CGAUNet
from cga_model.nn.layout import to_fast_layout

from .measure import flops_of, params_of

SIZE = 64


@pytest.mark.parametrize("norm", ["gn", "bn"])  # bn: channels-last-3d weights on the CPU (cga_model.nn.layout)
@pytest.mark.parametrize("sam", [False, True], ids=["baseline", "cga"])
def test_training_step(benchmark, sam, norm):
    torch.manual_seed(0)
    model = to_fast_layout(CGAUNet(base_channels=16, sam=sam, norm=norm), "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = CGALoss(inter_start_epoch=0)
    x = torch.randn(1, 4, SIZE, SIZE, SIZE)
    labels = torch.randint(0, 4, (1, SIZE, SIZE, SIZE))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), labels, epoch=0).total.backward()
        optimizer.step()

    benchmark.group = f"model step 1x4x{SIZE}^3"
    benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(params=params_of(model), forward_flops=flops_of(lambda: model(x)))
