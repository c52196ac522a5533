"""Search variants against the exact greedy search on hard probe-suite samples (issue 15).

For every sample the model answers "Yes" (object kinds: the "Yes" explained; planted: the counter
token "No"), each variant and the exact search explain the same regions; printed per variant: mean
forwards and their share of exact's, mean insertion/deletion AUC, the relative difference from
exact's means, and the paired difference with a bootstrap 95% CI. Tune only on seeds >= 100.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/search_vs_exact.py --seed 100 101 --n 12 \\
        --exact-cache "/tmp/exact_{seed}.pkl" "coarse:coarse=12,refine_below=0.05" "lazy"

A variant is NAME[:key=value,...][~REL] with NAME in exact, efficient, lazy, coarse
(CoarseToFineSearch); `~REL` scores through JitterScorer (every score times 1 + REL·u, u uniform in
[-1, 1] and fixed per image): `exact~1e-6` measures how far the exact search itself moves under
differences the size of float32 rounding (what another CPU, thread count or batch size gives).
The exact results (forwards, AUCs, last region) can be cached in a pickle keyed by sample name: the
exact search is ~4,100 forwards per sample at 64 regions. --score-cache DIR keeps every score per sample,
so tuning runs repeat no model call (a few MB per sample). Several seeds are pooled (one CI over all
their samples); the per-sample share of exact's forwards gets a bootstrap CI too.
"""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
from hard_suite_args import parser, probe_backend, say

from eagle import Eagle, SlicoSegmenter
from eagle.metrics import deletion_auc, insertion_auc
from eagle.search import BidirectionalLazySearch, CoarseToFineSearch, EfficientSearch, ExactSearch, LazySearch
from eagle.types import GenerationRequest, ScoreRequest

CLASSES = {
    "exact": ExactSearch,
    "efficient": EfficientSearch,
    "lazy": LazySearch,
    "bidirectional-lazy": BidirectionalLazySearch,
    "coarse": CoarseToFineSearch,
}
KINDS = ("copies", "large", "planted")


def _value(text: str):
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    return float(text) if "." in text or "e" in text else int(text)


def parse_variant(spec: str):
    """(search, relative jitter) of a variant spec."""
    spec, _, jitter = spec.partition("~")
    name, _, args = spec.partition(":")
    kwargs = dict(kv.split("=", 1) for kv in args.split(",") if kv)
    return CLASSES[name](**{k: _value(v) for k, v in kwargs.items()}), float(jitter or 0)


class JitterScorer:
    """Scores times 1 + rel·u, u uniform in [-1, 1], drawn from the image's bytes (the same image
    always gets the same scores): numerical noise of float32 size, nothing more."""

    def __init__(self, scorer, rel: float) -> None:
        self.scorer, self.rel = scorer, rel

    def score(self, images, request):
        rows = np.asarray(self.scorer.score(images, request), float)
        for i, im in enumerate(images):
            seed = int.from_bytes(hashlib.sha256(im.tobytes()).digest()[:8], "little")
            rows[i] *= 1 + self.rel * np.random.default_rng(seed).uniform(-1, 1, rows.shape[1:])
        return rows


def samples(backend, seed: int, n: int):
    """(name, image, request) for scenes 0..n-1 (kinds in turn) the model answers "Yes" to."""
    from probe.classes import question_text
    from probe.suite import make_hard_scene

    yes, no = backend.token_id("Yes"), backend.token_id("No")
    for i in range(n):
        kind = KINDS[i % 3]
        hs = make_hard_scene(seed, i, kind)
        q = question_text(hs.target)
        a = backend.generate([GenerationRequest(image=hs.scene.image, prompt=q, max_new_tokens=3)])[0]
        if a.token_ids[0] != yes:
            continue
        target = no if kind == "planted" else yes
        req = ScoreRequest(prompt=q, answer_ids=a.token_ids, target_positions=(0,), target_ids=(target,))
        yield f"{kind}-{i}", hs.scene.image, req


