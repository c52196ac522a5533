"""`eagle-audit pope ...`: POPE/RePOPE annotation files (stats, fetch) and scoring of answers."""

from __future__ import annotations

import json
from pathlib import Path

import click

_ANNOTATIONS = click.option(
    "--annotations",
    "annotations_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory with coco_{pope,repope}_{random,popular,adversarial}.json, or a probe world.",
)


@click.group()
def pope() -> None:
    """POPE and RePOPE: inspect and fetch the annotation files, score a model's answers."""


@pope.command("stats")
@_ANNOTATIONS
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(annotations_dir: Path, as_json: bool) -> None:
    """Per file: questions, yes/no labels, checksum status; unique (image, question) pairs overall."""
    from auditors.annotations import AnnotationError, load_annotations

    try:
        annotations = load_annotations(annotations_dir, strict=False)
    except AnnotationError as exc:
        raise click.ClickException(str(exc)) from exc
    files = [
        {
            "file": f.path.name,
            "label_set": f.label_set,
            "split": f.split,
            "questions": len(f.questions),
            "yes": f.n_yes,
            "no": f.n_no,
            "checksum": f.checksum,
            "sha256": f.sha256,
        }
        for f in annotations.files.values()
    ]
    result = {
        "annotations": str(annotations_dir),
        "files": files,
        "unique_pairs": {
            "all": len(annotations.pairs),
            **{ls: len(annotations.unique_pairs(ls)) for ls in annotations.label_sets},
        },
    }
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo(f"{'file':32} {'questions':>9} {'yes':>6} {'no':>6}  checksum")
        for f in files:
            click.echo(f"{f['file']:32} {f['questions']:>9} {f['yes']:>6} {f['no']:>6}  {f['checksum']}")
        pairs = result["unique_pairs"]
        click.echo("unique (image, question) pairs: " + ", ".join(f"{k} {v}" for k, v in pairs.items()))
    bad = [f["file"] for f in files if f["checksum"] == "mismatch"]
    if bad:
        click.echo(
            f"warning: checksum mismatch for {', '.join(bad)}; "
            "fetch them again with `eagle-audit pope fetch`",
            err=True,
        )


@pope.command("score")
@_ANNOTATIONS
@click.option(
    "--answers",
    "answers_file",
    type=click.Path(path_type=Path),
    required=True,
    help='JSON lines {"question_id": ..., "split": ..., "answer": "<raw model text>"}.',
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--per-class", is_flag=True, help="Add per-object-class counts and rates (key 'per_class').")
@click.option(
    "--ci",
    "n_boot",
    type=int,
    default=0,
    help="Add 95% intervals from an image-clustered bootstrap with this many replicates (key 'intervals').",
)
@click.option("--no-verify", is_flag=True, help="Score even if an annotation file fails its checksum.")
def score_cmd(
    annotations_dir: Path, answers_file: Path, as_json: bool, per_class: bool, n_boot: int, no_verify: bool
) -> None:
    """Score raw answers against POPE and RePOPE labels, per split and overall.

    Unparsed answers are counted in `unparsed` (and in `n`) and in none of tp/fp/tn/fn; rates are
    over the parsed answers. `flips` lists the questions whose verdict differs between the two
    label sets.
    """
    from auditors.annotations import AnnotationError, load_annotations
    from auditors.benchmarks.pope import load_answers, score

    if n_boot < 0:
        raise click.ClickException(f"--ci must be a positive number of bootstrap replicates, got {n_boot}")
    try:
        annotations = load_annotations(annotations_dir, strict=not no_verify)
        answers = load_answers(answers_file)
        report = score(annotations, answers)
    except AnnotationError as exc:
        raise click.ClickException(str(exc)) from exc
    result = report.to_dict()
    if per_class:
        result["per_class"] = {
            ls: {
                obj: c.to_dict()
                | {"false_positive_rate": c.false_positive_rate, "false_negative_rate": c.false_negative_rate}
                for obj, c in report.per_class(ls).items()
            }
            for ls in annotations.label_sets
        }
    if n_boot:
        result["intervals"] = {
            ls: {
                split: {m: iv.to_dict() for m, iv in report.intervals(ls, split, n_boot=n_boot).items()}
                for split in (*annotations.splits, "all")
            }
            for ls in annotations.label_sets
        }
    missing = {ls: per["all"] for ls, per in report.unanswered.items() if per["all"]}
    if missing:
        click.echo(
            "warning: questions without an answer (not scored): "
            + ", ".join(f"{ls} {n}" for ls, n in missing.items()),
            err=True,
        )
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    columns = ("tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy", "yes_ratio", "unparsed", "n")
    click.echo(f"{'labels':7} {'split':12} " + " ".join(f"{c:>9}" for c in columns))
    for ls in annotations.label_sets:
        for split, row in result[ls].items():
            cells = " ".join(f"{_fmt(row[c]):>9}" for c in columns)
            click.echo(f"{ls:7} {split:12} {cells}")
    click.echo(f"verdicts that change between POPE and RePOPE labels: {len(result['flips'])}")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@pope.command("fetch")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the six annotation files into.",
)
@click.option(
    "--base-url",
    default=None,
    help="Where the files are (default: the RePOPE repository's annotations/ folder on GitHub).",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
def fetch(out: Path, base_url: str | None, timeout: float) -> None:
    """Download the POPE and RePOPE annotation files from the public RePOPE repository and
    verify each against its known SHA-256 (a file that does not match is not saved)."""
    from auditors.annotations import AnnotationError
    from auditors.fetch import DEFAULT_BASE_URL, fetch_annotations

    def report(f) -> None:
        click.echo(f"{f.status:10} {f.name}  sha256 {f.sha256}", err=True)

    try:
        fetched = fetch_annotations(out, base_url or DEFAULT_BASE_URL, timeout=timeout, on_file=report)
    except AnnotationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "out": str(out),
                "files": [{"file": f.name, "status": f.status, "sha256": f.sha256} for f in fetched],
            },
            indent=1,
        )
    )
