import pytest
import torch

from benchmarks.scan import (
    bench_bandwidth,
    bench_vs_loop,
    bench_vs_lstm,
    measure,
    sequential_recurrence,
    timed_backends,
)
from plstm_geometric.functional import linear_recurrence


def test_sequential_baseline_is_the_recurrence():
    decay, impulse = torch.rand(2, 30, 3, dtype=torch.float64), torch.randn(2, 30, 3, dtype=torch.float64)
    torch.testing.assert_close(sequential_recurrence(decay, impulse), linear_recurrence(decay, impulse))


def test_measure_runs_each_closure_repeats_plus_one_warmup_round():
    calls = []
    times = measure([lambda: calls.append("a"), lambda: calls.append("b")], torch.device("cpu"), 3)
    assert calls == ["a", "b"] * 4 and len(times) == 2 and all(t >= 0 for t in times)


def test_tables_at_tiny_sizes():
    device = torch.device("cpu")
    loop = bench_vs_loop(device, 64, 4, 1)
    assert loop.count("\n") == 3 and "speed-up" in loop and "forward + backward" in loop
    lstm = bench_vs_lstm(device, [64, 128], 4, 1)
    assert lstm.count("\n") == 3 and "| 128 |" in lstm
    bandwidth = bench_bandwidth(device, 2**12, 1)
    assert "[4, 16, 64]" in bandwidth


def test_triton_column_next_to_torch():
    pytest.importorskip("triton")  # on CPU the kernels run in Triton's interpreter (tests/conftest.py)
    loop = bench_vs_loop(torch.device("cpu"), 64, 4, 1, backends=("torch", "triton"))
    assert loop.count("\n") == 3 and "triton scan (ms)" in loop and "speed-up (triton)" in loop
    backends, reason = timed_backends(torch.device("cpu"))
    assert backends == ("torch",) and "interpreter" in reason
