"""Forward+backward of plstm_grid: the chunkwise form, the dense wavefront and the grid-DAG adapter.

    python -m benchmarks.grid                       # CPU: 24x24, batch 8, 3 heads, K=V=16
    python -m benchmarks.grid --chunk-sizes 4 6 8 12   # chunkwise at several chunk sizes
    python -m benchmarks.grid --device cuda --batch 64 --channels 64   # the full GPU workload

Random unit-normal query/key/value and sigmoid gates in float32 (``--dtype``); the loss is ``out.sum()``.
Each backend of the registry is timed separately (median of ``--repeats`` after a warm-up), and the peak
memory that one forward+backward adds is reported (:func:`benchmarks.harness.peak_memory`: allocator peak
on CUDA, resident-set peak on CPU). ``auto`` is listed with the backend it picked.
"""

import argparse

import torch

from plstm_geometric.functional import grid
from plstm_geometric.functional.grid import GATE_NAMES, GridGates, choose_backend, plstm_grid
from plstm_geometric.functional.grid.chunkwise import default_chunk_size
from plstm_geometric.graph.grid import check_chunk_size

from .harness import measure, peak_memory, torch_threads

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def grid_workload(
    batch: int, X: int, Y: int, heads: int, channels: int, device: torch.device, dtype: torch.dtype = torch.float32
):
    """Leaf tensors for :func:`plstm_grid`: ``[batch, X, Y, heads, channels]`` q/k/v and sigmoid gates."""
    generator = torch.Generator(device="cpu").manual_seed(0)

    def leaf(*shape, gate=False):
        tensor = torch.randn(*shape, generator=generator)
        tensor = torch.sigmoid(tensor) if gate else tensor
        return tensor.to(device=device, dtype=dtype).requires_grad_()

    inputs = {name: leaf(batch, X, Y, heads, channels) for name in ("query", "key", "value")}
    inputs.update({name: leaf(batch, X, Y, heads, gate=True) for name in GATE_NAMES})
    return inputs


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(24, 24), metavar=("X", "Y"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--channels", type=int, default=16, help="K = V per head")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recompute-states", action="store_true")
    parser.add_argument("--backends", nargs="+", choices=grid.BACKENDS, default=list(grid.BACKENDS))
    parser.add_argument(
        "--chunk-sizes",
        type=int,
        nargs="+",
        default=None,
        help="chunk edge lengths to time the chunkwise backend at (default: its own rule)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); on an oversubscribed machine 1 avoids "
        "OpenMP wake-up stalls that dominate many small ops",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with torch_threads(args.threads):
        return run(args)


def run(args):
    device = torch.device(args.device)
    X, Y = args.size
    inputs = grid_workload(args.batch, X, Y, args.heads, args.channels, device, DTYPES[args.dtype])
    print(
        f"plstm_grid forward+backward: batch {args.batch}, {X}x{Y} grid, {args.heads} heads, "
        f"K = V = {args.channels}, {args.dtype}, device {device}, {torch.get_num_threads()} CPU threads"
    )

    runs = []
    for backend in args.backends:
        sizes = args.chunk_sizes if backend == "chunkwise" and args.chunk_sizes else [None]
        runs.extend((backend, size) for size in sizes)
    rows = []
    for backend, chunk_size in runs:

        def step(backend=backend, chunk_size=chunk_size):
            gates = GridGates(**{name: inputs[name] for name in GATE_NAMES})
            out = plstm_grid(
                inputs["query"],
                inputs["key"],
                inputs["value"],
                gates,
                backend=backend,
                recompute_states=args.recompute_states,
                chunk_size=chunk_size,
            )
            out.float().sum().backward()

        name = backend
        if backend == "auto":
            name = f"auto ({choose_backend(args.batch, X, Y, args.channels, args.channels)})"
        if backend == "chunkwise":
            chunk_x, chunk_y = check_chunk_size(chunk_size or default_chunk_size(args.channels, args.channels, X, Y))
            name = f"chunkwise {chunk_x}x{chunk_y}"
        rows.append((name, measure(step, device, args.repeats).median, peak_memory(step, device).added_mib))

    fastest = min(seconds for _, seconds, _ in rows)
    print(f"{'backend':<22}{'ms':>10}{'x fastest':>11}{'peak MiB':>10}")
    for name, seconds, memory in rows:
        print(f"{name:<22}{seconds * 1e3:>10.1f}{seconds / fastest:>11.2f}{memory:>10.1f}")
    return rows


if __name__ == "__main__":
    main()
