"""Commands that fail in known ways, registered into the CLI by tests/cli/test_cli_errors.py."""

from __future__ import annotations

import errno

import click


@click.command()
@click.option("--kind", type=click.Choice(["bug", "multiline", "disk-full", "value"]), required=True)
@click.option("--path", default=None)
def fail(kind: str, path: str | None) -> None:
    """Fail the way --kind says."""
    if kind == "bug":
        {}["missing"]  # an error no one anticipated  # noqa: B018
    if kind == "multiline":
        raise click.ClickException("first line\nsecond line\n\nLINE 1: SELECT x\n       ^")
    if kind == "disk-full":
        try:
            with open(path, "wb") as f:  # noqa: PTH123
                f.write(b"x")
                raise OSError(errno.ENOSPC, "No space left on device", path)
        except OSError as exc:
            raise RuntimeError("could not write the part file") from exc
    raise ValueError("--kind value: the input at fault, and what to do")
