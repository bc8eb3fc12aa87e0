"""Run plumbing that needs torch: devices and threads, seeding and RNG state, safe checkpoints, the
learning-rate schedule.

Checkpoints hold only tensors, numbers, strings, lists and dicts and are loaded with
``torch.load(weights_only=True)``: loading one never runs code. The torch-free parts of a run live
beside this module: :mod:`.arguments`, :mod:`.errors`, :mod:`.files` and :mod:`.record`.
"""

import math
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from .errors import RunError
from .files import atomic_write


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available; a bare ``cuda`` -> the process's local rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def device_description(device: torch.device) -> str:
    return str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- checkpoints
def rng_state() -> dict:
    """The torch, CUDA, NumPy and Python RNG states as tensors, numbers and lists (safe to load)."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """Writes ``checkpoint`` atomically; it must hold only what :func:`load_checkpoint` accepts."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: Path, required=()) -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code runs), as a dict with the
    ``required`` keys; anything else raises a :class:`RunError` that names the file and the way out."""
    fix = (
        f"delete {path} (or the run folder) to train from scratch, or choose another --out; checkpoints "
        "written by plstm_geometric hold only tensors, numbers, strings, lists and dicts"
    )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch reports garbage and refused objects alike; a refused object is named as a GLOBAL
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line), None)
        if detail is not None:
            raise RunError(
                f"{path}: refused to load: it holds objects other than tensors, numbers, strings, "
                f"lists and dicts, which could run code ({detail.strip()}); {fix}"
            ) from None
        detail = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "")
        raise RunError(f"{path}: damaged checkpoint ({detail.strip()}); {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AssertionError, IndexError) as error:
        raise RunError(f"{path}: damaged checkpoint ({type(error).__name__}: {error}); {fix}") from None
    if not isinstance(checkpoint, dict):
        raise RunError(f"{path}: damaged checkpoint (expected a dict, got {type(checkpoint).__name__}); {fix}")
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise RunError(f"{path}: damaged or foreign checkpoint (no {', '.join(map(repr, missing))}); {fix}")
    return checkpoint


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor: linear from ``1 / warmup_steps`` up to 1, then cosine down to 0 at the end."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
