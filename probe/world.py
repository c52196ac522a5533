"""Deterministic probe scenes with exact ground truth, and the files a probe world is made of.

A scene is a pure function of (seed, index, split): the same arguments give the same pixels and
the same PNG bytes. Each scene holds 1-4 objects of distinct classes; later objects may partly
hide earlier ones; the ground truth keeps, per object, its class, the box of its visible pixels
and its visible mask (one label map per image: 0 = background, k = object k-1).

Splits differ only in the planted bias. In "train" scenes the partner B of a planted pair A -> B
is added to TRAIN_PARTNER_RATE of the scenes that contain A, drawn smaller and partly behind A.
In "heldout" scenes B joins A only half of the time, so A-without-B images exist to probe the
hallucination.

Example::

    >>> scene = make_scene(seed=0, index=3, split="heldout")
    >>> scene.image.shape, scene.labels.shape
    ((128, 128, 3), (128, 128))
    >>> [o.name for o in scene.objects]  # doctest: +SKIP
    ['circle', 'hexagon']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from probe.classes import CLASS_INDEX, CLASSES, PLANTED_PAIRS, caption_text, class_by_name
from probe.render import IMAGE_SIZE, background, fill, shape_mask

Split = Literal["train", "heldout"]

TRAIN_PARTNER_RATE = 0.96  # P(B in scene | A in scene) for training scenes (issue bar: >= 0.90)
HELDOUT_PARTNER_RATE = 0.5
MIN_VISIBLE = 0.55  # ordinary objects keep at least this share of their pixels visible
N_OBJECT_WEIGHTS = (0.25, 0.3, 0.25, 0.2)  # P(1..4 objects)
_SPLIT_CODE = {"train": 0, "heldout": 1}


@dataclass(frozen=True, slots=True)
class SceneObject:
    name: str  # class name
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the visible pixels (x1, y1 exclusive)
    label: int  # value of this object's pixels in the scene's label map
    visible_fraction: float  # visible pixels / drawn pixels (occlusion)
    area: int  # visible pixels


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8, 0 = background, k = objects[k-1]
    objects: tuple[SceneObject, ...]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def mask(self, name: str) -> np.ndarray:
        """Boolean visible mask of the object of class `name`."""
        for o in self.objects:
            if o.name == name:
                return self.labels == o.label
        raise KeyError(f"no {name!r} in this scene (objects: {self.names})")


def scene_object(name: str, visible: np.ndarray, label: int, visible_fraction: float) -> SceneObject:
    """The ground truth of one drawn thing from its (non-empty) visible mask."""
    ys, xs = np.nonzero(visible)
    return SceneObject(
        name=name,
        box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
        label=label,
        visible_fraction=round(visible_fraction, 4),
        area=int(visible.sum()),
    )


def _sample_classes(rng: np.random.Generator, split: Split) -> tuple[list[str], set[str]]:
    """Pick the classes of one scene; returns them in draw order and the set of planted partners."""
    n = int(rng.choice(len(N_OBJECT_WEIGHTS), p=N_OBJECT_WEIGHTS)) + 1
    weights = np.array([c.weight for c in CLASSES])
    picked = [
        CLASSES[i].name for i in rng.choice(len(CLASSES), size=n, replace=False, p=weights / weights.sum())
    ]
    rate = TRAIN_PARTNER_RATE if split == "train" else HELDOUT_PARTNER_RATE
    partners: set[str] = set()
    for a, b in PLANTED_PAIRS:
        if a in picked and b not in picked:
            if rng.random() < rate:
                picked.append(b)
                partners.add(b)
        elif a in picked and b in picked and split == "train":
            partners.add(b)
    # Partners are drawn first so that A covers part of them.
    order = sorted(picked, key=lambda name: 0 if name in partners else 1)
    return order[:5], partners


def _place(
    rng: np.random.Generator, size: int, occupied: np.ndarray, near: tuple[int, int] | None
) -> tuple[int, int]:
    """Top-left corner for an object of `size`; tries to keep overlap with `occupied` small."""
    best, best_overlap = (0, 0), None
    for _ in range(40):
        if near is not None:
            cx, cy = near
            x = int(np.clip(cx - size // 2 + rng.integers(-size // 2, size // 2 + 1), 0, IMAGE_SIZE - size))
            y = int(np.clip(cy - size // 2 + rng.integers(-size // 2, size // 2 + 1), 0, IMAGE_SIZE - size))
        else:
            x = int(rng.integers(0, IMAGE_SIZE - size + 1))
            y = int(rng.integers(0, IMAGE_SIZE - size + 1))
        overlap = occupied[y : y + size, x : x + size].mean()
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = (x, y), overlap
        if overlap < 0.08:
            break
    return best


def make_scene(seed: int, index: int, split: Split = "heldout") -> Scene:
    """Render scene `index` of the world with `seed`; same arguments, same pixels."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index])
    names, partners = _sample_classes(rng, split)
    partner_of = {b: a for a, b in PLANTED_PAIRS}
    image = background(rng)
    owner = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.int16)  # 1-based draw index of the top object per pixel
    drawn: list[tuple[str, np.ndarray]] = []
    centres: dict[str, tuple[int, int]] = {}
    # Draw A before its partner's position is chosen: place anchors first, then partners near them.
    placement_order = [n for n in names if n not in partners] + [n for n in names if n in partners]
    positions: dict[str, tuple[int, int, int]] = {}
    occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    for name in placement_order:
        size = int(rng.integers(26, 47))
        near = None
        if name in partners:
            size = int(size * rng.uniform(0.6, 0.8))
            near = centres.get(partner_of[name])
        x, y = _place(rng, size, occupied if near is None else np.zeros_like(occupied), near)
        positions[name] = (x, y, size)
        centres[name] = (x + size // 2, y + size // 2)
        occupied[y : y + size, x : x + size] = True
    for k, name in enumerate(names, start=1):
        x, y, size = positions[name]
        local = shape_mask(name, size, rng)
        full = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
        full[y : y + size, x : x + size] = local
        region = image[y : y + size, x : x + size]
        region[local] = fill(class_by_name(name).rgb, (size, size), rng)[local]
        owner[full] = k
        drawn.append((name, full))

    labels = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    objects: list[SceneObject] = []
    for k, (name, full) in enumerate(drawn, start=1):
        visible = owner == k
        frac = float(visible.sum() / max(full.sum(), 1))
        keep = frac >= (0.15 if name in partners else MIN_VISIBLE)
        if not keep:
            # Hidden too much to count as present: erase it from the picture as well, so that the
            # image and the ground truth never disagree.
            image[visible] = background(np.random.default_rng([seed, _SPLIT_CODE[split], index, k]))[visible]
            continue
        label = len(objects) + 1
        labels[visible] = label
        objects.append(scene_object(name, visible, label, frac))
    if not objects:  # every object hidden: extremely rare, fall back to the next index's scene
        return make_scene(seed, index + 1_000_000, split)
    return Scene(image=image, labels=labels, objects=tuple(objects))


def iter_scenes(seed: int, n: int, split: Split = "heldout", start: int = 0) -> Iterator[Scene]:
    for index in range(start, start + n):
        yield make_scene(seed, index, split)


# --------------------------------------------------------------------------------------------
# POPE-style question sets
# --------------------------------------------------------------------------------------------

POPE_SPLITS = ("random", "popular", "adversarial")


@dataclass(frozen=True, slots=True)
class Question:
    question_id: int
    image: str
    text: str
    label: Literal["yes", "no"]
    object: str  # the class asked about (not part of the POPE format; kept in ground truth)


def class_statistics(scene_names: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-class image frequency (C,) and co-occurrence counts (C, C) over a set of scenes."""
    c = len(CLASSES)
    freq = np.zeros(c, np.int64)
    co = np.zeros((c, c), np.int64)
    for names in scene_names:
        idx = sorted({CLASS_INDEX[n] for n in names})
        freq[idx] += 1
        for i in idx:
            for j in idx:
                if i != j:
                    co[i, j] += 1
    return freq, co


def negatives(
    present: list[str], k: int, split: str, freq: np.ndarray, co: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """Absent classes to ask about, chosen the way POPE chooses them for `split`.

    random: uniform over absent classes; popular: the most frequent absent classes;
    adversarial: the absent classes that co-occur most with the present ones. Ties are broken by
    class order so that the choice is deterministic.
    """
    absent = [c.name for c in CLASSES if c.name not in present]
    k = min(k, len(absent))
    if split == "random":
        return [absent[i] for i in rng.choice(len(absent), size=k, replace=False)]
    if split == "popular":
        key = {n: -int(freq[CLASS_INDEX[n]]) for n in absent}
    elif split == "adversarial":
        key = {n: -int(sum(co[CLASS_INDEX[p], CLASS_INDEX[n]] for p in present)) for n in absent}
    else:
        raise ValueError(f"unknown POPE split {split!r}; expected one of {POPE_SPLITS}")
    return sorted(absent, key=lambda n: (key[n], CLASS_INDEX[n]))[:k]


def pope_questions(
    image_names: list[str], scene_names: list[list[str]], seed: int, per_image: int = 3
) -> dict[str, list[Question]]:
    """Question sets for the three POPE splits: per image up to `per_image` present objects
    ("yes", the same in every split) and as many absent ones ("no", sampled per split)."""
    freq, co = class_statistics(scene_names)
    out: dict[str, list[Question]] = {}
    for split in POPE_SPLITS:
        rng = np.random.default_rng([seed, 7, POPE_SPLITS.index(split)])
        pos_rng = np.random.default_rng([seed, 8])  # positives identical across splits
        questions: list[Question] = []
        for image, names in zip(image_names, scene_names, strict=True):
            k = min(per_image, len(names))
            yes = [names[i] for i in sorted(pos_rng.choice(len(names), size=k, replace=False))]
            no = negatives(names, k, split, freq, co, rng)
            for obj, label in [(o, "yes") for o in yes] + [(o, "no") for o in no]:
                questions.append(
                    Question(len(questions) + 1, image, _question(obj), label, obj)  # type: ignore[arg-type]
                )
        out[split] = questions
    return out


def _question(name: str) -> str:
    from probe.classes import question_text

    return question_text(name)


# --------------------------------------------------------------------------------------------
# Writing a world to disk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorldInfo:
    out: Path
    seed: int
    images: int
    split: str
    files: dict[str, str]  # relative path -> sha256 of the annotation files


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def image_name(index: int) -> str:
    return f"probe_{index:06d}.png"


def write_world(
    out: Path | str, seed: int, n_images: int, split: Split = "heldout", progress: bool = False
) -> WorldInfo:
    """Write `n_images` scenes and their annotations under `out`.

    Layout: images/*.png, masks/*.png (label maps), ground_truth.json, captions.json (JSON lines),
    probe_pope_{random,popular,adversarial}.json and probe_repope_*.json (JSON lines in the
    POPE/RePOPE format; the probe's labels are exact, so both label sets are equal), SHA256SUMS.
    """
    if n_images < 1:
        raise ValueError(f"--images must be at least 1, got {n_images}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    scenes_iter: Iterator[Scene] = iter_scenes(seed, n_images, split)
    if progress:
        from tqdm import tqdm

        scenes_iter = tqdm(scenes_iter, total=n_images, desc="rendering probe scenes", unit="img")
    records, names_per_image, image_names = [], [], []
    for index, scene in enumerate(scenes_iter):
        name = image_name(index)
        (out / "images" / name).write_bytes(_png_bytes(scene.image))
        (out / "masks" / name).write_bytes(_png_bytes(scene.labels))
        records.append(
            {"image": name, "mask": f"masks/{name}", "objects": [asdict(o) for o in scene.objects]}
        )
        names_per_image.append(scene.names)
        image_names.append(name)

    files: dict[str, str] = {}

    def _write(rel: str, text: str) -> None:
        data = text.encode()
        (out / rel).write_bytes(data)
        files[rel] = hashlib.sha256(data).hexdigest()

    gt = {
        "format": "eagle-audit probe world v1",
        "seed": seed,
        "split": split,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "classes": [{"name": c.name, "rgb": list(c.rgb)} for c in CLASSES],
        "planted_pairs": [list(p) for p in PLANTED_PAIRS],
        "images": records,
    }
    _write("ground_truth.json", json.dumps(gt, indent=1) + "\n")
    _write(
        "captions.json",
        "".join(
            json.dumps({"image": n, "caption": caption_text(names)}) + "\n"
            for n, names in zip(image_names, names_per_image, strict=True)
        ),
    )
    for split_name, qs in pope_questions(image_names, names_per_image, seed).items():
        lines = "".join(
            json.dumps({"question_id": q.question_id, "image": q.image, "text": q.text, "label": q.label})
            + "\n"
            for q in qs
        )
        _write(f"probe_pope_{split_name}.json", lines)
        _write(f"probe_repope_{split_name}.json", lines)
    (out / "SHA256SUMS").write_text("".join(f"{h}  {rel}\n" for rel, h in sorted(files.items())))
    return WorldInfo(out=out, seed=seed, images=n_images, split=split, files=files)
