"""Does torch_scatter beat torch's own index_add_ on the level sweep's scatter step?

    python -m benchmarks.scatter [--device cuda]

The sweep's only scatter is ``states.index_add_(0, e_out, rows)`` with rows ``[L_level, H, K, V]``.
torch_scatter is an optional extra; plstm_dag uses it only where this benchmark shows a gain, and so far
it shows none (docs/benchmarks.md), so the op is pure torch.
"""

import argparse

import torch

from .harness import measure_many


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    try:
        from torch_scatter import scatter_add
    except ImportError:
        print("torch_scatter is not installed: pip install torch_scatter (builds from source)")
        return None
    device = torch.device(args.device)
    states = torch.randn(2257, 4, 24, 24, device=device)  # 128 NCI molecules, 4 heads, K = V = 24
    print("| rows per level | index_add_ us | torch_scatter us | ratio |")
    print("|---|---|---|---|")
    rows_out = []
    for rows in (50, 200, 1000):
        index = torch.randint(0, states.size(0), (rows,), device=device)
        update = torch.randn(rows, *states.shape[1:], device=device)
        # default arguments bind this iteration's tensors (the lambdas run inside the loop anyway)
        torch_time, scatter_time = (
            timing.median
            for timing in measure_many(
                [
                    lambda index=index, update=update: states.index_add_(0, index, update),
                    lambda index=index, update=update: scatter_add(update, index, dim=0, out=states),
                ],
                device,
                args.repeats,
            )
        )
        rows_out.append((rows, torch_time, scatter_time))
        print(f"| {rows} | {torch_time * 1e6:.1f} | {scatter_time * 1e6:.1f} | {scatter_time / torch_time:.2f} |")
    return rows_out


if __name__ == "__main__":
    main()
