"""`eagle-audit probe compare`: attribution methods side by side on the hard probe suite at matched
forward budgets, with paired bootstrap CIs. Registered on the `probe` group by
eagle_audit/commands/probe.py."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("compare")
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Suite seed (use one you did not tune on)."
)
@click.option("--n", "n", type=click.IntRange(min=0), default=30, show_default=True, help="Object samples.")
@click.option(
    "--hallucinations",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Planted hallucinations.",
)
@click.option(
    "--regions", type=click.IntRange(min=1), default=64, show_default=True, help="SLICO division number."
)
@click.option(
    "--methods",
    default=None,
    help="Comma-separated methods (default: probe.compare.DEFAULT_METHODS), e.g. "
    "'eagle-exact,eagle-lazy,kernel_shap@exact,lime@lazy,occlusion'. NAME@SEARCH gives a method the "
    "forwards that EAGLE search spent on each sample.",
)
@click.option("--kinds", default="copies,large", show_default=True, help="Object sample kinds (probe.suite).")
@click.option("--model", default=None, help="Probe checkpoint directory (default: the shipped one).")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads."
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON here."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (per-sample rows included).")
def compare_cmd(
    seed: int,
    n: int,
    hallucinations: int,
    regions: int,
    methods: str | None,
    kinds: str,
    model: str | None,
    threads: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Insertion/deletion AUC, point game, cause hit and AMCR of EAGLE's searches, captum's
    perturbation methods and RISE on the same samples, regions, targets and scorer; paired bootstrap
    95% CIs of each EAGLE search minus every other method."""
    import torch

    from eagle.backends.hf import HFBackend
    from probe.compare import DEFAULT_METHODS, CompareConfig, check_methods, compare
    from probe.suite import HARD_KINDS

    names = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else DEFAULT_METHODS
    kind_list = tuple(k.strip() for k in kinds.split(",") if k.strip())
    bad = [k for k in kind_list if k not in HARD_KINDS or k == "planted"]
    if bad or not kind_list:
        raise click.ClickException(f"--kinds {kinds!r}: choose from copies, large")
    torch.set_num_threads(threads)
    try:
        check_methods(names)
        cfg = CompareConfig(
            seed=seed, n=n, n_hallucinations=hallucinations, regions=regions, methods=names, kinds=kind_list
        )
        backend = HFBackend.from_pretrained(model)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    def save_partial(rows: list[dict]) -> None:  # a long run keeps what it has measured
        if out is not None:
            out.write_text(
                json.dumps({"partial": True, "seed": seed, "methods": list(names), "rows": rows}) + "\n"
            )

    result = compare(backend, cfg, progress=not as_json, on_sample=save_partial)
    if out is not None:
        out.write_text(json.dumps(result) + "\n")
    if as_json:
        click.echo(json.dumps(result))
        return
    keys = ("forward_passes", "insertion_auc", "deletion_auc", "point_game_box", "cause_hit", "amcr", "csr10")
    click.echo(f"{'method':<24}" + "".join(f"{k:>16}" for k in keys))
    for name, row in result["means"].items():
        click.echo(
            f"{name:<24}" + "".join(f"{'-' if row[k] is None else format(row[k], '.4f'):>16}" for k in keys)
        )
    click.echo("\npaired differences (mean [95% CI]):")
    for pair, metrics in result["differences"].items():
        cells = [
            f"{k} {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"
            for k, d in metrics.items()
            if k in ("insertion_auc", "deletion_auc") and d["n"]
        ]
        click.echo(f"  {pair}: " + "; ".join(cells))
