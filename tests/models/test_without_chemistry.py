"""The layers and models need neither OGB nor RDKit: their molecule encoders are the library's own."""

import subprocess
import sys
import textwrap

import pytest
import torch

from plstm_geometric.nn import AtomEncoder, BondEncoder


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_nn_loads_neither_rdkit_nor_ogb():
    out = run_python("""
        import sys
        import plstm_geometric.nn
        import plstm_geometric.models
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("ogb", "rdkit")))
    """)
    assert out.strip() == "[]"


def test_models_build_and_run_with_ogb_and_rdkit_blocked():
    out = run_python("""
        import sys
        sys.modules["ogb"] = None  # any import of ogb or rdkit now raises ImportError
        sys.modules["rdkit"] = None
        import torch
        from torch_geometric.data import Batch, Data
        from plstm_geometric.models import PLSTMGraphModel, PLSTMVis

        torch.manual_seed(0)
        graphs = [Data(x=torch.tensor([[5, 0, 2, 5, 1, 0, 2, 0, 0], [7, 0, 1, 5, 0, 0, 1, 0, 0]]),
                       edge_index=torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.tensor([[0, 0, 0], [0, 0, 0]])),
                  Data(x=torch.tensor([[5, 0, 3, 5, 0, 0, 2, 1, 1]] * 3),
                       edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), edge_attr=torch.tensor([[3, 0, 1]] * 4))]
        model = PLSTMGraphModel(hidden_channels=8, out_channels=2, num_layers=1, heads=2)
        out = model(Batch.from_data_list(graphs))
        out.sum().backward()
        vis = PLSTMVis(image_size=8, patch_size=4, in_channels=3, num_classes=3, dim=8, heads=2, depth=1)
        logits = vis(torch.randn(2, 3, 8, 8))
        print(tuple(out.shape), bool(torch.isfinite(out).all()), tuple(logits.shape))
    """)
    assert out.strip() == "(2, 2) True (2, 3)"


def test_encoders_match_ogb_when_it_is_installed():
    mol_encoder = pytest.importorskip("ogb.graphproppred.mol_encoder")
    pairs = ((AtomEncoder, mol_encoder.AtomEncoder, 9), (BondEncoder, mol_encoder.BondEncoder, 3))
    for ours, theirs, features in pairs:
        torch.manual_seed(3)
        reference = theirs(16)
        torch.manual_seed(3)
        encoder = ours(16)
        assert encoder.state_dict().keys() == reference.state_dict().keys()
        for key, tensor in reference.state_dict().items():
            torch.testing.assert_close(encoder.state_dict()[key], tensor, atol=0, rtol=0)
        x = torch.stack([torch.randint(0, emb.num_embeddings, (5,)) for emb in encoder.embeddings], dim=1)
        assert x.size(1) == features
        torch.testing.assert_close(encoder(x), reference(x), atol=0, rtol=0)
