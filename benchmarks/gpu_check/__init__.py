"""One prepared check that measures every CUDA path of plstm_geometric in one short run.

    python -m benchmarks.gpu_check --out DIR --commit SHA               # on a CUDA machine: the full check
    python -m benchmarks.gpu_check --out DIR --device cpu --quick       # small sizes, the CI smoke run
    python -m benchmarks.gpu_check --out DIR --items dag grid           # rerun some items only

It needs torch, torch_geometric, triton (for the Triton paths) and pytest (for ``gpu_tests``); no ogb, no
rdkit, no network, and it installs nothing. The molecule and peptide batches are read from
``benchmarks/gpu_data/`` (:mod:`benchmarks.data`).

Items (:mod:`.items`, one module each), in order, with their time caps on the full run (seconds):

============  ====  =====================================================================================
item          cap   what it measures
============  ====  =====================================================================================
gpu_tests     140   ``python -m pytest -m gpu -q`` as a subprocess: pass / fail / error counts, output tail
dag            70   forward+backward of every ``plstm_dag`` backend of the registry and PyG ``GINConv`` of
                    the same width (hidden 64 = 4 heads x 16) on 128 and 1,024 NCI molecules and 64 LRGB
                    peptides; CUDA peak memory; each backend's max deviation from the reference backend
grid           40   ``plstm_grid`` forward+backward of every backend, one sweep, 24x24 grid, batch 64,
                    3 heads, K = V = 64, each with its CUDA peak memory
chain          50   a 100,000-node chain through ``plstm_dag``: plan build, the backend ``auto`` picks for
                    it against the reference level sweep
scan           35   every ``linear_recurrence`` backend (B = 1, T = 65,536, D = 32, forward and
                    forward+backward) and the forward scan's bandwidth against ``clone`` at B*T*D = 2^28
lstm           25   ``GILRLSTM`` vs ``torch.nn.LSTM`` (cuDNN), 32 -> 32 channels, batch 1, T = 16,384:
                    steps per second, forward and forward+backward
training       50   forward+backward+AdamW steps of ``PLSTMGraphModel`` (128 NCI molecules), of the LRGB
                    Peptides-func pLSTM (hidden 112, 2 blocks, 4 heads) on the 64 shipped peptides with
                    their structures precomputed as the training CLI does, and of ``PLSTMVis`` (32 random
                    32x32 images)
============  ====  =====================================================================================

The backends come from the ops' registries (:mod:`benchmarks.backends`). The caps add up to 410 s; with the
start of each item's process the whole run stays under 8 minutes on an H100 (``--budget``, default 460 s,
also bounds the total: an item that would start past it is recorded as ``skipped: cap``).
``--cap NAME=SECONDS`` changes one cap.

Caps are enforced twice (:mod:`benchmarks.harness`): cooperatively (repeats stop and remaining measurements
are skipped once an item's deadline passes) and hard. On CUDA each item runs in its own process
(``--isolate``, the default there), so a kernel fault that poisons the CUDA context, a crash or a hang
costs that item only; the process is killed ``KILL_GRACE_S`` after its cap. In-process (the default on
CPU, where starting a process costs seconds) the hard cap is a ``SIGALRM``.

Output: ``DIR/gpu_check.json`` and ``DIR/gpu_check.md``, rewritten (atomically) after every measurement, so
a run cut short leaves everything it measured. The header records device, versions (torch, torch_geometric,
triton, CUDA, cuDNN), git commit (``--commit`` overrides; ``unknown`` outside a git checkout) and date.
Every measurement is one row ``{workload, method, metric, value, unit, status, ...}`` of its item; the
``dag`` item's ``info`` holds each workload's graph statistics (nodes, edges, levels, component sizes,
contracted levels, the backend ``auto`` picks), so that a rule for ``backend="auto"`` can be read off the
rows. Item status is ``ok``, ``error`` (with the exception and a traceback tail), ``partial: cap``,
``skipped: cap``, ``skipped: no CUDA``, or for ``gpu_tests`` ``tests failed``; a row's status is ``ok``,
``error: ...`` or ``skipped: ...``.

Timing (:func:`benchmarks.harness.measure`): CUDA events on CUDA, ``time.perf_counter`` on CPU, warm-up
first, then the median of repeats; repeats stop early once one measurement's runs add up to
``ROW_BUDGET_S``. Peak memory is ``torch.cuda.max_memory_allocated`` over one call after a reset (it
includes the inputs; ``allocated_before_mib`` says how much of it they are).

``--quick`` runs the same code with small sizes and one repeat (the ``gpu_tests`` item is skipped without
CUDA). Off CUDA the backends that run Triton kernels are recorded as ``skipped: needs CUDA``: Triton's CPU
interpreter would take minutes at any useful size, times nothing about the kernels, and the kernels'
correctness under the interpreter is covered by the test suite.
"""

from .cli import BUDGET_S, QUICK_BUDGET_S, main, parse_caps
from .gpu_tests import pytest_counts
from .items import CAPS, ITEMS, WORKLOADS
from .recorder import ROW_BUDGET_S, ItemRun
from .runner import KILL_GRACE_S, run_item_here, run_item_isolated

__all__ = [
    "BUDGET_S",
    "CAPS",
    "ITEMS",
    "KILL_GRACE_S",
    "QUICK_BUDGET_S",
    "ROW_BUDGET_S",
    "WORKLOADS",
    "ItemRun",
    "main",
    "parse_caps",
    "pytest_counts",
    "run_item_here",
    "run_item_isolated",
]
