"""`eagle-audit`: one group, sub-commands loaded lazily so `--help` stays fast and heavy
libraries (torch, transformers, vLLM, Prefect) load only inside the command that needs them.

Each sub-command lives in its own module under eagle_audit/commands/ and exposes a click object;
add it to COMMANDS to register it.
"""

from __future__ import annotations

import importlib
import importlib.util

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


@click.group(cls=LazyGroup)
@click.version_option(package_name="eagle-audit")
def main() -> None:
    """Hallucination audits for multimodal LLMs: POPE/RePOPE marking, EAGLE explanations,
    Parquet results queried with DuckDB, HTML reports."""
