"""tools.compile_timing runs end to end (tiny model, aot_eager) and reports no graph break."""

import pytest

from tools import compile_timing


@pytest.mark.slow
def test_compile_timing_reports_a_graph_without_breaks(capsys):
    pytest.importorskip("rdkit")
    pytest.importorskip("ogb")
    arguments = "--backend aot_eager --molecules 4 --batches 2 --repeats 1 --hidden 8 --heads 2"
    compile_timing.main(arguments.split())
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row.startswith("| torch.compile (aot_eager, dynamic=True) | 0 |"), row
