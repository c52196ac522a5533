"""`eagle-audit probe ...`: the synthetic probe world and the shipped probe model."""

from __future__ import annotations

import importlib.util
import json
import logging
import shlex
import sys
from pathlib import Path

import click


@click.group()
def probe() -> None:
    """The probe world (scenes with exact ground truth) and the small probe MLLM."""


@probe.command("world")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--images", "n_images", type=int, default=200, show_default=True, help="Number of scenes.")
@click.option(
    "--split",
    type=click.Choice(["heldout", "train"]),
    default="heldout",
    show_default=True,
    help="heldout: planted partners join their anchor half of the time; train: almost always.",
)
def world(out: Path, seed: int, n_images: int, split: str) -> None:
    """Write a probe world: images, masks, ground truth, captions and POPE-format question sets."""
    from probe.world import write_world

    if n_images < 1:
        raise click.ClickException(f"--images must be at least 1, got {n_images}")
    info = write_world(out, seed, n_images, split, progress=sys.stderr.isatty())  # type: ignore[arg-type]
    click.echo(
        json.dumps(
            {"out": str(info.out), "seed": seed, "images": n_images, "split": split, "files": info.files},
            indent=1,
        )
    )


@probe.command("train")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Checkpoint directory to write.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, default=4000, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1.5e-3, show_default=True)
@click.option("--scenes", type=int, default=30000, show_default=True, help="Pre-rendered training scenes.")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--eval-every", type=int, default=500, show_default=True)
def train_cmd(
    out: Path, seed: int, steps: int, batch_size: int, lr: float, scenes: int, threads: int, eval_every: int
) -> None:
    """Train the probe model from scratch on training-split scenes and save it with its record."""
    from probe.train import TrainConfig, train, write_record

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = TrainConfig(
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        n_scenes=scenes,
        threads=threads,
        eval_every=eval_every,
    )
    record = train(cfg, out)
    record["command"] = "eagle-audit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_record(out, record)
    click.echo(
        json.dumps(
            {k: record[k] for k in ("steps", "wall_time_s", "parameters")}
            | {"final": record["history"][-1] if record["history"] else None}
        )
    )


probe.add_command(train_cmd, "train")


@probe.command("eval")
@click.option(
    "--seed", type=int, default=1, show_default=True, help="World seed of the fresh held-out scenes."
)
@click.option("--n", type=int, default=300, show_default=True, help="Number of held-out scenes.")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Checkpoint (default: the shipped probe model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-captions", is_flag=True, help="Skip the caption metrics (faster).")
def eval_cmd(seed: int, n: int, model_dir: Path | None, as_json: bool, no_captions: bool) -> None:
    """Measure the probe model's quality bars on fresh held-out scenes."""
    import torch

    from probe.evaluate import evaluate
    from probe.model import load_probe

    if n < 1:
        raise click.ClickException(f"--n must be at least 1, got {n}")
    torch.set_num_threads(2)
    try:
        model, processor = load_probe(model_dir)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = evaluate(
        model, processor, seed=seed, n=n, captions=not no_captions, progress=not as_json
    ).summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    from rich.console import Console
    from rich.table import Table

    bars = {
        "accuracy_unbiased": (">=", 0.95),
        "false_yes_planted": (">=", 0.30),
        "false_yes_other": ("<=", 0.05),
        "caption_recall": (">=", 0.90),
        "caption_chair_i": ("<=", 0.10),
    }
    table = Table(title=f"probe model on {n} held-out scenes (seed {seed})")
    for col in ("metric", "value", "bar", "ok"):
        table.add_column(col)
    for key, (op, bar) in bars.items():
        if key not in summary:
            continue
        value = summary[key]
        ok = value >= bar if op == ">=" else value <= bar
        table.add_row(key, f"{value:.3f}", f"{op} {bar}", "yes" if ok else "NO")
    Console().print(table)
    click.echo(
        f"{summary['n_questions_unbiased']} unbiased questions, "
        f"{summary['n_planted']} planted-pair questions, "
        f"{summary['n_other_absent']} other absent-object questions"
    )


probe.add_command(eval_cmd, "eval")

# Sub-commands contributed by other modules (registered only when present).
if importlib.util.find_spec("eagle_audit.commands.probe_explain") is not None:
    from eagle_audit.commands.probe_explain import explain_eval

    probe.add_command(explain_eval, "explain-eval")

from eagle_audit.commands.probe_compare import compare_cmd  # noqa: E402 (the hard-suite comparison)

probe.add_command(compare_cmd, "compare")
