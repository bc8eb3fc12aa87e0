"""The measurement harness every benchmark runs on: timing (:mod:`.timing`), peak memory (:mod:`.memory`),
time caps (:mod:`.caps`), process isolation (:mod:`.isolation`) and scoped torch settings (:mod:`.state`)."""

from .caps import CapReached, check_deadline, hard_cap
from .isolation import kill_group, run_isolated
from .memory import Peak, peak_memory
from .state import seeded, torch_threads
from .timing import Timing, measure, measure_many

__all__ = [
    "CapReached",
    "Peak",
    "Timing",
    "check_deadline",
    "hard_cap",
    "kill_group",
    "measure",
    "measure_many",
    "peak_memory",
    "run_isolated",
    "seeded",
    "torch_threads",
]
