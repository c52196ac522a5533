"""`eagle-audit compare`: two runs side by side with the uncertainty of every change (a skin over
`audit.compare.compare_runs`; the HTML comparison report is `reports.compare`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from eagle_audit.commands.audit import UsageFailure

SHOWN = ("f1", "hallucination_rate", "accuracy")
SHOWN_COLUMNS = (
    ("labels/split", "left"),
    ("n", "right"),
    ("metric", "left"),
    ("baseline → candidate", "right"),
    ("Δ [interval]", "right"),
    ("change", "left"),
    ("McNemar", "right"),
)
WIDTH = 140  # when the output is not a terminal (a log, a CI job): the table without wrapping


@click.command()
@click.option("--store", type=click.Path(path_type=Path), required=True, help="Store directory (read only).")
@click.argument("baseline")
@click.argument("candidate")
@click.option(
    "--intersect", is_flag=True,
    help="Compare runs of different question sets on the questions they share (refused otherwise).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
@click.option(
    "--html", "html", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="Also write the self-contained HTML comparison report to this file.",
)  # fmt: skip
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the intervals.")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Paired bootstrap replicates.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="New hallucinations and fixed ones listed in the table output.")  # fmt: skip
@click.option("--max-cards", type=click.IntRange(min=0), default=200, show_default=True,
              help="Side-by-side cards in the HTML report.")  # fmt: skip
def compare(
    store: Path, baseline: str, candidate: str, intersect: bool, as_json: bool, html: Path | None,
    level: float, bootstrap: int, seed: int, show: int, max_cards: int,
) -> None:  # fmt: skip
    """Compare CANDIDATE with BASELINE (each a run id, or model:NAME for that model's latest
    complete run): every metric of both runs per benchmark, label set and split, the difference
    with a paired bootstrap interval over the shared images, the exact McNemar test on the paired
    verdicts, and the new and fixed hallucinations. Runs of different question sets are refused
    (exit 2) unless --intersect."""
    from audit.compare import CompareError, compare_runs

    try:
        comparison = compare_runs(
            store, baseline, candidate, intersect=intersect, level=level, n_boot=bootstrap, seed=seed
        )
    except CompareError as exc:
        raise UsageFailure(str(exc)) from exc
    data = comparison.to_dict()
    if html is not None:
        from reports.compare import build_comparison_report

        build_comparison_report(store, data, html, max_cards=max_cards)
    if as_json:
        click.echo(json.dumps(data, default=str))
        return
    _print(data, show)
    if html is not None:
        click.echo(f"report: {html}")


def _value(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _print(data: dict[str, Any], show: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from auditors.comparison import BETTER
    from reports.changes import judge_difference

    console = Console(width=None if sys.stdout.isatty() else WIDTH)
    base, cand = data["baseline"], data["candidate"]
    console.print(f"baseline  {base['run_id']} ({base['model_id']}, {base['status']})", highlight=False)
    console.print(f"candidate {cand['run_id']} ({cand['model_id']}, {cand['status']})", highlight=False)
    console.print(
        f"{data['shared_questions']} shared questions, "
        + ("same question set" if data["same_question_set"] else "question sets differ (--intersect)")
        + f". Δ = candidate − baseline with its {data['level']:.0%} paired bootstrap interval over images "
        f"({data['n_boot']} replicates, seed {data['seed']}); McNemar: new errors / fixed, "
        "exact two-sided p.",
        highlight=False,
    )
    for note in data["notes"]:
        console.print(f"note: {note}", highlight=False)
    table = Table()
    for col, justify in SHOWN_COLUMNS:
        table.add_column(col, justify=justify)
    several = len({g["benchmark"] for g in data["groups"]}) > 1
    for g in data["groups"]:
        if g["object_class"] != "all":
            continue
        m = g["mcnemar"]
        for i, metric in enumerate(SHOWN):
            d = g["metrics"][metric]
            change = judge_difference(d, BETTER[metric])
            first = i == 0
            diff = "-" if d["difference"] is None else f"{d['difference']:+.3f}"
            interval = "" if d["low"] is None else f" [{d['low']:+.3f}, {d['high']:+.3f}]"
            table.add_row(
                (f"{g['benchmark']}/" if several else "") + f"{g['label_set']}/{g['split']}" if first else "",
                str(g["questions"]) if first else "",
                metric,
                f"{_value(d['baseline'])} → {_value(d['candidate'])}",
                diff + interval,
                change.verdict if change else "-",
                f"{m['new_errors']}/{m['fixed']} p={m['p_two_sided']:.3g}" if first else "",
                end_section=i == len(SHOWN) - 1,
            )
    console.print(table)
    amcr = data["amcr"]
    if amcr is not None:
        change = judge_difference(amcr, "lower")
        ci = "" if amcr["low"] is None else f" [{amcr['low']:+.3f}, {amcr['high']:+.3f}]"
        diff = "-" if amcr["difference"] is None else f"{amcr['difference']:+.3f}"
        console.print(
            f"AMCR {_value(amcr['baseline'])} → {_value(amcr['candidate'])}: Δ {diff}{ci} "
            f"{change.verdict if change else ''}",
            highlight=False,
        )
    for title, key in (
        ("new hallucinations (candidate wrong, baseline right)", "new_hallucinations"),
        ("fixed (candidate right, baseline wrong)", "fixed"),
    ):
        changes = data[key]
        console.print(f"{len(changes)} {title}", highlight=False)
        for c in changes[:show]:
            console.print(
                f"  {c['label_set']:6} {','.join(c['sample_ids'])}  {c['image']}  {c['question']!r}  "
                f"label {c['label']}: {c['baseline_verdict']} → {c['candidate_verdict']}",
                markup=False,
                highlight=False,
            )
