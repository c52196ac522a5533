"""`eagle-audit bench`: benchmarks that print numbers. Sub-commands register on the `bench` group
(other modules may add theirs with `bench.add_command`)."""

from __future__ import annotations

import json

import click


def _factory(model: str | None):
    def make(batch_size: int | None = None):
        from eagle.backends.hf import HFBackend
        from eagle_audit.commands.backend_options import model_path

        try:
            return HFBackend.from_pretrained(model_path("hf", model), batch_size=batch_size)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

    return make


def _threads(threads: int | None) -> int:
    """Set torch's CPU threads (None keeps torch's default: one per core) and return the count."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@click.group()
def bench() -> None:
    """Speed and cost benchmarks (print numbers; record them in benchmarks/RESULTS.md)."""


@bench.command("scoring")
@click.option("--model", default=None, help="Local model directory (default: the shipped probe).")
@click.option("--images", "n_images", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--regions", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch CPU threads for both modes [default: torch's, one per core].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def scoring(model: str | None, n_images: int, regions: int, threads: int | None, as_json: bool) -> None:
    """Masked-image scoring rate: batched vs one image per forward, side by side."""
    from probe.benchmarking import bench_scoring

    used = _threads(threads)
    result = bench_scoring(_factory(model), n_images=n_images, regions=regions)
    result["threads"] = used
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"batched {result['batched_per_s']:.1f} img/s, one per forward {result['sequential_per_s']:.1f} "
            f"img/s, ratio {result['ratio']:.2f}"
        )


@bench.command("search")
@click.option("--model", default=None, help="Local model directory (default: the shipped probe).")
@click.option("--regions", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=3, show_default=True, help="Probe scenes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--search-scope", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--pending-samples", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--update-step", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--early-stop", type=click.FloatRange(0, 1, min_open=True), default=None)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(
    model, regions, samples, seed, search_scope, pending_samples, update_step, early_stop, threads, as_json
):
    """Forward passes and insertion AUC of the exact vs the efficient search on the same samples."""
    from eagle.search import EfficientSearch
    from probe.benchmarking import bench_search

    _threads(threads)
    eff = EfficientSearch(
        search_scope=search_scope,
        pending_samples=pending_samples,
        update_step=update_step,
        early_stop=early_stop,
    )
    result = bench_search(_factory(model)(), regions=regions, n_samples=samples, seed=seed, efficient=eff)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"exact {result['exact_forwards']:.0f} forwards (AUC {result['exact_insertion_auc']:.4f}); "
            f"efficient {result['efficient_forwards']:.0f} ({result['forward_ratio']:.1%}, "
            f"AUC {result['efficient_insertion_auc']:.4f})"
        )


from eagle_audit.commands.bench_backends import backends as _backends  # noqa: E402 (module owned by backends)

bench.add_command(_backends)
