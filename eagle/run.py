"""One explanation end to end, as the `explain` command runs it: load the image, get or tokenise
the answer, pick the targets, segment, explain, render heatmaps, write files, summarise."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from eagle.explanation import Explanation
from eagle.heatmap import overlay, save_png
from eagle.images import load_rgb
from eagle.method import Eagle
from eagle.regions import SlicoSegmenter
from eagle.search import DEFAULT_SEARCH, search_by_name
from eagle.types import Backend, GenerationRequest, ScoreRequest


def _norm(text: str) -> str:
    return text.strip().strip(string.punctuation).lower()


def select_targets(backend: Backend, answer_ids: tuple[int, ...], spec: str) -> tuple[int, ...]:
    """Answer positions to explain: "all", or every position whose token is the word `spec`."""
    if spec == "all":
        return tuple(range(len(answer_ids)))
    tokens = [backend.decode([t]) for t in answer_ids]
    hits = tuple(i for i, tok in enumerate(tokens) if _norm(tok) == _norm(spec))
    if not hits:
        raise ValueError(
            f"--targets {spec!r} matches no answer token; the answer's tokens are {tokens}: "
            "give one of them or 'all'"
        )
    return hits


@dataclass(frozen=True, kw_only=True, slots=True)
class ExplainResult:
    explanation: Explanation
    summary: dict  # JSON-safe summary (also written to summary.json)


def explain_file(
    backend: Backend,
    image_path: Path | str,
    prompt: str,
    *,
    out: Path | str,
    answer: str | None = None,
    targets: str = "all",
    counter_token: str | None = None,
    search: str = DEFAULT_SEARCH,
    regions: int = 64,
    max_new_tokens: int = 32,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    batch_size: int | None = None,
) -> ExplainResult:
    """Explain the answer to `prompt` on an image file; writes heatmap.png (and hallucination.png
    for a counter token), explanation.json and summary.json under `out`."""
    image = load_rgb(image_path)
    if answer is None:
        gen = backend.generate(
            [GenerationRequest(image=image, prompt=prompt, max_new_tokens=max_new_tokens)]
        )[0]
        answer_ids, answer_text = gen.token_ids, gen.text
    else:
        answer_ids, answer_text = backend.answer_token_ids(prompt, answer), answer
    if not answer_ids:
        raise ValueError(
            "the answer is empty, so there is no token to explain; give --answer or a longer --max-new-tokens"
        )
    positions = select_targets(backend, answer_ids, targets)
    if counter_token is not None:
        target_ids = (backend.token_id(counter_token),) * len(positions)
    else:
        target_ids = tuple(answer_ids[p] for p in positions)
    request = ScoreRequest(
        prompt=prompt, answer_ids=answer_ids, target_positions=positions, target_ids=target_ids
    )
    strategy = search_by_name(search)
    labels = SlicoSegmenter(n_segments=regions).segment(image)
    expl = Eagle(backend, lambda1=lambda1, lambda2=lambda2, search=strategy, batch_size=batch_size).explain(
        image, labels, request
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"heatmap": str(save_png(overlay(image, expl.attribution_map), out / "heatmap.png"))}
    if counter_token is not None:
        files["hallucination_heatmap"] = str(
            save_png(overlay(image, expl.attribution_map, hallucination=True), out / "hallucination.png")
        )
    (out / "explanation.json").write_text(expl.to_json() + "\n")
    files["explanation"] = str(out / "explanation.json")
    mod = expl.modality
    summary = {
        "image": str(image_path),
        "prompt": prompt,
        "answer": answer_text,
        "answer_ids": list(answer_ids),
        "counter_token": counter_token,
        "targets": [
            {
                "position": int(p),
                "token": backend.decode([t]),
                "token_id": int(t),
                "p_black": float(expl.insertion[0, i]),
                "p_full": float(expl.insertion[-1, i]),
                "influence": float(mod.influence[i]),
                "influence_area": float(mod.influence_area[i]),
                "visually_sensitive": bool(mod.sensitive[i]),
            }
            for i, (p, t) in enumerate(zip(positions, target_ids, strict=True))
        ],
        "regions": expl.n_regions,
        "top_regions": expl.order[:5].tolist(),
        "insertion_auc": expl.insertion_auc,
        "deletion_auc": expl.deletion_auc,
        "forward_passes": expl.forward_passes,
        "wall_time_s": expl.wall_time_s,
        "search": expl.params,
        "model_id": getattr(backend, "model_id", type(backend).__name__),
        "files": files,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return ExplainResult(explanation=expl, summary=summary)
