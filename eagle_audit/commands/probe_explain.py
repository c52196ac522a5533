"""`eagle-audit probe explain-eval`: EAGLE and three baselines on fresh probe scenes, same samples,
regions, targets and scorer. Registered on the `probe` group by eagle_audit/commands/probe.py."""

from __future__ import annotations

import json

import click

from eagle.search import DEFAULT_SEARCH, SEARCH_NAMES


@click.command("explain-eval")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Probe world seed (fresh heldout scenes)."
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Object samples, and at most this many planted hallucinations.",
)
@click.option(
    "--regions", type=click.IntRange(min=1), default=64, show_default=True, help="SLICO division number."
)
@click.option("--search", type=click.Choice(SEARCH_NAMES), default=DEFAULT_SEARCH, show_default=True)
@click.option("--rise-masks", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--model", default=None, help="Probe checkpoint directory (default: the shipped one).")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain_eval(
    seed: int,
    n: int,
    regions: int,
    search: str,
    rise_masks: int,
    model: str | None,
    threads: int,
    as_json: bool,
) -> None:
    """Faithfulness (insertion/deletion AUC, point game) and hallucination diagnosis (AMCR, CSR@10%,
    cause hit rate) of EAGLE vs random order, single-region ablation and RISE."""
    import torch

    from eagle.backends.hf import HFBackend
    from eagle.search import search_by_name
    from eagle_audit.commands.backend_options import model_path
    from probe.explain_eval import EvalConfig, evaluate

    torch.set_num_threads(threads)
    try:
        backend = HFBackend.from_pretrained(model_path("hf", model))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    cfg = EvalConfig(
        seed=seed,
        n=n,
        regions=regions,
        rise_masks=rise_masks,
        search=search_by_name(search),
    )
    result = evaluate(backend, cfg, progress=not as_json)
    if as_json:
        click.echo(json.dumps(result))
        return
    keys = (
        "insertion_auc",
        "deletion_auc",
        "point_game_box",
        "point_game_mask",
        "forward_passes",
        "amcr",
        "csr10",
        "cause_hit_rate",
    )
    click.echo("method    " + " ".join(f"{k:>15}" for k in keys))
    for name, row in result["methods"].items():
        cells = " ".join(f"{'-' if row[k] is None else format(row[k], '.3f'):>15}" for k in keys)
        click.echo(f"{name:<9} {cells}")
    click.echo(
        f"{result['n_object_samples']} object samples, {result['methods']['eagle']['n_hallucinations']} "
        "planted hallucinations"
    )
