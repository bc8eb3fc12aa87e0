"""Layer-level speed: forward + backward of one PLSTMConv next to PyG's GINConv, GATConv and GINEConv on
batches of NCI molecules, all in the same run, printed as a markdown table.

    python -m benchmarks.layer                         # 128 and 1,024 molecules, 1 and 2 threads
    python -m benchmarks.layer --molecules 128 --threads 1 --repeats 20
    python -m benchmarks.layer --profile 128           # where PLSTMConv's time goes (torch.profiler)

Hidden size 64, 4 heads (GATConv: 4 heads of 16, concatenated), edge features embedded to 64 for the
layers that take them. The molecules come from ``benchmarks/gpu_data/nci1024.pt`` (the GPU check's data).
Each entry is the median of ``--repeats`` timed calls after warm-up, the layers' calls interleaved
(:func:`benchmarks.harness.measure_many`); the ratio column divides by GATConv's time in the same
configuration. The layers are initialised from seed 0.
"""

import argparse

import torch
from torch_geometric.nn import GATConv, GINConv, GINEConv

from plstm_geometric.nn import PLSTMConv

from .data import load_graphs
from .harness import measure_many, seeded, torch_threads

HIDDEN = 64
HEADS = 4
# OGB's atom and bond features are small categorical vectors; a sum of embeddings turns them into floats.
VOCABULARY = 128


def embed(features: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    tables = torch.randn(features.size(1), VOCABULARY, HIDDEN, generator=generator) * 0.5
    return sum(tables[column][features[:, column].clamp(max=VOCABULARY - 1)] for column in range(features.size(1)))


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN))


def layers(edge_index: torch.Tensor, num_nodes: int):
    """(name, layer, call) triples; ``call(layer, x, edge_attr)`` runs one forward."""
    plstm = PLSTMConv(HIDDEN, HIDDEN, heads=HEADS, edge_dim=HIDDEN)
    structure = plstm.structure(edge_index, num_nodes)
    return [
        (
            "PLSTMConv (structure precomputed)",
            plstm,
            lambda layer, x, edge_attr: layer(x, edge_index, edge_attr, structure=structure),
        ),
        ("PLSTMConv", plstm, lambda layer, x, edge_attr: layer(x, edge_index, edge_attr)),
        ("GINConv", GINConv(mlp()), lambda layer, x, edge_attr: layer(x, edge_index)),
        ("GATConv", GATConv(HIDDEN, HIDDEN // HEADS, heads=HEADS), lambda layer, x, edge_attr: layer(x, edge_index)),
        ("GINEConv", GINEConv(mlp(), edge_dim=HIDDEN), lambda layer, x, edge_attr: layer(x, edge_index, edge_attr)),
    ]


def batch(num_molecules: int):
    data = load_graphs("nci1024", num_molecules)
    generator = torch.Generator().manual_seed(0)
    return embed(data.x, generator), embed(data.edge_attr, generator), data.edge_index


def step_fn(layer, call, x, edge_attr):
    def step():
        layer.zero_grad(set_to_none=True)
        call(layer, x, edge_attr).square().mean().backward()

    return step


def run(molecules, threads, repeats: int, warmup: int):
    rows = []
    for num_molecules in molecules:
        x, edge_attr, edge_index = batch(num_molecules)
        x.requires_grad_()
        with seeded(0):
            entries = layers(edge_index, x.size(0))
        steps = [step_fn(layer, call, x, edge_attr) for _, layer, call in entries]
        for num_threads in threads:
            with torch_threads(num_threads):
                timings = measure_many(steps, torch.device("cpu"), repeats, warmup)
            times = {name: 1e3 * timing.median for (name, _, _), timing in zip(entries, timings)}
            for name in times:
                rows.append(
                    (
                        num_molecules,
                        x.size(0),
                        edge_index.size(1),
                        num_threads,
                        name,
                        times[name],
                        times[name] / times["GATConv"],
                    )
                )
    return rows


def markdown(rows) -> str:
    lines = ["| molecules (nodes, edges) | threads | layer | fwd+bwd ms | / GATConv |", "|---|---|---|---|---|"]
    for molecules, nodes, edges, threads, name, ms, ratio in rows:
        lines.append(f"| {molecules} ({nodes}, {edges}) | {threads} | {name} | {ms:.2f} | {ratio:.2f}x |")
    return "\n".join(lines)


def profile(num_molecules: int, rows: int = 25) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    x, edge_attr, edge_index = batch(num_molecules)
    x.requires_grad_()
    with seeded(0):
        name, layer, call = layers(edge_index, x.size(0))[0]
    step = step_fn(layer, call, x, edge_attr)
    for _ in range(3):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
    return f"{name}, {num_molecules} molecules, 5 steps:\n" + prof.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=rows
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--molecules", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile", type=int, metavar="MOLECULES", help="profile PLSTMConv instead")
    args = parser.parse_args(argv)
    if args.profile:
        with torch_threads(args.threads[0]):
            print(profile(args.profile))
        return
    print(markdown(run(args.molecules, args.threads, args.repeats, args.warmup)))


if __name__ == "__main__":
    main()
