"""benchmarks/grid.py at a tiny size: every backend of the registry, with time and memory."""

import math
import sys

from benchmarks import grid
from benchmarks.backends import GRID_BACKENDS


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
    # every backend of the registry, the chunkwise one at each chunk size asked for
    expected = {"auto", "chunkwise 2x2", "chunkwise 3x3"} | (set(GRID_BACKENDS) - {"chunkwise"})
    assert set(rows) == expected
    for milliseconds, ratio, mebibytes in rows.values():
        assert float(milliseconds) > 0 and float(ratio) >= 1
        assert sys.platform != "linux" or not math.isnan(float(mebibytes))
