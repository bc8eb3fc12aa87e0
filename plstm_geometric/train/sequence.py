r"""Long-range sign task (Hochreiter & Schmidhuber 1997, experiment 2b) with a GILR-LSTM.

Each sequence has :math:`T` one-hot vectors in :math:`p` dimensions. The first vector is
:math:`+e_1` or :math:`-e_1` (probability 1/2 each); vectors :math:`1 \dots T-1` are drawn uniformly from
the other :math:`p - 1` symbols :math:`e_2 \dots e_p`, so nothing after :math:`t = 0` carries information
(experiment 2b: no local regularities). The label is the sign of the first vector, to be predicted from
the last step, :math:`T - 1` steps later. A 2-layer GILR-LSTM with a linear readout on its last output is
trained with Adam on fresh batches; its decay gates start from the chrono initialisation
(:math:`T_{max} = T`), without which the label's gradient never reaches step 0.

**Solved** means: on a fresh validation batch (``val_size`` sequences, drawn from its own generator, never
trained on), evaluated every ``eval_every`` steps, the accuracy is at least ``target_accuracy``
(default 0.99). The result reports the training steps and the wall-clock seconds until then.

Batches are generated on the device as symbol indices ``[B, T]`` (int64) plus the values of the
non-zero entries ``[B, T]`` (the sign at :math:`t = 0`, 1 elsewhere): the dense one-hot ``[B, T, p]`` is
never built, because the first layer's input projection :math:`W x + b` of a scaled one-hot is a row
lookup of :math:`W^\top` (an embedding), times the value, plus :math:`b`.

Run ``python -m plstm_geometric.train.sequence --seq-len 1024 --out runs/sign-1024``: ``--out`` is the run
folder (default ``runs/sign-<seq-len>-<seed>``, locked while the run lives), which gets ``results.json``.
A run whose training loss becomes NaN or infinite stops with an error.
"""

import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from plstm_geometric.nn.gilr import GILRLSTM

from .arguments import (
    DEFAULT_THREADS,
    THREADS_HELP,
    device_name,
    float_in,
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
    thread_count,
)
from .errors import Diverged, run_cli
from .files import RunFolder
from .record import make_record, write_record
from .runs import resolve_device, set_threads

PROG = "python -m plstm_geometric.train.sequence"
# the entries of train_sign_task's result that configure the run (the run record's config)
SIGN_CONFIG_KEYS = (
    "seq_len",
    "batch_size",
    "hidden_channels",
    "lr",
    "max_steps",
    "num_symbols",
    "num_layers",
    "eval_every",
    "val_size",
    "target_accuracy",
    "chrono",
    "device",
    "seed",
)


def make_sign_batch(batch_size: int, seq_len: int, num_symbols: int, generator: torch.Generator, device) -> tuple:
    r"""One batch of the sign task, as sparse one-hots.

    Returns:
        ``(symbols, values, labels)``: ``symbols`` int64 ``[B, T]`` (0 at :math:`t = 0`, uniform in
        :math:`1 \dots p-1` after), ``values`` float ``[B, T]`` (the one-hot's non-zero entry:
        :math:`\pm 1` at :math:`t = 0`, 1 after), ``labels`` float ``[B]`` in :math:`\{0, 1\}`
        (1 for :math:`+e_1`). The dense input is ``values[..., None] * one_hot(symbols, p)``.
    """
    symbols = torch.randint(1, num_symbols, (batch_size, seq_len), generator=generator, device=device)
    symbols[:, 0] = 0
    labels = torch.randint(0, 2, (batch_size,), generator=generator, device=device).float()
    values = torch.ones(batch_size, seq_len, device=device)
    values[:, 0] = 2 * labels - 1
    return symbols, values, labels


class SignTaskModel(torch.nn.Module):
    r"""Stacked :class:`~plstm_geometric.nn.GILRLSTM` layers and a linear readout of the last step.

    The first layer's input projection is a lookup (see the module docstring), so inputs are the
    ``(symbols, values)`` pairs of :func:`make_sign_batch`; the output is one logit per sequence.
    ``max_timescale`` is passed to every layer (chrono initialisation of the decay gates).
    """

    def __init__(self, num_symbols: int, hidden_channels: int, num_layers: int = 2, max_timescale: float | None = None):
        super().__init__()
        self.num_symbols = num_symbols
        self.layers = torch.nn.ModuleList(
            [
                GILRLSTM(num_symbols if i == 0 else hidden_channels, hidden_channels, max_timescale=max_timescale)
                for i in range(num_layers)
            ]
        )
        self.readout = torch.nn.Linear(hidden_channels, 1)

    def forward(self, symbols: Tensor, values: Tensor) -> Tensor:
        first = self.layers[0].lin
        # W (values * e_symbol) + b without the one-hot: column `symbol` of W, scaled.
        projected = F.embedding(symbols, first.weight.t()) * values.unsqueeze(-1) + first.bias
        h = self.layers[0].forward_projected(projected)
        for layer in self.layers[1:]:
            h = layer(h)
        return self.readout(h[:, -1]).squeeze(-1)


def _check_sign_task(seq_len: int, num_symbols: int) -> None:
    if seq_len < 1:
        raise ValueError(f"seq_len: expected >= 1, got {seq_len}")
    if num_symbols < 2:
        raise ValueError(
            f"num_symbols: expected >= 2 (the signed first symbol and at least one other), got {num_symbols}"
        )


@torch.no_grad()
def _accuracy(model, batch) -> float:
    symbols, values, labels = batch
    return ((model(symbols, values) > 0).float() == labels).float().mean().item()


