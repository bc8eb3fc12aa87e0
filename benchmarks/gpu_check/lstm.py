"""Item ``lstm``: ``GILRLSTM`` against ``torch.nn.LSTM`` (cuDNN on CUDA) at batch 1 and a long sequence."""

from pathlib import Path

import torch

from .recorder import ItemRun


def item_lstm(run: ItemRun, out: Path) -> str:
    from plstm_geometric.nn import GILRLSTM

    length, channels = (256, 32) if run.quick else (16384, 32)
    repeats, warmup = (1, 1) if run.quick else (5, 1)
    workload = f"batch 1, T{length}, {channels}->{channels}"
    run.info("sequence_length", length)
    lstm_name = "nn.LSTM (cuDNN)" if run.cuda else "nn.LSTM"
    layers = {
        "GILRLSTM": GILRLSTM(channels, channels).to(run.device),
        lstm_name: torch.nn.LSTM(channels, channels, batch_first=True).to(run.device),
    }
    x = torch.randn(1, length, channels, generator=torch.Generator().manual_seed(0)).to(run.device)
    x.requires_grad_()
    for name, layer in layers.items():

        def forward(layer=layer):
            with torch.no_grad():
                layer(x)

        def training(layer=layer):
            out = layer(x)
            (out[0] if isinstance(out, tuple) else out).sum().backward()

        for metric, fn in (("fwd", forward), ("fwd_bwd", training)):
            seconds = run.timed(workload, name, fn, repeats, warmup, metric=f"{metric}_ms")
            if seconds:
                run.add(workload, name, f"{metric}_steps_per_s", length / seconds, "steps/s")
    return "ok"
