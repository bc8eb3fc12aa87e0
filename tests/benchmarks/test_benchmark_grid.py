import math
import sys

import pytest
import torch

from benchmarks import grid
from benchmarks.timing import peak_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU peak memory is read from /proc")
def test_cpu_peak_memory_sees_a_temporary_allocation():
    def allocate_64_mib():
        block = torch.ones(16, 2**20)  # 64 MiB of float32, freed on return
        return float(block[0, 0])

    measured = peak_memory(allocate_64_mib, torch.device("cpu"))
    assert 60 < measured < 80
    # Freed memory must not hide the next call's peak.
    assert 60 < peak_memory(allocate_64_mib, torch.device("cpu")) < 80


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU peak memory is read from /proc")
def test_cpu_peak_memory_leaves_the_calling_process_untouched():
    # The allocator setting the measurement needs cannot be undone within a process and slowed every later
    # timing: the call must run in another process, and nothing it does may reach this one.
    import os

    seen = []

    def record_pid():
        seen.append(os.getpid())
        torch.ones(2**20)

    assert peak_memory(record_pid, torch.device("cpu")) >= 0
    assert seen == []

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="peak_memory"):
        peak_memory(fail, torch.device("cpu"))


def test_table_lists_every_backend_with_time_and_memory(capsys):
    grid.main(
        [
            "--size",
            "6",
            "5",
            "--batch",
            "2",
            "--heads",
            "1",
            "--channels",
            "4",
            "--repeats",
            "1",
            "--chunk-sizes",
            "2",
            "3",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = {
        line.split()[0] + (" " + line.split()[1] if line.startswith("chunkwise") else ""): line.split()[-3:]
        for line in lines[2:]
    }
    assert set(rows) == {"auto", "chunkwise 2x2", "chunkwise 3x3", "wavefront", "dag"}
    for milliseconds, ratio, mebibytes in rows.values():
        assert float(milliseconds) > 0 and float(ratio) >= 1
        assert sys.platform != "linux" or not math.isnan(float(mebibytes))
