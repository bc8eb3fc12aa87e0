"""What the models share: argument checks (graph-level and patch-grid vision models), readouts and the
initialisation of OGB's encoders."""

from collections.abc import Iterable

import torch
from torch import Tensor
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}
ENCODERS = ("ogb", "linear")


def readout(pool: str, h: Tensor, batch: Tensor, num_graphs: int, data) -> Tensor:
    """Pools node states ``h`` per graph with ``POOLS[pool]``; when ``data`` has a boolean
    ``readout_mask`` ``[N]``, only the marked nodes are pooled (a readout at chosen nodes, e.g. one query
    node per graph)."""
    mask = getattr(data, "readout_mask", None)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (h.size(0),):
            raise ValueError(
                f"data.readout_mask: expected a bool tensor of shape [{h.size(0)}], got "
                f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}"
            )
        h, batch = h[mask], batch[mask]
    return POOLS[pool](h, batch, size=num_graphs)


def check_graph_model_args(
    hidden_channels: int,
    out_channels: int,
    num_layers: int,
    encoder: str,
    in_channels: int | None,
    pool: str,
    dropout: float,
    pools: Iterable[str] = tuple(POOLS),
) -> None:
    """Raises ``ValueError`` naming the first constructor argument of a graph-level model that is off."""
    for name, value in (
        ("hidden_channels", hidden_channels),
        ("out_channels", out_channels),
        ("num_layers", num_layers),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if encoder not in ENCODERS:
        raise ValueError(f"encoder: expected one of {ENCODERS}, got {encoder!r}")
    if encoder == "linear" and in_channels is None:
        raise ValueError("in_channels: required when encoder='linear'")
    pools = tuple(pools)
    if pool not in pools:
        raise ValueError(f"pool: expected one of {pools}, got {pool!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")


def check_vision_model_args(
    image_size, patch_size: int, in_channels: int, num_classes: int, dim: int, heads: int, depth: int
) -> tuple[int, int]:
    """Raises ``ValueError`` naming the first off argument shared by the patch-grid vision models; returns
    ``image_size`` as an ``(H, W)`` pair."""
    image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for name, value in (
        ("patch_size", patch_size),
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("dim", dim),
        ("heads", heads),
        ("depth", depth),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if len(image_size) != 2 or any(not isinstance(s, int) or s % patch_size or s < 1 for s in image_size):
        raise ValueError(f"image_size: expected positive multiples of patch_size={patch_size}, got {image_size}")
    return image_size


def reset_module(module: torch.nn.Module) -> None:
    """Resets a module whose class may lack ``reset_parameters``: OGB's Atom/BondEncoder initialise their
    embeddings in ``__init__`` only, so their embeddings get that initialisation (Xavier uniform) again."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for child in module.children():
        if isinstance(child, torch.nn.Embedding):
            torch.nn.init.xavier_uniform_(child.weight)
        else:
            reset_module(child)