def train_sign_task(
    seq_len: int = 1024,
    batch_size: int = 32,
    hidden_channels: int = 16,
    lr: float = 1e-2,
    max_steps: int = 2000,
    num_symbols: int = 128,
    num_layers: int = 2,
    eval_every: int = 10,
    val_size: int = 256,
    target_accuracy: float = 0.99,
    chrono: bool = True,
    device: str = "cpu",
    seed: int = 0,
    log_every: int = 0,
) -> dict:
    r"""Train :class:`SignTaskModel` on the sign task until solved or ``max_steps``.

    With ``chrono=True`` the decay gates get the chrono initialisation with :math:`T_{max}` = ``seq_len``
    (see :class:`~plstm_geometric.nn.GILRLSTM`); with the default initialisation the decays start near
    1/2, no gradient from the label reaches step 0 and the task is not learnt at :math:`T = 1024`
    (measured: chance accuracy after 400 steps, where chrono solves it in ~200).

    Returns:
        dict: the configuration plus ``solved`` (bool), ``steps`` (training steps until solved, or
        ``max_steps``), ``seconds`` (wall clock of the training loop), ``val_accuracy`` (last
        evaluation), ``loss`` (last training loss), ``steps_per_second`` and ``history``
        (``[step, loss, val_accuracy]`` at each evaluation).
    """
    arguments = dict(locals())  # the configuration, as called
    _check_sign_task(seq_len, num_symbols)
    device = torch.device(device)
    torch.manual_seed(seed)
    train_generator = torch.Generator(device=device).manual_seed(seed)
    val_generator = torch.Generator(device=device).manual_seed(seed + 1)
    model = SignTaskModel(
        num_symbols, hidden_channels, num_layers, max_timescale=max(seq_len, 3) if chrono else None
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    config = {name: value for name, value in arguments.items() if name != "log_every"}
    config["device"] = str(device)

    history = []
    solved = False
    val_accuracy = math.nan
    step = 0
    start = time.perf_counter()
    while step < max_steps and not solved:
        step += 1
        symbols, values, labels = make_sign_batch(batch_size, seq_len, num_symbols, train_generator, device)
        loss = F.binary_cross_entropy_with_logits(model(symbols, values), labels)
        if not torch.isfinite(loss):
            raise Diverged(f"step {step}: training loss {loss.item()}: the run diverged; lower --lr")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == max_steps:
            val_accuracy = _accuracy(model, make_sign_batch(val_size, seq_len, num_symbols, val_generator, device))
            solved = val_accuracy >= target_accuracy
            history.append([step, loss.item(), val_accuracy])
            if log_every and (step % log_every < eval_every or solved):
                print(
                    f"step {step:6d}  loss {loss.item():.4f}  val acc {val_accuracy:.4f}  "
                    f"{time.perf_counter() - start:.1f}s",
                    flush=True,
                )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return dict(
        config,
        solved=solved,
        steps=step,
        seconds=seconds,
        val_accuracy=val_accuracy,
        loss=loss.item(),
        steps_per_second=step / seconds,
        history=history,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--seq-len", type=positive_int, default=1024, help="sequence length T")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="sequences per step")
    parser.add_argument("--hidden", type=positive_int, default=16, help="hidden channels of each GILR-LSTM layer")
    parser.add_argument("--layers", type=positive_int, default=2, help="GILR-LSTM layers")
    parser.add_argument("--lr", type=positive_float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--max-steps", type=positive_int, default=2000, help="training steps at most")
    parser.add_argument("--symbols", type=int_at_least(2), default=128, help="one-hot dimension p")
    parser.add_argument("--eval-every", type=positive_int, default=10, help="steps between validations")
    parser.add_argument("--val-size", type=positive_int, default=256, help="validation sequences")
    parser.add_argument(
        "--target-accuracy", type=float_in(0.0, 1.0), default=0.99, help="validation accuracy that counts as solved"
    )
    parser.add_argument("--no-chrono", action="store_true", help="default instead of chrono initialisation")
    parser.add_argument("--device", type=device_name, default="auto", help="'auto' picks cuda when available")
    parser.add_argument("--threads", type=thread_count, default=DEFAULT_THREADS, help=THREADS_HELP)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights and batches")
    parser.add_argument("--log-every", type=non_negative_int, default=50, help="print every this many steps (0: never)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/sign-<seq-len>-<seed>)")
    return parser


def run(argv=None) -> dict:
    """The command line's run: the result of :func:`train_sign_task`, also written to
    ``<out>/results.json``."""
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = os.path.join("runs", f"sign-{args.seq_len}-{args.seed}")
    set_threads(args.threads)
    with RunFolder(args.out) as folder:
        result = train_sign_task(
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            hidden_channels=args.hidden,
            lr=args.lr,
            max_steps=args.max_steps,
            num_symbols=args.symbols,
            num_layers=args.layers,
            eval_every=args.eval_every,
            val_size=args.val_size,
            target_accuracy=args.target_accuracy,
            chrono=not args.no_chrono,
            device=str(resolve_device(args.device)),
            seed=args.seed,
            log_every=args.log_every,
        )
        status = "solved" if result["solved"] else "not solved"
        print(
            f"{status} after {result['steps']} steps in {result['seconds']:.1f}s "
            f"(val acc {result['val_accuracy']:.4f}, {result['steps_per_second']:.2f} steps/s)"
        )
        config = {key: result[key] for key in SIGN_CONFIG_KEYS}
        record = make_record("sequence", config, finished=True, metric="accuracy", lower_is_better=False, extra=result)
        write_record(folder.path, record)
    return record


def main(argv=None) -> int:
    """The command line (console script ``plstm-train-sequence``): exit status 0, 1 on a run error, 2 on bad
    flags."""
    return run_cli(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
