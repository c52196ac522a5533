"""Every CLI failure ends with one `Error:` line and exit status 1 (2 for usage errors); tracebacks
only with `eagle-audit --debug`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from eagle_audit import cli
from eagle_audit.errors import disk_full_message, one_line
from storage.writer import human_bytes, is_disk_full


@pytest.fixture(autouse=True)
def failing_command(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "fail", "cli_fixtures:fail")
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


def run(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def test_an_unexpected_error_is_one_line_with_a_hint():
    out = run("fail", "--kind", "bug")
    assert out.exit_code == 1
    assert out.output == (
        "Error: KeyError: 'missing' (unexpected; rerun with `eagle-audit --debug ...` for the traceback)\n"
    )


def test_debug_shows_the_traceback():
    out = run("--debug", "fail", "--kind", "bug")
    assert out.exit_code == 1 and isinstance(out.exception, KeyError)  # raised: click prints the traceback
    out = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, 'tests/cli'); from eagle_audit import cli; "
         "cli.COMMANDS['fail'] = 'cli_fixtures:fail'; cli.main()", "--debug", "fail", "--kind", "value"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr and "ValueError: --kind value" in out.stderr


def test_library_errors_keep_their_message():
    out = run("fail", "--kind", "value")
    assert (out.exit_code, out.output) == (1, "Error: --kind value: the input at fault, and what to do\n")


def test_multi_line_messages_become_one_line():
    out = run("fail", "--kind", "multiline")
    assert (out.exit_code, out.output) == (1, "Error: first line; second line\n")
    traceback = "Traceback (most recent call last):\n  File x\nPermissionError: no"
    assert one_line(traceback) == "PermissionError: no"


def test_usage_errors_exit_2():
    out = run("fail", "--kind", "nope")
    assert out.exit_code == 2
    assert out.output.rstrip().splitlines()[-1].startswith("Error: Invalid value")
    out = run("query", "--nope")
    assert out.exit_code == 2
    assert out.output.endswith("Error: No such option '--nope'. Did you mean '--store'?\n")


def test_disk_full_names_the_path_and_the_free_space(tmp_path):
    target = tmp_path / "store" / "part.parquet"
    target.parent.mkdir()
    out = run("fail", "--kind", "disk-full", "--path", str(target))
    assert out.exit_code == 1 and out.output.count("\n") == 1
    assert out.output.startswith(f"Error: no space left on the disk of {target} (")
    assert " free of " in out.output and "resume with the same --run-id" in out.output


def test_disk_full_detection_and_sizes(tmp_path):
    assert is_disk_full(OSError(28, "No space left on device"))
    assert is_disk_full(RuntimeError("sqlite3.OperationalError: database or disk is full"))
    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = OSError(122, "Disk quota exceeded")
    assert is_disk_full(wrapped) and not is_disk_full(ValueError("no"))
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024**3) == "3.0 GiB"
    message = disk_full_message(tmp_path / "not" / "yet")  # free space of the nearest existing parent
    assert message.startswith(f"no space left on the disk of {tmp_path / 'not' / 'yet'} (")
    assert "free of" in message
