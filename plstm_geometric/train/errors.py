"""The errors a run reports to its user, and the ``main`` wrapper that prints them."""

import sys


class RunError(RuntimeError):
    """A run cannot start or go on; the message says why and what to do. The CLIs print it and exit 1."""


class Diverged(RunError):
    """Training produced a non-finite loss or metric."""


def run_cli(run, argv, prog: str) -> int:
    """``run(argv)``, with a :class:`RunError` printed as ``prog: error: ...`` and exit status 1 (argparse's
    own errors exit with 2): the ``main`` of every CLI, usable as a console script.

    An ``OSError`` (a full disk, a failed download, a file that cannot be read) is a condition of the
    machine, not a bug: it is reported the same way, naming the file where the system named one.
    """
    try:
        run(argv)
    except RunError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        reason = error.strerror or str(error)
        print(f"{prog}: error: {where}{reason} ({type(error).__name__})", file=sys.stderr)
        return 1
    return 0
