"""Forward+backward of plstm_grid: the dense wavefront backend against the grid-DAG adapter.

    python -m plstm_geometric.benchmarks.grid                       # CPU: 24x24, batch 8, 3 heads, K=V=16
    python -m plstm_geometric.benchmarks.grid --device cuda --batch 64 --channels 64   # the full GPU workload

Random unit-normal query/key/value and sigmoid gates in float32 (``--dtype``); the loss is ``out.sum()``.
Each backend is timed separately (median of ``--repeats`` after a warm-up); on CUDA the peak memory of one
forward+backward is reported (``torch.cuda.max_memory_allocated``), on CPU it is not tracked.
"""
import argparse

import torch

from ..functional.grid import GATE_NAMES, plstm_grid
from .timing import measure, peak_memory

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def grid_workload(batch: int, X: int, Y: int, heads: int, channels: int, device: torch.device,
                  dtype: torch.dtype = torch.float32):
    """Leaf tensors for :func:`plstm_grid`: ``[batch, X, Y, heads, channels]`` q/k/v and sigmoid gates."""
    generator = torch.Generator(device="cpu").manual_seed(0)

    def leaf(*shape, gate=False):
        tensor = torch.randn(*shape, generator=generator)
        tensor = torch.sigmoid(tensor) if gate else tensor
        return tensor.to(device=device, dtype=dtype).requires_grad_()

    inputs = {name: leaf(batch, X, Y, heads, channels) for name in ("query", "key", "value")}
    inputs.update({name: leaf(batch, X, Y, heads, gate=True) for name in GATE_NAMES})
    return inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(24, 24), metavar=("X", "Y"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--channels", type=int, default=16, help="K = V per head")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recompute-states", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); on an oversubscribed machine 1 avoids "
                             "OpenMP wake-up stalls that dominate many small ops")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    X, Y = args.size
    inputs = grid_workload(args.batch, X, Y, args.heads, args.channels, device, DTYPES[args.dtype])
    print(f"plstm_grid forward+backward: batch {args.batch}, {X}x{Y} grid, {args.heads} heads, "
          f"K = V = {args.channels}, {args.dtype}, device {device}, {torch.get_num_threads()} CPU threads")

    rows = []
    for backend in ("wavefront", "dag"):
        def step(backend=backend):
            out = plstm_grid(**inputs, backend=backend, recompute_states=args.recompute_states)
            out.float().sum().backward()

        rows.append((backend, measure(step, device, args.repeats), peak_memory(step, device)))

    fastest = min(seconds for _, seconds, _ in rows)
    print(f"{'backend':<12}{'ms':>10}{'x fastest':>11}{'peak MiB':>10}")
    for name, seconds, memory in rows:
        print(f"{name:<12}{seconds * 1e3:>10.1f}{seconds / fastest:>11.2f}{memory:>10.1f}")


if __name__ == "__main__":
    main()
