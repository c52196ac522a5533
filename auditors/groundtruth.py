"""Ground truth about the objects in an image: which classes are present, which are known absent,
and, where a source has them, per-object pixel masks.

Sources:

- a probe world (`ground_truth.json` and its `masks/*.png` label maps): exhaustive over its 12
  classes; every object has a mask.
- COCO instances (`instances_val2014.json`): exhaustive over the 80 classes; polygon and RLE
  (list or compressed string counts) segmentations are rasterised into one label map per image.
- RePOPE (or POPE) labels: only the objects a question asks about are known; "yes" present, "no"
  absent, every other class unverified. No masks.

`ImageTruth.status(cls)` is "present", "absent" or "unverified"; benchmarks count unverified
mentions apart, never as hallucinations. `ObjectMasks` is one integer label map per image
(0 background, k > 0 one object instance) with the class of every instance.

Example::

    >>> truth = probe_truth("store/datasets/probe-seed0-n40")                  # doctest: +SKIP
    >>> truth["probe_000009.png"].status("star")                              # doctest: +SKIP
    'absent'
    >>> load_masks(MaskSource(kind="probe", path=world), "probe_000009.png").classes  # doctest: +SKIP
    {1: 'moon', 2: 'hexagon', 3: 'circle'}
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from auditors.annotations import AnnotationError, check_image_name, image_path

Status = Literal["present", "absent", "unverified"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageTruth:
    """What one source knows about one image's objects."""

    image: str
    present: frozenset[str]
    absent: frozenset[str] | None  # None: exhaustive, every class not present is absent

    def status(self, cls: str) -> Status:
        if cls in self.present:
            return "present"
        if self.absent is None or cls in self.absent:
            return "absent"
        return "unverified"

    def label(self) -> str:
        """The present classes, sorted and comma-separated (the `answers.labels` value of captions)."""
        return ", ".join(sorted(self.present))


@dataclass(frozen=True, kw_only=True, slots=True)
class MaskSource:
    """Where per-object masks come from: a probe world directory or a COCO instances file."""

    kind: Literal["probe", "coco"]
    path: Path


@dataclass(frozen=True, kw_only=True)
class ObjectMasks:
    """One image's objects as a label map (H, W) int32: 0 background, k the instance `classes[k]`."""

    labels: np.ndarray
    classes: Mapping[int, str]

    def __post_init__(self) -> None:
        if self.labels.ndim != 2:
            raise ValueError(f"object masks must be a label map (H, W), got shape {self.labels.shape}")


def probe_truth(world: Path | str) -> dict[str, ImageTruth]:
    """Image name -> exhaustive truth, from a probe world's ground_truth.json."""
    return {
        image: ImageTruth(image=image, present=present, absent=None)
        for image, present in probe_ground_truth(world).items()
    }


def coco_truth(instances_json: Path | str) -> dict[str, ImageTruth]:
    """Image file name -> exhaustive truth over the 80 classes, from a COCO instances file."""
    return {
        image: ImageTruth(image=image, present=present, absent=None)
        for image, present in coco_ground_truth(instances_json).items()
    }


def labelled_truth(labels: Iterable[tuple[str, str, str]]) -> dict[str, ImageTruth]:
    """Truth from yes/no object labels, (image, class, "yes" | "no") each: e.g. the RePOPE questions
    of an image. A class labelled both ways is an error (the label set contradicts itself)."""
    present: dict[str, set[str]] = {}
    absent: dict[str, set[str]] = {}
    for image, cls, label in labels:
        (present if label == "yes" else absent).setdefault(image, set()).add(cls)
        if cls in present.get(image, ()) and cls in absent.get(image, ()):
            raise AnnotationError(f"the labels say both yes and no for {cls!r} in {image}")
    return {
        image: ImageTruth(
            image=image, present=frozenset(present.get(image, ())), absent=frozenset(absent.get(image, ()))
        )
        for image in sorted(set(present) | set(absent))
    }


def probe_ground_truth(world: Path | str) -> dict[str, frozenset[str]]:
    """Image name -> object classes, from a probe world's ground_truth.json."""
    return {name: frozenset(o["name"] for o in rec["objects"]) for name, rec in _probe_records(world).items()}


def coco_ground_truth(instances_json: Path | str) -> dict[str, frozenset[str]]:
    """Image file name -> category names from a COCO instances file (e.g. instances_val2014.json).

    Images without any instance get an empty set (every mention in their caption is hallucinated).
    """
    data = _coco(Path(instances_json))
    return {name: frozenset(c for _, c, _ in anns) for name, (_, anns) in data.items()}


