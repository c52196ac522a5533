"""`eagle-audit explain`: explain one answer on one image with EAGLE; writes heatmaps and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from eagle.search import DEFAULT_SEARCH, SEARCH_NAMES
from eagle_audit.commands.backend_options import backend_options


@click.command()
@click.option(
    "--image",
    "image_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Image file (PNG/JPEG).",
)
@click.option("--prompt", required=True, help="The question or instruction that follows the image.")
@click.option(
    "--answer", default=None, help="The answer to explain (tokenised the way the chat template does)."
)
@click.option("--generate", "do_generate", is_flag=True, help="Generate the answer with the model (greedy).")
@click.option(
    "--targets", default="all", show_default=True, help="'all' answer tokens, or a WORD of the answer."
)
@click.option(
    "--counter-token", default=None, help="Explain this token instead at the target positions (e.g. No)."
)
@click.option("--search", type=click.Choice(SEARCH_NAMES), default=DEFAULT_SEARCH, show_default=True)
@click.option(
    "--regions", type=click.IntRange(min=1), default=64, show_default=True, help="SLICO division number."
)
@backend_options
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Images per forward (default: auto)."
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lambda1", type=float, default=1.0, show_default=True, help="Weight of the insight term.")
@click.option("--lambda2", type=float, default=1.0, show_default=True, help="Weight of the necessity term.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary.")
def explain(
    image_path: Path,
    prompt: str,
    answer: str | None,
    do_generate: bool,
    targets: str,
    counter_token: str | None,
    search: str,
    regions: int,
    backend: str,
    model: str | None,
    endpoint: str | None,
    concurrency: int,
    timeout: float | None,
    deadline: float | None,
    dtype: str,
    batch_size: int | None,
    max_new_tokens: int,
    lambda1: float,
    lambda2: float,
    out: Path,
    as_json: bool,
) -> None:
    """Explain which image regions drive the answer's target tokens (EAGLE); write heatmap.png,
    hallucination.png (with --counter-token), explanation.json and summary.json to --out."""
    if (answer is None) == (not do_generate):
        raise click.UsageError("give exactly one of --answer TEXT or --generate")
    from eagle.run import explain_file
    from eagle_audit.commands.backend_options import backend_from_options

    kw = {"batch_size": batch_size} if batch_size is not None else {}
    backend = backend_from_options(
        backend, model, endpoint, concurrency, timeout=timeout, deadline=deadline, dtype=dtype, **kw
    )
    try:
        result = explain_file(
            backend,
            image_path,
            prompt,
            out=out,
            answer=answer,
            targets=targets,
            counter_token=counter_token,
            search=search,
            regions=regions,
            max_new_tokens=max_new_tokens,
            lambda1=lambda1,
            lambda2=lambda2,
            batch_size=batch_size,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    s = result.summary
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(
        f"answer: {s['answer']!r}  ({s['regions']} regions, {s['forward_passes']} forward passes, "
        f"{s['wall_time_s']:.1f}s)"
    )
    for t in s["targets"]:
        flag = "visual" if t["visually_sensitive"] else "prior"
        click.echo(
            f"  {t['token']!r:>12} p_full={t['p_full']:.3f} p_black={t['p_black']:.3f} "
            f"I={t['influence']:.2f} ({flag})"
        )
    click.echo(f"insertion AUC {s['insertion_auc']:.3f}, deletion AUC {s['deletion_auc']:.3f}")
    for name, path in s["files"].items():
        click.echo(f"{name}: {path}")
