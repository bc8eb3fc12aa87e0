"""The check's workloads, in the order they run, with their time caps (seconds) on a full run.

An item is a function ``(run: ItemRun, out: Path) -> status`` that records rows through ``run``; the caps
add up to 410 s, inside the default budget of 460 s for the whole run.
"""

from .chain import item_chain
from .dag import item_dag
from .gpu_tests import item_gpu_tests
from .grid import item_grid
from .lstm import item_lstm
from .scan import item_scan
from .training import item_training

WORKLOADS = (
    ("gpu_tests", 140, item_gpu_tests),
    ("dag", 70, item_dag),
    ("grid", 40, item_grid),
    ("chain", 50, item_chain),
    ("scan", 35, item_scan),
    ("lstm", 25, item_lstm),
    ("training", 50, item_training),
)

CAPS = {name: cap for name, cap, _ in WORKLOADS}
ITEMS = {name: run for name, _, run in WORKLOADS}
