"""What DuckDB makes of exceptions raised while it runs a store query, and how to get them back.

DuckDB catches whatever the store's filesystem callbacks raise (storage.readonly_fs) and raises its
own Error carrying their traceback as text; when a signal's Python handler runs inside DuckDB's own
signal check, DuckDB drops the handler's exception and raises `RuntimeError("Query interrupted")`.
So an interrupt (Ctrl-C, or SIGTERM made an exception by the CLI or Prefect's flow engine) landing
during a query would end a run as an ordinary query error (seen: a run killed by SIGTERM recorded as
failed with a DuckDB traceback). `interrupt_behind` turns such an error back into an interrupt.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
TRACEBACK = "Traceback (most recent call last):"
_noted = threading.local()  # per thread: Python runs signal handlers in the main thread only


class QueryInterrupted(KeyboardInterrupt):
    """An interrupt arrived while DuckDB ran a store query, and DuckDB kept only its text (or not
    even that). A KeyboardInterrupt, so that everything treats it as Ctrl-C."""


def noting_interrupts(method: F) -> F:
    """Decorate a filesystem callback: an interrupt raised inside it is noted for `interrupt_behind`
    (the exception itself, not only DuckDB's text of it)."""

    @functools.wraps(method)
    def noting(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            raise
        except BaseException as exc:
            _noted.interrupt = exc
            raise

    return noting  # type: ignore[return-value]


def raised_in_callback(message: str) -> str | None:
    """The exception line (`Type: message`) of the Python traceback in a DuckDB error's text, if it
    has one (an exception raised in a filesystem callback)."""
    if TRACEBACK not in message:
        return None
    lines = message.split(TRACEBACK, 1)[1].splitlines()
    return next((line for line in lines if line.strip() and not line.startswith(" ")), None)


def interrupt_behind(exc: BaseException) -> BaseException:
    """The interrupt that DuckDB turned into `exc`, else `exc` itself.

    The interrupt is the one a callback of this thread noted when there is one, else a
    QueryInterrupted naming what DuckDB kept of it. Callers catching errors of store queries use it
    (or `raise_interrupt_behind`) to end as interrupted, not failed."""
    if not isinstance(exc, Exception):
        return exc
    kept = _interrupt_text(exc)
    if kept is None:
        return exc
    noted, _noted.interrupt = getattr(_noted, "interrupt", None), None
    return noted if noted is not None else QueryInterrupted(kept)


def raise_interrupt_behind(exc: BaseException | None) -> None:
    """Raise the interrupt that DuckDB turned into `exc`, if it did (see `interrupt_behind`)."""
    if exc is not None and (interrupt := interrupt_behind(exc)) is not exc:
        raise interrupt from exc


def _interrupt_text(exc: BaseException | None) -> str | None:
    """What DuckDB kept of an interrupt in `exc` or the exceptions it was raised from, or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc) is RuntimeError and str(exc) == "Query interrupted":
            return "a signal interrupted a store query"
        if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            line = raised_in_callback(str(exc))
            if line is not None and _is_interrupt(line.split(":", 1)[0].strip()):
                return line
        exc = exc.__cause__ or exc.__context__
    return None


def _is_interrupt(name: str) -> bool:
    """Whether a loaded exception class named `name` (DuckDB writes the bare class name, e.g.
    `TerminationSignal`) is a BaseException that is not an Exception: Ctrl-C's KeyboardInterrupt,
    Prefect's TerminationSignal, SystemExit."""
    name = name.rpartition(".")[2]
    stack = [c for c in BaseException.__subclasses__() if not issubclass(c, Exception)]
    while stack:
        cls = stack.pop()
        if cls.__name__ == name:
            return True
        stack.extend(cls.__subclasses__())
    return False
