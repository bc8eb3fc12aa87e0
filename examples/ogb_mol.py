"""OGB's molecular property prediction recipe with the message-passing layer as a switch: GIN or pLSTM.

    python examples/ogb_mol.py --gnn gin     # OGB's GIN baseline
    python examples/ogb_mol.py --gnn plstm   # the same model with PLSTMConv in place of GINConv

The shape of OGB's graph property example: OGB's AtomEncoder and BondEncoder, a stack of graph layers
(each followed by batch norm, ReLU and dropout), mean pooling and a linear head, trained on the labelled
entries, scored by OGB's Evaluator on OGB's split, the test score taken at the best validation epoch. Only the
graph layer differs between the two choices. The dataset is read with ``OGBMolDataset``, which loads OGB's
layout with torch >= 2.6 and reads a set rebuilt offline by ``python -m plstm_geometric.datasets build-ogb``
(see examples/README.md); without such a build it downloads OGB's files.
"""

import argparse
import json

import torch
import torch.nn.functional as F
from ogb.graphproppred import Evaluator
from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINEConv, global_mean_pool

from plstm_geometric.datasets import OGBMolDataset
from plstm_geometric.nn import PLSTMConv

GNNS = ("gin", "plstm")


def graph_layer(gnn: str, emb_dim: int, layer: int, heads: int) -> torch.nn.Module:
    """One message-passing layer that reads node states and bond embeddings of width ``emb_dim``."""
    if gnn == "gin":  # OGB's GIN with bond features: MLP((1 + eps) h_n + sum_m relu(h_m + e_mn))
        mlp = torch.nn.Sequential(
            torch.nn.Linear(emb_dim, 2 * emb_dim),
            torch.nn.BatchNorm1d(2 * emb_dim),
            torch.nn.ReLU(),
            torch.nn.Linear(2 * emb_dim, emb_dim),
        )
        return GINEConv(mlp, train_eps=True)
    # pLSTM sweeps each molecule as a DAG; alternating directions let every atom read the whole molecule.
    return PLSTMConv(emb_dim, emb_dim, heads=heads, edge_dim=emb_dim, reverse=layer % 2 == 1)


class GNN(torch.nn.Module):
    def __init__(
        self, gnn: str, num_tasks: int, num_layer: int = 5, emb_dim: int = 300, drop_ratio: float = 0.5, heads: int = 4
    ):
        super().__init__()
        if gnn not in GNNS:
            raise ValueError(f"gnn: expected one of {GNNS}, got {gnn!r}")
        if num_layer < 1:
            raise ValueError(f"num_layer: expected a positive int, got {num_layer}")
        self.drop_ratio = drop_ratio
        self.atom_encoder = AtomEncoder(emb_dim)
        self.bond_encoders = torch.nn.ModuleList(BondEncoder(emb_dim) for _ in range(num_layer))
        self.convs = torch.nn.ModuleList(graph_layer(gnn, emb_dim, layer, heads) for layer in range(num_layer))
        self.norms = torch.nn.ModuleList(torch.nn.BatchNorm1d(emb_dim) for _ in range(num_layer))
        self.head = torch.nn.Linear(emb_dim, num_tasks)

    def forward(self, batch) -> torch.Tensor:
        h = self.atom_encoder(batch.x)
        for layer, (conv, bond_encoder, norm) in enumerate(zip(self.convs, self.bond_encoders, self.norms)):
            h = norm(conv(h, batch.edge_index, bond_encoder(batch.edge_attr)))
            if layer < len(self.convs) - 1:
                h = F.relu(h)
            h = F.dropout(h, self.drop_ratio, training=self.training)
        return self.head(global_mean_pool(h, batch.batch))


def train_epoch(model, loader, optimizer, task_type, device):
    model.train()
    for batch in loader:
        batch = batch.to(device)
        if batch.num_graphs == 1:  # batch norm needs two graphs
            continue
        pred = model(batch)
        labelled = batch.y == batch.y  # missing labels are NaN
        y = batch.y.to(pred.dtype)
        if "classification" in task_type:
            loss = F.binary_cross_entropy_with_logits(pred[labelled], y[labelled])
        else:
            loss = F.mse_loss(pred[labelled], y[labelled])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@torch.no_grad()
def evaluate(model, loader, evaluator, device) -> float:
    model.eval()
    y_true, y_pred = [], []
    for batch in loader:
        batch = batch.to(device)
        y_pred.append(model(batch).cpu())
        y_true.append(batch.y.view(y_pred[-1].shape).cpu())
    result = evaluator.eval({"y_true": torch.cat(y_true), "y_pred": torch.cat(y_pred)})
    return float(result[evaluator.eval_metric])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gnn", choices=GNNS, default="gin", help="the graph layer (default: gin)")
    parser.add_argument("--dataset", default="ogbg-molhiv", help="an ogbg-mol* name (default: ogbg-molhiv)")
    parser.add_argument("--root", default="datasets", help="data root (default: datasets)")
    parser.add_argument("--num_layer", type=int, default=5, help="graph layers (default: 5)")
    parser.add_argument("--emb_dim", type=int, default=300, help="hidden width (default: 300)")
    parser.add_argument("--heads", type=int, default=4, help="pLSTM heads (default: 4)")
    parser.add_argument("--drop_ratio", type=float, default=0.5, help="dropout (default: 0.5)")
    parser.add_argument("--batch_size", type=int, default=32, help="graphs per batch (default: 32)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default: 100)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    dataset = OGBMolDataset(args.dataset, root=args.root)
    split_idx = dataset.get_idx_split()
    evaluator = Evaluator(args.dataset)
    loaders = {
        part: DataLoader(dataset[split_idx[part]], batch_size=args.batch_size, shuffle=part == "train")
        for part in ("train", "valid", "test")
    }
    model = GNN(args.gnn, dataset.num_tasks, args.num_layer, args.emb_dim, args.drop_ratio, args.heads)
    model = model.to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(
        f"{args.dataset}: {len(dataset)} graphs, {args.gnn}, {sum(p.numel() for p in model.parameters()):,} "
        f"parameters, metric {dataset.eval_metric}",
        flush=True,
    )

    curves = {"train": [], "valid": [], "test": []}
    for epoch in range(1, args.epochs + 1):
        train_epoch(model, loaders["train"], optimizer, dataset.task_type, args.device)
        for part, loader in loaders.items():
            curves[part].append(evaluate(model, loader, evaluator, args.device))
        print(f"epoch {epoch}: " + ", ".join(f"{part} {values[-1]:.4f}" for part, values in curves.items()), flush=True)

    # OGB's rule: the epoch with the best validation score (the highest, or the lowest for an error metric).
    scores = torch.tensor(curves["valid"])
    best = int(scores.argmin() if evaluator.eval_metric in ("rmse", "mae") else scores.argmax())
    result = {
        "dataset": args.dataset,
        "gnn": args.gnn,
        "metric": evaluator.eval_metric,
        "best_epoch": best + 1,
        "valid": curves["valid"][best],
        "test": curves["test"][best],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
