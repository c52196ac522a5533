"""Caption hallucination (CHAIR, Rohrbach et al. 2018) with this project's synonym tables.

A generated caption's object mentions (`auditors.mentions`) are compared with the objects the
image really holds: a mention whose class is absent is hallucinated.

- CHAIR_i = hallucinated mentions / all mentions (every occurrence counts, as in the original).
- CHAIR_s = captions with at least one hallucinated mention / captions.
- Object recall = ground-truth classes mentioned / ground-truth classes (summed over images).

Ground truth comes from a probe world (`ground_truth.json`) or from COCO instance annotations
(`instances_val2014.json`: image file name -> category names).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from auditors.annotations import AnnotationError, check_image_name
from auditors.mentions import Mention, Vocabulary, vocabulary

NAME = "captions"
PROMPT = "Describe the image."


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionScore:
    """One caption: its mentions, which are hallucinated, and which true objects it covers."""

    image: str
    caption: str
    mentions: tuple[Mention, ...]
    hallucinated: tuple[Mention, ...]  # mentions whose class is not in the image
    present: frozenset[str]  # ground-truth classes of the image
    covered: frozenset[str]  # ground-truth classes the caption mentions


@dataclass(frozen=True, kw_only=True, slots=True)
class ChairReport:
    captions: tuple[CaptionScore, ...]

    @property
    def n_mentions(self) -> int:
        return sum(len(c.mentions) for c in self.captions)

    @property
    def n_hallucinated(self) -> int:
        return sum(len(c.hallucinated) for c in self.captions)

    @property
    def chair_i(self) -> float | None:
        """Hallucinated mentions / mentions; None without any mention."""
        return self.n_hallucinated / self.n_mentions if self.n_mentions else None

    @property
    def chair_s(self) -> float | None:
        """Captions with a hallucinated mention / captions; None without captions."""
        if not self.captions:
            return None
        return sum(bool(c.hallucinated) for c in self.captions) / len(self.captions)

    @property
    def recall(self) -> float | None:
        """Ground-truth classes mentioned / ground-truth classes, over all images."""
        total = sum(len(c.present) for c in self.captions)
        return sum(len(c.covered) for c in self.captions) / total if total else None

    def to_dict(self) -> dict[str, object]:
        return {
            "chair_i": self.chair_i,
            "chair_s": self.chair_s,
            "recall": self.recall,
            "captions": len(self.captions),
            "mentions": self.n_mentions,
            "hallucinated": self.n_hallucinated,
        }


def score_caption(image: str, caption: str, present: Iterable[str], vocab: Vocabulary) -> CaptionScore:
    present = frozenset(present)
    unknown = sorted(present - set(vocab.classes))
    if unknown:
        raise ValueError(f"ground truth of {image} names classes {unknown} that the vocabulary does not know")
    mentions = tuple(vocab.extract(caption))
    return CaptionScore(
        image=image,
        caption=caption,
        mentions=mentions,
        hallucinated=tuple(m for m in mentions if m.cls not in present),
        present=present,
        covered=frozenset(m.cls for m in mentions if m.cls in present),
    )


def chair(
    captions: Mapping[str, str], ground_truth: Mapping[str, Iterable[str]], vocab: Vocabulary | str = "coco"
) -> ChairReport:
    """CHAIR over `captions` (image -> generated caption) against `ground_truth` (image -> classes).

    Every captioned image needs ground truth; a missing one is an error, not a skipped caption.
    """
    vocab = vocabulary(vocab) if isinstance(vocab, str) else vocab
    missing = [image for image in captions if image not in ground_truth]
    if missing:
        raise KeyError(f"no ground-truth objects for {len(missing)} captioned image(s), e.g. {missing[0]!r}")
    return ChairReport(
        captions=tuple(
            score_caption(image, text, ground_truth[image], vocab) for image, text in captions.items()
        )
    )


def probe_ground_truth(world: Path | str) -> dict[str, frozenset[str]]:
    """Image name -> object classes, from a probe world's ground_truth.json."""
    path = Path(world) / "ground_truth.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"cannot read probe ground truth {path}: {exc}") from exc
    return {
        check_image_name(r["image"], str(path)): frozenset(o["name"] for o in r["objects"])
        for r in data["images"]
    }


def coco_ground_truth(instances_json: Path | str) -> dict[str, frozenset[str]]:
    """Image file name -> category names from a COCO instances file (e.g. instances_val2014.json).

    Images without any instance get an empty set (every mention in their caption is hallucinated).
    """
    path = Path(instances_json)
    try:
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        files = {im["id"]: im["file_name"] for im in data["images"]}
        out: dict[str, set[str]] = {name: set() for name in files.values()}
        for ann in data["annotations"]:
            out[files[ann["image_id"]]].add(names[ann["category_id"]])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{path} is not a COCO instances file ({exc!r})") from exc
    return {k: frozenset(v) for k, v in out.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptionsBenchmark:
    name: str = NAME
    prompt: str = PROMPT

    def score(
        self,
        captions: Mapping[str, str],
        ground_truth: Mapping[str, Iterable[str]],
        vocab: Vocabulary | str = "coco",
    ) -> ChairReport:
        return chair(captions, ground_truth, vocab)


CAPTIONS = CaptionsBenchmark()
