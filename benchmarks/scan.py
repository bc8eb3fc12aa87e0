"""Benchmark of :func:`plstm_geometric.functional.linear_recurrence`.

Three tables, all measured in one run so that the ratios are side by side:

1. the parallel scan against the sequential Python loop ``h = a[:, t] * h + b[:, t]`` at B = 1, D = 32,
   T = 65,536 (forward, and forward + backward through autograd);
2. steps per second at batch 1 over T = 4,096 ... 131,072: the raw scan (D = 32), a ``GILRLSTM`` layer and
   ``torch.nn.LSTM`` (cuDNN on CUDA), both 32 -> 32 channels, forward and forward + backward;
3. achieved memory bandwidth of the forward scan (it must read ``decay`` and ``impulse`` and write ``h``:
   12 bytes per float32 element) against ``tensor.clone`` (8 bytes per element) at B*T*D = 2**28 on CUDA,
   ``--bandwidth-elements`` (default 2**24) on CPU.

Every scan column is timed for each backend of ``linear_recurrence``'s registry (:mod:`benchmarks.backends`),
except, off CUDA or without triton, those that run Triton kernels (on CPU they would run in Triton's
interpreter). Timings interleave the calls they compare (:func:`benchmarks.harness.measure_many`).

Run ``python -m benchmarks.scan [--device cpu|cuda] [--quick]``.
"""

import argparse
import functools

import torch

from plstm_geometric.functional import scan as scan_op
from plstm_geometric.functional.scan import linear_recurrence
from plstm_geometric.nn.gilr import GILRLSTM

from . import backends as registry
from .harness import measure_many, torch_threads

#: The backends a table compares when it is not told: the reference scan.
DEFAULT_BACKENDS = (registry.reference(scan_op),)


def sequential_recurrence(decay, impulse):
    """The recurrence as a Python loop over time (the baseline a parallel scan replaces)."""
    # unbind, not decay[:, t]: the backward of T separate selects would write T full-size gradients.
    state = torch.zeros_like(decay[:, 0])
    out = []
    for decay_t, impulse_t in zip(decay.unbind(1), impulse.unbind(1)):
        state = decay_t * state + impulse_t
        out.append(state)
    return torch.stack(out, dim=1)


def measure(fns, device, repeats):
    """Median seconds of each closure of ``fns``: one warm-up round, then ``repeats`` rounds."""
    return [timing.median for timing in measure_many(fns, device, repeats, warmup=1)]


def forward_backward(fn, *inputs):
    """A closure running ``fn(*inputs)`` and a backward pass of its sum."""

    def run():
        out = fn(*inputs)
        (out[0] if isinstance(out, tuple) else out).sum().backward()

    return run


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def scans(backends):
    """``linear_recurrence`` bound to each backend name."""
    return [functools.partial(linear_recurrence, backend=backend) for backend in backends]


def bench_vs_loop(device, length, channels, repeats, backends=DEFAULT_BACKENDS):
    decay = torch.rand(1, length, channels, device=device, requires_grad=True)
    impulse = torch.randn(1, length, channels, device=device, requires_grad=True)
    with torch.no_grad():
        *scan_forward, loop_forward = measure(
            [functools.partial(scan, decay, impulse) for scan in scans(backends)]
            + [functools.partial(sequential_recurrence, decay, impulse)],
            device,
            repeats,
        )
    *scan_training, loop_training = measure(
        [forward_backward(scan, decay, impulse) for scan in scans(backends)]
        + [forward_backward(sequential_recurrence, decay, impulse)],
        device,
        repeats,
    )
    rows = [
        [name]
        + [f"{t * 1e3:.2f}" for t in scan_times]
        + [f"{loop_time * 1e3:.1f}"]
        + [f"{loop_time / t:.0f}x" for t in scan_times]
        for name, scan_times, loop_time in [
            ("forward", scan_forward, loop_forward),
            ("forward + backward", scan_training, loop_training),
        ]
    ]
    return table(
        [f"B=1, D={channels}, T={length}"]
        + [f"{backend} scan (ms)" for backend in backends]
        + ["Python loop (ms)"]
        + [f"speed-up ({backend})" for backend in backends],
        rows,
    )


