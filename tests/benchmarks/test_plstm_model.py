"""benchmarks/plstm_model.py builds the model the training CLI builds, with the backend given to the
constructor, and the GPU check's peptide model is the LRGB suite's."""

import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from benchmarks import results_folder
from benchmarks.plstm_model import LRGB_PEPTIDES, plstm_graph_model
from plstm_geometric.nn import PLSTMConv


class Graphs(list):
    """As much of a dataset as the CLI's ``build_model`` reads."""

    @property
    def num_node_features(self):
        return self[0].x.size(1)


def graph(integer_features: bool) -> Data:
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    if integer_features:
        return Data(x=torch.zeros(4, 9, dtype=torch.long), edge_index=edge_index, edge_attr=torch.zeros(3, 3).long())
    return Data(x=torch.randn(4, 5), edge_index=edge_index, edge_attr=torch.randn(3, 2))


@pytest.mark.parametrize("integer_features", [True, False])
def test_same_model_as_the_training_cli(integer_features):
    args = results_folder.parse_args(["--hidden", "16", "--layers", "2", "--heads", "2", "--pool", "mean"])
    dataset = Graphs([graph(integer_features)])
    torch.manual_seed(0)
    expected = results_folder.build_model(args, dataset, 3)
    torch.manual_seed(0)
    built = plstm_graph_model(
        dataset[0], 3, 16, 2, heads=2, dropout=args.dropout, pool="mean", pool_norm=args.pool_norm, backend="chains"
    )
    assert repr(built) == repr(expected)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), expected.state_dict().values()))
    assert built.state_dict().keys() == expected.state_dict().keys()
    convs = [module for module in built.modules() if isinstance(module, PLSTMConv)]
    assert convs and {conv.backend for conv in convs} == {"chains"}


def test_peptide_model_is_the_lrgb_suites():
    config = json.loads((Path(results_folder.__file__).parent / "configs" / "lrgb.json").read_text())
    args = {**config["args"], **config["models"]["plstm"]["args"]}
    for key in ("hidden", "layers", "heads", "pool", "dropout"):
        assert LRGB_PEPTIDES[key] == args[key], key


def test_a_runs_recorded_layer_flags_rebuild_its_model():
    # A run's config as the training CLI records it; the benchmarks rebuild the same model from it.
    config = {"dataset": "nci-tpsa", "model": "plstm", "hidden": 16, "layers": 2, "heads": 2, "pool": "mean"}
    config.update(pool_norm="none", first_sweep="reverse", normalize_over="incoming", transition_start=[0.95, 0.9999])
    args = results_folder.run_args(config, "datasets")
    assert (args.pool_norm, args.first_sweep, args.normalize_over) == ("none", "reverse", "incoming")
    assert args.transition_start == (0.95, 0.9999)
    data = type("Prepared", (), {"dataset": Graphs([graph(True)]), "out_channels": 1})()
    for backend in (None, "levels"):
        model = results_folder.run_model(args, data, backend)
        assert [block.reverse for block in model.blocks] == [True, False]
        conv = model.blocks[0].conv_p
        assert (conv.normalize_over, conv.transition_start) == ("incoming", (0.95, 0.9999))
        assert isinstance(model.pooled_norm, torch.nn.Identity)
