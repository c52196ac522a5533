"""An interrupt (Ctrl-C, or SIGTERM made an exception by the CLI or Prefect) that lands while DuckDB
runs the store's filesystem callbacks: DuckDB turns whatever a callback raises into its own Error,
and a run killed that way was recorded as failed with a DuckDB traceback instead of "interrupted"
(seen once in a fresh-clone CI run). The store raises the interrupt itself."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

import storage.readonly_fs as readonly_fs
from storage.duckdb_errors import QueryInterrupted, interrupt_behind
from storage.store import Store


class Interrupt(BaseException):
    """Stands in for KeyboardInterrupt or Prefect's TerminationSignal (both BaseExceptions)."""


def _interrupting_glob(monkeypatch) -> None:
    def iglob(*args, **kwargs):
        raise Interrupt("signal 15")

    monkeypatch.setattr(readonly_fs.pyglob, "iglob", iglob)


def test_an_interrupt_in_the_filesystem_reaches_the_caller(synthetic_store: Path, monkeypatch) -> None:
    st = Store(synthetic_store)
    _interrupting_glob(monkeypatch)
    with pytest.raises(Interrupt) as caught:
        st.query("SELECT count(*) FROM answers")
    assert isinstance(caught.value.__cause__, duckdb.Error)  # what DuckDB made of it, kept as the cause
    with pytest.raises(Interrupt):
        st.run_status("a1")  # the store's own queries (one helper runs them all)
    monkeypatch.undo()
    assert st.query("SELECT count(*) AS n FROM answers").column("n")[0].as_py() > 0  # nothing stays pending


def test_an_ordinary_error_is_left_as_it_is(synthetic_store: Path, monkeypatch) -> None:
    st = Store(synthetic_store)
    with pytest.raises(duckdb.Error, match="no_such_column"):
        st.query("SELECT no_such_column FROM answers")
    plain = ValueError("unrelated")
    assert interrupt_behind(plain) is plain


def test_an_interrupt_noted_in_one_thread_stays_there(synthetic_store: Path, monkeypatch) -> None:
    _interrupting_glob(monkeypatch)
    errors: list[BaseException] = []

    def query() -> None:
        try:
            Store(synthetic_store).query("SELECT count(*) FROM answers")
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    worker = threading.Thread(target=query)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], Interrupt)
    # the same error text in this thread: recovered from the text, not the other thread's exception
    duck = duckdb.Error(f"{errors[0].__cause__}")
    recovered = interrupt_behind(duck)
    assert type(recovered) is QueryInterrupted and str(recovered) == "Interrupt: signal 15"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_a_real_signal_at_any_moment_of_a_query_ends_it_as_the_interrupt(synthetic_store: Path) -> None:
    """SIGALRM's handler raises the interrupt at moments spread over a query's run: wherever it
    lands (DuckDB's C++ code, a filesystem callback, the store's Python), the caller sees the
    interrupt; some landings must have been inside a callback, or the test proved nothing."""
    st = Store(synthetic_store)

    def handler(signum, frame):
        raise Interrupt(f"signal {signum}")

    sql = "SELECT count(*) FROM answers a JOIN runs r USING (run_id)"
    start = time.perf_counter()
    st.query(sql)  # opening the connection (its views) and the query: ~0.25 s here
    took = time.perf_counter() - start
    previous = signal.signal(signal.SIGALRM, handler)
    outcomes: list[str] = []
    try:
        for i in range(60):
            delay = took * (i + 0.5) / 60  # moments spread over the whole call
            try:
                signal.setitimer(signal.ITIMER_REAL, delay)
                st.query(sql)
                signal.setitimer(signal.ITIMER_REAL, 0)
                outcomes.append("finished")
            except Interrupt as exc:  # itself: raised outside DuckDB, or noted by a callback
                outcomes.append("noted" if exc.__cause__ is not None else "direct")
            except QueryInterrupted:  # DuckDB kept only its text (or dropped it)
                outcomes.append("recovered")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # any other exception (a duckdb.Error carrying the interrupt's traceback, DuckDB's "Query
    # interrupted") failed the loop above
    counts = {k: outcomes.count(k) for k in set(outcomes)}
    assert counts.get("noted", 0) + counts.get("recovered", 0) > 0, counts


def test_the_cli_ends_an_interrupted_query_like_ctrl_c(synthetic_store: Path, monkeypatch) -> None:
    """What DuckDB raises when a signal's handler ran inside its own signal check (the handler's
    exception is gone): the CLI stops as on Ctrl-C, not with an `Error:` line about a RuntimeError."""
    from click.testing import CliRunner

    from eagle_audit.cli import main

    def interrupted(self, sql, params=None):
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(Store, "query", interrupted)
    result = CliRunner().invoke(main, ["query", "--store", str(synthetic_store), "SELECT 1"])
    assert result.exit_code == 1 and "Aborted!" in result.output, result.output
    assert "Error" not in result.output
