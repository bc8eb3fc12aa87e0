"""Time caps: a deadline that measurements check between steps, and a hard stop for code that never checks."""

import contextlib
import signal
import threading
import time


class CapReached(BaseException):
    """A measurement ran out of time. A BaseException, so that a per-measurement ``except Exception`` that
    turns a failure into an error row lets it pass."""


def check_deadline(deadline: float) -> None:
    """Raise :class:`CapReached` once the wall clock (``time.time()``) has passed ``deadline``."""
    if time.time() >= deadline:
        raise CapReached()


@contextlib.contextmanager
def hard_cap(deadline: float):
    """Raise :class:`CapReached` inside the block when ``deadline`` passes, even in code that never checks.

    A ``SIGALRM`` timer, so in the main thread of a Unix process only; elsewhere the block runs uncapped and
    the deadline is enforced cooperatively (:func:`check_deadline`) or by a process around it
    (:mod:`.isolation`). The previous handler and timer state are restored on exit.
    """
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise CapReached()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.time(), 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
