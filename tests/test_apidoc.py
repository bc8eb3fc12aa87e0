import pathlib
import types

import torch

from tools.apidoc import COMMAND, main, public_exports, render_api, to_markdown

API_MD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_api_md_is_up_to_date():
    assert API_MD.is_file(), f"{API_MD} is missing: run `{COMMAND}`"
    assert API_MD.read_text(encoding="utf-8") == render_api(), (
        f"docs/api.md differs from the docstrings: regenerate it with `{COMMAND}`"
    )


def test_every_subpackage_export_is_documented():
    text = render_api()
    for name in (
        "dagify",
        "line_graph",
        "build_plan",
        "plstm_dag",
        "plstm_grid",
        "linear_recurrence",
        "PLSTMConv",
        "PLSTM2D",
        "GILRLSTM",
        "PreparePLSTM",
        "PLSTMGraphModel",
        "PLSTMVis",
        "GIN",
        "APEDataset",
        "load_dataset",
    ):
        assert f"### `{name}`" in text, name
    assert "#### `PLSTMConv.forward`" in text
    assert "(self" not in text  # methods are shown as called, without self


def test_public_exports_without_all():
    module = types.ModuleType("plstm_geometric.example")

    def documented():
        """Defined in the package."""

    def _private():
        """Not exported."""

    documented.__module__ = _private.__module__ = "plstm_geometric.example.impl"
    module.documented, module._private, module.torch_function = documented, _private, torch.zeros_like
    module.constant = 3
    assert public_exports(module) == [("documented", documented)]

    module.__all__ = ["constant", "_private"]  # __all__ decides; constants are not functions or classes
    assert public_exports(module) == [("_private", _private)]


def test_to_markdown_translates_the_docstring_style():
    doc = r"""Summary with :math:`x_i`, ``code``, :class:`~torch_geometric.data.Data` and
    :func:`plstm_geometric.graph.dagify`, a `link <https://example.org>`_ and a role
    :math:`a +
    b` wrapped over two lines.

    .. math::
        y &= a x \\
        z &= b

    A layout::

        folder/
          file.txt

    Args:
        query, key (Tensor): ``[N, H, K]``, described
            over two lines.
        **kwargs: passed on.

    Returns:
        ``[N, H, V]``, described
        over two lines.
    """
    expected = r"""Summary with $x_i$, `code`, `Data` and
`plstm_geometric.graph.dagify`, a [link](https://example.org) and a role
$a + b$ wrapped over two lines.

$$
\begin{aligned}
y &= a x \\
z &= b
\end{aligned}
$$

A layout:

```
folder/
  file.txt
```

**Args:**

- `query`, `key` (Tensor): `[N, H, K]`, described over two lines.
- `**kwargs`: passed on.

**Returns:**

`[N, H, V]`, described over two lines."""
    assert to_markdown(doc) == expected


def test_check_mode(tmp_path, capsys):
    stale = tmp_path / "api.md"
    stale.write_text("# outdated\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert COMMAND in capsys.readouterr().err
    fresh = tmp_path / "fresh.md"
    assert main(["--out", str(fresh)]) == 0
    assert main(["--check", str(fresh)]) == 0