def bench_vs_lstm(device, lengths, channels, repeats, backends=DEFAULT_BACKENDS):
    gilr_lstm = GILRLSTM(channels, channels).to(device)
    lstm = torch.nn.LSTM(channels, channels, batch_first=True).to(device)
    rows = []
    for length in lengths:
        x = torch.randn(1, length, channels, device=device, requires_grad=True)
        decay = torch.rand(1, length, channels, device=device, requires_grad=True)
        impulse = torch.randn(1, length, channels, device=device, requires_grad=True)
        with torch.no_grad():
            forward = measure(
                [functools.partial(scan, decay, impulse) for scan in scans(backends)]
                + [functools.partial(gilr_lstm, x), functools.partial(lstm, x)],
                device,
                repeats,
            )
        training = measure(
            [forward_backward(scan, decay, impulse) for scan in scans(backends)]
            + [forward_backward(gilr_lstm, x), forward_backward(lstm, x)],
            device,
            repeats,
        )
        forward_rate = [length / t for t in forward]
        training_rate = [length / t for t in training]
        # The last two columns of each group are GILR-LSTM and nn.LSTM.
        rows.append(
            [length]
            + [f"{r:,.0f}" for r in forward_rate + training_rate]
            + [f"{forward_rate[-2] / forward_rate[-1]:.1f}x", f"{training_rate[-2] / training_rate[-1]:.1f}x"]
        )
    header = (
        ["T"]
        + [f"scan fwd ({backend})" for backend in backends]
        + ["GILR-LSTM fwd", "nn.LSTM fwd"]
        + [f"scan fwd+bwd ({backend})" for backend in backends]
        + ["GILR-LSTM fwd+bwd", "nn.LSTM fwd+bwd"]
        + ["GILR-LSTM/LSTM fwd", "GILR-LSTM/LSTM fwd+bwd"]
    )
    return table(header, rows)


def bench_bandwidth(device, elements, repeats, backends=DEFAULT_BACKENDS):
    batch_size, channels = 4, 64
    length = elements // (batch_size * channels)
    decay = torch.rand(batch_size, length, channels, device=device)
    impulse = torch.randn(batch_size, length, channels, device=device)
    numel = decay.numel()
    *scan_times, copy = measure(
        [functools.partial(scan, decay, impulse) for scan in scans(backends)] + [impulse.clone], device, repeats
    )
    copy_bandwidth = 8 * numel / copy / 1e9
    rows = []
    for backend, scan in zip(backends, scan_times):
        scan_bandwidth = 12 * numel / scan / 1e9
        rows.append(
            [
                f"[{batch_size}, {length}, {channels}] float32 ({numel:,} elements)",
                backend,
                f"{scan * 1e3:.2f}",
                f"{scan_bandwidth:.1f}",
                f"{copy * 1e3:.2f}",
                f"{copy_bandwidth:.1f}",
                f"{scan_bandwidth / copy_bandwidth:.2f}",
            ]
        )
    return table(
        [
            "shape",
            "backend",
            "scan (ms)",
            "scan GB/s (12 B/elem)",
            "clone (ms)",
            "clone GB/s (8 B/elem)",
            "scan/clone bandwidth",
        ],
        rows,
    )


def timed_backends(device):
    """The ``linear_recurrence`` backends this run times, and why others are left out (or None)."""
    timed = registry.timed(scan_op, device)
    skipped = {
        name: registry.skip_reason(scan_op, name, device) for name in registry.SCAN_BACKENDS if name not in timed
    }
    if not skipped:
        return timed, None
    reasons = {
        "needs CUDA": "on CPU it would run in Triton's (slow) interpreter",
        "needs triton": "triton is not installed",
    }
    return timed, "; ".join(f"{name!r}: {reasons.get(why, why)}" for name, why in skipped.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark linear_recurrence (parallel scan).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not a measurement)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--bandwidth-elements",
        type=int,
        default=None,
        help="B*T*D of the bandwidth test (default 2**28 on CUDA, 2**24 on CPU)",
    )
    parser.add_argument("--max-lstm-length", type=int, default=131072, help="longest T of the LSTM table")
    args = parser.parse_args(argv)
    with torch_threads(args.threads):
        run(args)


def run(args):
    device = torch.device(args.device)
    channels = 32
    loop_length = 4096 if args.quick else 65536
    lstm_lengths = [4096 * 2**k for k in range(6) if 4096 * 2**k <= args.max_lstm_length]
    if args.quick:
        lstm_lengths = lstm_lengths[:2]
    elements = args.bandwidth_elements or (2**28 if device.type == "cuda" else 2**24)
    if args.quick:
        elements = min(elements, 2**20)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# linear_recurrence benchmark on {name} (torch {torch.__version__})\n")
    backends, skipped_because = timed_backends(device)
    if skipped_because:
        print(f"(not timed: {skipped_because})\n")
    print(bench_vs_loop(device, loop_length, channels, args.repeats, backends) + "\n")
    print("Steps per second, batch 1, 32 channels:\n")
    print(bench_vs_lstm(device, lstm_lengths, channels, args.repeats, backends) + "\n")
    print("Memory bandwidth of the forward scan:\n")
    print(bench_bandwidth(device, elements, args.repeats, backends))


if __name__ == "__main__":
    main()
