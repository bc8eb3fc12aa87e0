"""Implementations of the ops; the Triton ones are imported on first use."""
import importlib


def triton_backend(module: str, name: str, requested: str):
    """``name`` from the backend module ``module``, imported on first use.

    Triton is an optional dependency: without it only the call that asks for a Triton backend fails, with
    an ``ImportError`` that names the request (``requested``) and the fix.
    """
    try:
        backend = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as error:
        if error.name != "triton":
            raise
        raise ImportError(f"{requested} runs Triton kernels: pip install triton "
                          "(the other backends do not need it)") from error
    return getattr(backend, name)