class MemoScorer:
    """A scorer that remembers the scores of images it has seen (keyed by their bytes), saved per
    sample in `path`: re-running a variant, or a variant that visits masks another one scored, costs
    no model time. Forward counts are unchanged (they are counted by the search's RegionScorer)."""

    def __init__(self, scorer, path: str) -> None:
        self.scorer, self.path = scorer, path
        self.memo = {}
        if os.path.exists(path):
            with open(path, "rb") as f:
                self.memo = pickle.load(f)

    def score(self, images, request):
        keys = [hashlib.sha256(im.tobytes()).digest() for im in images]
        miss = [i for i, k in enumerate(keys) if k not in self.memo]
        if miss:
            for i, row in zip(miss, self.scorer.score(images[miss], request), strict=True):
                self.memo[keys[i]] = np.asarray(row)
            with open(self.path, "wb") as f:
                pickle.dump(self.memo, f)
        return np.array([self.memo[k] for k in keys])


def _ci(diffs) -> str:
    from probe.compare import paired_bootstrap

    d = paired_bootstrap(np.asarray(diffs, float))
    return f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"


def main() -> None:
    ap = parser(__doc__, 12, "scenes scanned per seed (kinds in turn)", many_seeds=True)
    ap.add_argument("--exact-cache", default=None, help="pickle of exact results ({seed} is replaced)")
    ap.add_argument("--score-cache", default=None, help="folder of per-sample score memos (tuning)")
    ap.add_argument("variants", nargs="*", help="none: only fill the exact cache")
    args = ap.parse_args()
    variants = {v: parse_variant(v) for v in args.variants}
    backend = probe_backend()
    seg = SlicoSegmenter(n_segments=args.regions)
    exact, res, names = [], {v: [] for v in variants}, []
    for seed in args.seed:
        path = args.exact_cache.replace("{seed}", str(seed)) if args.exact_cache else None
        cache = {}
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                cache = pickle.load(f)
        for name, image, req in samples(backend, seed, args.n):
            labels = seg.segment(image)
            scorer = backend
            if args.score_cache:
                os.makedirs(args.score_cache, exist_ok=True)
                scorer = MemoScorer(backend, os.path.join(args.score_cache, f"s{seed}-{name}.pkl"))
            if name not in cache:
                e = Eagle(scorer, search=ExactSearch()).explain(image, labels, req)
                cache[name] = (e.forward_passes, insertion_auc(e), deletion_auc(e), int(e.order[-1]))
                if path:
                    with open(path, "wb") as f:
                        pickle.dump(cache, f)
            exact.append(cache[name])
            names.append(f"s{seed}-{name}")
            for v, (search, jitter) in variants.items():
                e = Eagle(JitterScorer(scorer, jitter) if jitter else scorer, search=search).explain(
                    image, labels, req
                )
                res[v].append((e.forward_passes, insertion_auc(e), deletion_auc(e), int(e.order[-1])))
            say(f"done s{seed}-{name}")
    ex = np.array(exact, float)
    say(f"seeds {args.seed}: {len(names)} samples {names}")
    say(
        f"exact: forwards {ex[:, 0].mean():.0f} insertion {ex[:, 1].mean():.4f} "
        f"deletion {ex[:, 2].mean():.4f}"
    )
    for v, rows in res.items():
        a = np.array(rows, float)
        share = a[:, 0] / ex[:, 0]
        line = [
            f"{v}: forwards {a[:, 0].mean():.0f} ({a[:, 0].sum() / ex[:, 0].sum():.3f} of exact; "
            f"per-sample share {_ci(share)}, max {share.max():.3f})"
        ]
        for col, label in ((1, "insertion"), (2, "deletion")):
            rel = (a[:, col].mean() / ex[:, col].mean() - 1) * 100
            line.append(f"{label} {a[:, col].mean():.4f} ({rel:+.1f}%; paired {_ci(a[:, col] - ex[:, col])})")
        say("; ".join(line))
        for col, label, worst in ((1, "insertion", np.argmin), (2, "deletion", np.argmax)):
            d = a[:, col] - ex[:, col]
            i = int(worst(d))
            say(f"    per-sample {label} - exact: {np.round(d, 3).tolist()}; worst {names[i]} {d[i]:+.4f}")


if __name__ == "__main__":
    main()
