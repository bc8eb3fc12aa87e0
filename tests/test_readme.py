"""README's Python example must run as written, its commands and those of docs/ must name modules that exist,
and its install and test commands must be the ones CI runs."""

import importlib.util
import pathlib
import re

import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]


def test_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(block for block in blocks if "DataLoader" in block)
    namespace = {}
    exec(compile(example, "README example", "exec"), namespace)
    loss = namespace["loss"]
    assert loss.requires_grad and bool(torch.isfinite(loss)), loss  # neither nan nor inf


def test_commands_name_existing_modules():
    modules = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for module in re.findall(r"python -m ([\w.]+)", text) + re.findall(r"torchrun [^\n]*?-m ([\w.]+)", text):
            modules.setdefault(module, doc.name)
    assert "plstm_geometric.train" in modules and "benchmarks.core" in modules
    for module, doc in modules.items():
        assert importlib.util.find_spec(module) is not None, f"{doc}: {module}"


def test_install_and_test_commands_are_what_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks[:2] == ['pip install torch==2.13.0 -e ".[test]"\n', "python -m pytest\n"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install --quiet torch==2.13.0 -e ".[test]"' in ci
    assert ci.rstrip().endswith("python -m pytest")


def test_docs_name_no_machine_paths():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found = re.findall(r"(?:/home/|/work/|/Users/|/tmp/|[A-Z]:\\|\.\./shared)\S*", text)
        assert found == [], f"{doc.name}: {found}"
