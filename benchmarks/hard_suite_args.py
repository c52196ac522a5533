"""What the hard-suite benchmark scripts share: their common arguments, the probe backend, printing."""

from __future__ import annotations

import argparse
import os


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 (a benchmark script prints its numbers)


def parser(doc: str, n_default: int, n_help: str, many_seeds: bool = False) -> argparse.ArgumentParser:
    """--seed (required; several, pooled, with `many_seeds`), --n scenes scanned and --regions,
    described by the script's docstring."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, nargs="+" if many_seeds else None)
    ap.add_argument("--n", type=int, default=n_default, help=n_help)
    ap.add_argument("--regions", type=int, default=64)
    return ap


def probe_backend():
    """The shipped probe model in process, on OMP_NUM_THREADS threads (default 1)."""
    import torch

    from eagle.backends.hf import HFBackend
    from probe.model import CHECKPOINT_DIR

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return HFBackend.from_pretrained(CHECKPOINT_DIR)
