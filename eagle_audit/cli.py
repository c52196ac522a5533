"""`eagle-audit`: one group, sub-commands loaded lazily so `--help` stays fast and heavy
libraries (torch, transformers, vLLM, Prefect) load only inside the command that needs them.

Each sub-command lives in its own module under eagle_audit/commands/ and exposes a click object;
add it to COMMANDS to register it. Every failure ends with one `Error:` line and exit status 1
(2 for usage errors); `eagle-audit --debug ...` shows the traceback instead (eagle_audit.errors).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import traceback
from typing import Any

import click

# name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "probe": "eagle_audit.commands.probe:probe",
    "explain": "eagle_audit.commands.explain:explain",
    "bench": "eagle_audit.commands.bench:bench",
    "pope": "eagle_audit.commands.pope:pope",
    "serve": "eagle_audit.commands.serve:serve",
    "audit": "eagle_audit.commands.audit:audit",
    "query": "eagle_audit.commands.query:query",
    "store": "eagle_audit.commands.store:store",
    "report": "eagle_audit.commands.report:report",
    "compare": "eagle_audit.commands.compare:compare",
    "gate": "eagle_audit.commands.gate:gate",
}
DEBUG_ENV = "EAGLE_AUDIT_DEBUG"


def debug_enabled(ctx: click.Context | None = None) -> bool:
    """Whether `--debug` (or $EAGLE_AUDIT_DEBUG=1) asked for tracebacks."""
    ctx = ctx or click.get_current_context(silent=True)
    flag = ctx is not None and bool((ctx.find_root().obj or {}).get("debug"))
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._spec_exists(name))

    @staticmethod
    def _spec_exists(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._spec_exists(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; turn any error into one `Error:` line (click prints it, exit 1)."""
        from eagle_audit.errors import describe, one_line
        from storage.duckdb_errors import raise_interrupt_behind
        from storage.writer import is_disk_full

        try:
            return super().invoke(ctx)
        except click.exceptions.UsageError:
            raise  # click prints usage and the error, exit 2
        except click.ClickException as exc:
            cause = exc.__cause__
            raise_interrupt_behind(cause)  # a command wrapped an interrupt that DuckDB made an error
            if cause is not None and debug_enabled(ctx):
                traceback.print_exception(cause)
            full = cause is not None and is_disk_full(cause)
            exc.message = describe(cause) if full else one_line(exc.message)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise_interrupt_behind(exc)  # an interrupt that a DuckDB query turned into its own error
            if debug_enabled(ctx):
                raise
            raise click.ClickException(describe(exc)) from exc


@click.group(cls=LazyGroup)
@click.version_option(package_name="eagle-audit")
@click.option(
    "--debug",
    is_flag=True,
    help=f"Show tracebacks and debug logs on errors (also ${DEBUG_ENV}=1).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Hallucination audits for multimodal LLMs: POPE/RePOPE marking, EAGLE explanations,
    Parquet results queried with DuckDB, HTML reports."""
    ctx.ensure_object(dict)["debug"] = debug
    if debug_enabled(ctx):
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
