"""``python -m benchmarks.gpu_check``: see the package docstring for the options and the output."""

from . import __doc__ as description
from .cli import main

if __name__ == "__main__":
    main(description=description)
