"""The package built from pyproject.toml: what the wheel holds, its metadata, and the core dependencies."""

import ast
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import plstm_geometric

REPO = pathlib.Path(__file__).resolve().parents[1]
# Everything a source checkout has at the top; copied so the build neither writes into the checkout nor
# sees its build leftovers, and so the wheel is shown to leave out folders that are there.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "plstm_geometric", "benchmarks", "tools", "tests")


def pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def copy_sources(source) -> None:
    """The files a build reads (SOURCES), copied into ``source``, so that no build writes into the checkout."""
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    copy_sources(source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("*.whl")
    return path


def test_setup_py_builds_the_same_wheel(wheel, tmp_path):
    # The setup.py shim adds nothing: `python setup.py bdist_wheel` reads pyproject.toml and packs the same
    # files as the PEP 517 build.
    source = tmp_path / "source"
    source.mkdir()
    copy_sources(source)
    subprocess.run(
        [sys.executable, "setup.py", "--quiet", "bdist_wheel", "--dist-dir", str(tmp_path / "dist")],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (shim_wheel,) = (tmp_path / "dist").glob("*.whl")
    assert shim_wheel.name == wheel.name
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(shim_wheel) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_wheel_holds_the_library_alone(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"plstm_geometric-{plstm_geometric.__version__}.dist-info/"
    assert wheel.name == f"plstm_geometric-{plstm_geometric.__version__}-py3-none-any.whl"  # one version
    assert "plstm_geometric/nn/plstm_conv.py" in names and "plstm_geometric/py.typed" in names
    assert "plstm_geometric/testing/__init__.py" in names
    outside = [name for name in names if not name.startswith(("plstm_geometric/", dist_info))]
    assert outside == []  # no benchmarks/, tests/, tools/, notebooks/ or data
    assert not any(name.endswith(".pt") for name in names)


def test_wheel_metadata(wheel):
    archive = zipfile.ZipFile(wheel)
    dist_info = f"plstm_geometric-{plstm_geometric.__version__}.dist-info/"
    metadata = archive.read(dist_info + "METADATA").decode()
    assert "License-Expression: MIT" in metadata and dist_info + "licenses/LICENSE" in archive.namelist()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = sorted(r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r)
    assert core == ["numpy", "torch", "torch_geometric"]
    scripts = archive.read(dist_info + "entry_points.txt").decode()
    for script in ("plstm-train", "plstm-train-vision", "plstm-train-sequence", "plstm-datasets"):
        assert f"{script} = " in scripts, script


def test_console_scripts_name_existing_functions():
    for script, target in pyproject()["project"]["scripts"].items():
        module, function = target.split(":")
        # Located and parsed, not imported: the CLIs import the optional extras and take long to import.
        path = pathlib.Path(plstm_geometric.__file__).parent.joinpath(*module.split(".")[1:])
        files = [file for file in (path.with_suffix(".py"), path / "__init__.py") if file.is_file()]
        assert module.startswith("plstm_geometric.") and files, f"{script}: {module} not found"
        tree = ast.parse(files[0].read_text(encoding="utf-8"))
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert function in functions, f"{script}: {module} defines no {function}()"


def test_test_extra_covers_every_other_extra():
    extras = pyproject()["project"]["optional-dependencies"]
    others = sorted(name for name in extras if name != "test")
    assert f"plstm_geometric[{','.join(others)}]" in extras["test"]


def test_core_layers_need_only_the_core_dependencies():
    # Optional packages that torch or torch_geometric would load are made unimportable (None in
    # sys.modules); rdkit and ogb must not even be loaded. tqdm stays: torch_geometric requires it.
    code = """
import sys
for name in ("pandas", "sklearn", "PIL", "matplotlib", "triton", "networkx"):
    sys.modules[name] = None
import torch
import plstm_geometric.functional, plstm_geometric.graph, plstm_geometric.transforms
from plstm_geometric.nn import PLSTMConv
out = PLSTMConv(4, 4, heads=2)(torch.randn(5, 4), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
assert out.shape == (5, 4) and bool(torch.isfinite(out).all())
print(sorted({module.split(".")[0] for module in sys.modules} & {"rdkit", "ogb"}))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing the core layers loaded {result.stdout.strip()}"
