"""Where the tests find their data: the golden vectors in the repository, the optional shared data sets."""

import os
import pathlib

#: The repository's test data (``tests/data``), next to the package in a source checkout.
TEST_DATA = pathlib.Path(
    os.environ.get("PLSTM_TEST_DATA", pathlib.Path(__file__).resolve().parents[2] / "tests" / "data")
)
#: Optional reference material (raw MoleculeNet CSVs, ...) kept outside the repository; ``PLSTM_SHARED``
#: overrides the default, a ``shared`` folder beside the checkout.
SHARED = pathlib.Path(os.environ.get("PLSTM_SHARED", pathlib.Path(__file__).resolve().parents[3] / "shared"))


def golden_path(name: str) -> pathlib.Path:
    """Path of a golden-vector file (``tests/data/golden/<name>``), figures from the authors' implementation.

    They are part of the repository, so a missing file is an error, not a skip: the correctness claim
    they back must not pass by default.
    """
    path = TEST_DATA / "golden" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"name: expected a file in {TEST_DATA / 'golden'}, got {name!r} (not found); "
            "set PLSTM_TEST_DATA to the repository's tests/data"
        )
    return path


def shared_path(*parts: str) -> pathlib.Path:
    """Path inside the shared reference folder (:data:`SHARED`), or skip the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        import pytest  # only the tests need it

        pytest.skip(f"{path} not found: the shared reference material (PLSTM_SHARED) is absent")
    return path
