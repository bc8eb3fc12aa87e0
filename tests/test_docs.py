"""Every Python block of README.md, docs/index.md, datasets/README.md and examples/README.md runs as written,
each in a fresh namespace and in an empty working folder (what a block builds lands there)."""

import math
import os
import pathlib
import re

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/index.md", "datasets/README.md", "examples/README.md")


def python_blocks():
    blocks = []
    for name in DOCS:
        path = REPO / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
            blocks.append(pytest.param(path, line, match.group(1), id=f"{name}:{line}"))
    return blocks


BLOCKS = python_blocks()


def test_the_documents_have_python_blocks():
    names = {param.values[0].relative_to(REPO).as_posix() for param in BLOCKS}
    assert {"README.md", "datasets/README.md"} <= names, names


@pytest.mark.parametrize("path, line, code", BLOCKS)
def test_python_block_runs(path, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_block__"}
    # Compiled with blank lines in front, so that a traceback names the block's line in the document.
    exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    for value in namespace.values():  # nothing a block computes is nan or inf
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert bool(torch.isfinite(value).all()), f"{path.name}:{line}: a tensor holds nan or inf"
        elif isinstance(value, float):
            assert math.isfinite(value), f"{path.name}:{line}: {value}"
    assert os.getcwd() == str(tmp_path)