def load_masks(source: MaskSource | None, image: str) -> ObjectMasks | None:
    """The object masks of `image` from `source`; None when there is no source or it does not
    cover the image."""
    if source is None:
        return None
    if source.kind == "probe":
        rec = _probe_records(source.path).get(image)
        if rec is None:
            return None
        from PIL import Image

        path = image_path(Path(source.path), rec["mask"])
        with Image.open(path) as im:
            labels = np.asarray(im, dtype=np.int32)
        return ObjectMasks(labels=labels, classes={int(o["label"]): o["name"] for o in rec["objects"]})
    if source.kind == "coco":
        entry = _coco(Path(source.path)).get(image)
        if entry is None:
            return None
        (height, width), anns = entry
        labels = np.zeros((height, width), np.int32)
        classes: dict[int, str] = {}
        # paint larger instances first, so a small object in front of a large one keeps its pixels
        for k, (seg, cls, _) in enumerate(sorted(anns, key=lambda a: -a[2]), start=1):
            labels[rasterize(seg, height, width)] = k
            classes[k] = cls
        return ObjectMasks(labels=labels, classes=classes)
    raise ValueError(f"unknown mask source kind {source.kind!r}; choose 'probe' or 'coco'")


def _probe_records(world: Path | str) -> dict[str, dict[str, Any]]:
    path = Path(world) / "ground_truth.json"
    return _read_probe(path, *_version(path))


def _version(path: Path) -> tuple[int, int]:
    """(mtime, size) of a file, so a cached read is redone when the file changes; (0, 0) if missing."""
    try:
        st = path.stat()
    except OSError:
        return 0, 0
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _read_probe(path: Path, mtime_ns: int, size: int) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
        records = {check_image_name(r["image"], str(path)): r for r in data["images"]}
        for r in records.values():
            check_image_name(r["mask"], str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnnotationError(f"cannot read probe ground truth {path}: {exc!r}") from exc
    return records


Segmentation = Any  # COCO: a list of polygons [x1, y1, x2, y2, ...], or an RLE dict {"counts", "size"}


def _coco(path: Path) -> dict[str, tuple[tuple[int, int], list[tuple[Segmentation, str, float]]]]:
    """File name -> ((height, width), [(segmentation, class, area), ...]); read once per process
    (and again when the file changes)."""
    return _read_coco(path, *_version(path))


@functools.lru_cache(maxsize=2)
def _read_coco(
    path: Path, mtime_ns: int, size: int
) -> dict[str, tuple[tuple[int, int], list[tuple[Segmentation, str, float]]]]:
    try:
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        images = {im["id"]: im for im in data["images"]}
        out = {
            check_image_name(im["file_name"], str(path)): (
                (int(im.get("height", 0)), int(im.get("width", 0))),
                [],
            )
            for im in images.values()
        }
        for ann in data["annotations"]:
            im = images[ann["image_id"]]
            out[im["file_name"]][1].append(
                (ann.get("segmentation"), names[ann["category_id"]], float(ann.get("area", 0.0)))
            )
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{path} is not a COCO instances file ({exc!r})") from exc
    return out


def rasterize(segmentation: Segmentation, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of one COCO segmentation: polygons, or RLE with list or compressed counts."""
    mask = np.zeros((height, width), bool)
    if not segmentation:
        return mask
    if isinstance(segmentation, dict):
        counts = segmentation["counts"]
        h, w = (int(v) for v in segmentation["size"])
        if isinstance(counts, str):
            counts = rle_counts(counts)
        flat = np.zeros(h * w, bool)
        pos, value = 0, False
        for c in counts:  # runs alternate background / object, starting with background
            flat[pos : pos + c] = value
            pos, value = pos + c, not value
        return flat.reshape((w, h)).T[:height, :width]  # column-major
    from skimage.draw import polygon

    for poly in segmentation:
        xy = np.asarray(poly, np.float64).reshape(-1, 2)
        rr, cc = polygon(xy[:, 1], xy[:, 0], shape=(height, width))
        mask[rr, cc] = True
    return mask


def rle_counts(text: str) -> list[int]:
    """Run lengths of COCO's compressed RLE string: 5 bits per character (offset 48), a
    continuation bit (0x20), a sign bit on the last character (0x10), and each count after the
    second stored as the difference to the count two before."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


__all__ = [
    "ImageTruth",
    "MaskSource",
    "ObjectMasks",
    "coco_ground_truth",
    "coco_truth",
    "labelled_truth",
    "load_masks",
    "probe_ground_truth",
    "probe_truth",
    "rasterize",
    "rle_counts",
]
