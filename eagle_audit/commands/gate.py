"""`eagle-audit gate`: the release gate (a skin over `audit.gate`). Exit 0 pass, 1 fail, 2 cannot
judge (missing data, or a policy or run that cannot be used)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from eagle_audit.commands.audit import UsageFailure


@click.command()
@click.option("--store", type=click.Path(path_type=Path), required=True, help="Store directory (read only).")
@click.option(
    "--policy", type=click.Path(path_type=Path, dir_okay=False), required=True,
    help="Policy file of limits (see the committed gate.toml).",
)  # fmt: skip
@click.argument("candidate")
@click.option(
    "--baseline", default=None,
    help="previous, a run id or model:NAME (default: the policy's [gate] baseline).",
)  # fmt: skip
@click.option(
    "--intersect", is_flag=True, default=None,
    help="Judge changes on the shared questions when the question sets differ.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and every check as JSON.")
@click.pass_context
def gate(
    ctx: click.Context, store: Path, policy: Path, candidate: str, baseline: str | None,
    intersect: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """Judge CANDIDATE (a run id, or model:NAME for its latest complete run) against the limits of
    a policy file. A limit on a change fails only when the regression is significant at the
    policy's level (one-sided, paired bootstrap over shared images). Exit 0 pass, 1 fail, 2 cannot
    judge."""
    from audit.compare import CompareError
    from audit.gate import PolicyError, load_policy, run_gate

    try:
        result = run_gate(
            store, load_policy(policy), candidate, baseline=baseline, intersect=intersect or None
        )
    except (PolicyError, CompareError) as exc:
        raise UsageFailure(str(exc)) from exc
    click.echo(json.dumps(result.to_dict(), default=str) if as_json else result.explain())
    ctx.exit(result.exit_code)
