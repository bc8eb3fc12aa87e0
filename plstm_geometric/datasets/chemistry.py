"""The optional chemistry packages (RDKit, OGB), imported where a molecule is built or scored.

``plstm_geometric.datasets`` imports without them, so that TU and LRGB data, the training CLI and the
layers work where only torch and PyG are installed; the first use of a molecule feature raises an
:class:`ImportError` that names the missing package and the extra that installs it.
"""

import importlib
from types import ModuleType

INSTALL = "pip install 'plstm_geometric[chemistry]'"


def require(module: str, needed_for: str) -> ModuleType:
    """``importlib.import_module(module)``, or an :class:`ImportError` that says what needs it and how
    to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(f"{needed_for} needs {package}, which is not installed: {INSTALL}") from error
