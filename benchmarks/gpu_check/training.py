"""Item ``training``: forward+backward+AdamW steps of the models: ``PLSTMGraphModel`` on NCI molecules, the
LRGB Peptides-func pLSTM on the shipped peptide batch, and ``PLSTMVis`` on random images."""

from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import graphs_of, load_graphs
from ..harness import seeded
from ..plstm_model import LRGB_PEPTIDES, plstm_graph_model
from .recorder import ItemRun


def item_training(run: ItemRun, out: Path) -> str:
    # Imported here: a failure to import the models (e.g. a missing optional dependency) is this item's error.
    from plstm_geometric.models import PLSTMGraphModel, PLSTMVis

    repeats, warmup = (1, 1) if run.quick else (5, 2)
    graphs, hidden, layers = (16, 16, 1) if run.quick else (128, 64, 2)
    data = load_graphs("nci1024", graphs, run.device)
    with seeded(0):
        model = PLSTMGraphModel(
            hidden, 10, layers, heads=4, encoder="linear", in_channels=data.x.size(1), edge_dim=data.edge_attr.size(1)
        ).to(run.device)
    target = torch.randn(graphs, 10, generator=torch.Generator().manual_seed(0)).to(run.device)
    workload = f"nci{graphs}, hidden {hidden}, {layers} blocks, 4 heads"
    training_rows(run, workload, "PLSTMGraphModel", model, lambda: F.mse_loss(model(data), target), repeats, warmup)
    run.check_time()
    peptides(run, repeats, warmup)
    run.check_time()

    images, side, patch, dim, depth = (2, 8, 2, 12, 1) if run.quick else (32, 32, 4, 96, 2)
    with seeded(0):
        vis = PLSTMVis(side, patch, 3, 10, dim=dim, heads=3, depth=depth).to(run.device)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(images, 3, side, side, generator=generator).to(run.device)
    labels = torch.randint(0, 10, (images,), generator=generator).to(run.device)
    workload = f"{images} images {side}x{side}, patch {patch}, dim {dim}, depth {depth}, 3 heads"
    training_rows(run, workload, "PLSTMVis", vis, lambda: F.cross_entropy(vis(pixels), labels), repeats, warmup)
    return "ok"


def peptides(run: ItemRun, repeats: int, warmup: int) -> None:
    """One training step of the LRGB suite's pLSTM (:data:`~benchmarks.plstm_model.LRGB_PEPTIDES`) on the
    shipped peptides, with their structures precomputed as the training CLI precomputes them."""
    from torch_geometric.data import Batch

    from plstm_geometric.transforms import PreparePLSTM

    config = dict(LRGB_PEPTIDES)
    out_channels = config.pop("out_channels")
    count = 2 if run.quick else 64
    if run.quick:
        config["hidden"] = 16
    graphs = graphs_of("peptides64", count)
    # The CLI prepares the sweeps its blocks run: forward, and reverse from two blocks on.
    directions = ("forward", "reverse") if config["layers"] > 1 else ("forward",)
    batch = Batch.from_data_list(PreparePLSTM(directions=directions).prepare_many(graphs)).to(run.device)
    with seeded(0):
        model = plstm_graph_model(graphs[0], out_channels, **config).to(run.device)
    target = torch.randint(0, 2, (count, out_channels), generator=torch.Generator().manual_seed(2)).float()
    target = target.to(run.device)
    workload = f"peptides{count}, hidden {config['hidden']}, {config['layers']} blocks, {config['heads']} heads"
    run.info("peptides_func_parameters", sum(p.numel() for p in model.parameters()))
    method = "PLSTMGraphModel (peptides-func)"

    def loss():
        return F.binary_cross_entropy_with_logits(model(batch), target)

    training_rows(run, workload, method, model, loss, repeats, warmup, weight_decay=0.0)


def training_rows(run: ItemRun, workload, method, model, loss_fn, repeats, warmup, weight_decay=0.01) -> None:
    """One row of ``step_ms`` (and CUDA peak memory) for forward, backward and an AdamW step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=weight_decay)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    run.timed(workload, method, step, repeats, warmup, metric="step_ms", memory=True)
    if losses:
        run.info(f"{method} losses", [float(loss) for loss in losses])
