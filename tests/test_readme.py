"""README's install, test and main commands are the ones CI and users run, and the commands of README and docs
name modules and scripts that exist. (Every Python block of the documents runs in tests/test_docs.py.)"""

import importlib.util
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, REPO / "datasets" / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def bash_blocks(path=README):
    return re.findall(r"^```bash\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_commands_name_existing_modules():
    modules = {}
    for doc in filter(pathlib.Path.exists, DOCS):
        text = doc.read_text(encoding="utf-8")
        for module in re.findall(r"python -m ([\w.]+)", text) + re.findall(r"torchrun [^\n]*?-m ([\w.]+)", text):
            modules.setdefault(module, doc.name)
    assert "plstm_geometric.train" in modules and "benchmarks.core" in modules
    for module, doc in modules.items():
        assert importlib.util.find_spec(module) is not None, f"{doc}: {module}"


def test_install_and_test_commands_are_what_ci_runs():
    blocks = bash_blocks()
    # The user install comes first, the development install beside the test command, as CI runs them.
    assert blocks[0] == 'pip install ".[chemistry,compiled,training]"\n'
    assert 'pip install torch==2.13.0 -e ".[test]"\npython -m pytest\n' in blocks
    assert "python -m plstm_geometric.train\n" in blocks  # the main job, with its offline default
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install --quiet torch==2.13.0 -e ".[test]"' in ci
    assert ci.rstrip().endswith("python -m pytest")


def test_install_section_names_every_extra():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    )
    text = README.read_text(encoding="utf-8")
    install = text[text.index("## Install") : text.index("## Develop and test")]
    named = set(re.findall(r"`\[(\w+)\]`", install)) | set(re.findall(r"\.\[([\w,]+)\]", install)[0].split(","))
    assert named == extras - {"test"}, named


def test_scripts_in_commands_exist():
    for doc in DOCS:
        if doc.exists():
            for script in re.findall(r"python ([\w/]+\.py)", doc.read_text(encoding="utf-8")):
                assert (REPO / script).is_file(), f"{doc.name}: {script}"


def test_docs_name_no_machine_paths():
    for doc in filter(pathlib.Path.exists, DOCS):
        text = doc.read_text(encoding="utf-8")
        found = re.findall(r"(?:/home/|/work/|/Users/|/tmp/|[A-Z]:\\|\.\./shared)\S*", text)
        assert found == [], f"{doc.name}: {found}"
