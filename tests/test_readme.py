"""README's Python example must run as written, and its commands must name modules that exist."""
import importlib.util
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(block for block in blocks if "DataLoader" in block)
    namespace = {}
    exec(compile(example, "README example", "exec"), namespace)
    assert namespace["loss"].requires_grad and namespace["loss"].item() == namespace["loss"].item()


def test_commands_name_existing_modules():
    modules = set(re.findall(r"python -m ([\w.]+)", README.read_text()))
    modules |= set(re.findall(r"torchrun [^\n]*?-m ([\w.]+)", README.read_text()))
    assert "plstm_geometric.train" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
