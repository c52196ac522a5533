"""The hard probe suite: scenes on which attribution methods differ, with exact ground truth.

The shipped probe world asks about one small object among 1-4 distinct ones: any decent method
finds its few regions first and every insertion curve sits at the ceiling. Hard scenes keep the
world's classes, drawing and image size (the shipped model answers them), but make the evidence
harder to order:

* ``copies``: the asked-about class drawn 2-3 times. Any one copy is enough for "Yes", so
  insertion wants one copy shown first, while deletion only falls once every copy is gone.
* ``large``: one large drawing (52-66 px: its box a quarter of the image, the shape about a
  tenth): many regions, and any big enough part keeps the "Yes".
* every scene adds 2-4 other objects (5-6 in all is common) and, half of the time, a same-colour
  distractor: a plain ellipse in the asked class's colour, which is not that class.

Hallucination scenes hold a planted anchor A (moon, arrow) and not its partner B, with the same
clutter, sometimes two copies of A, so the planted cause spans several objects.

A scene is a pure function of (seed, index, kind); the ground truth lists every drawn thing.

Example::

    >>> hs = make_hard_scene(0, 3, "copies")
    >>> hs.scene.image.shape, hs.target
    ((128, 128, 3), 'heart')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from probe.classes import CLASSES, PLANTED_CLASSES, PLANTED_PAIRS, class_by_name
from probe.render import IMAGE_SIZE, background, fill, shape_mask
from probe.world import Scene, SceneObject, scene_object

HardKind = Literal["copies", "large", "planted"]
HARD_KINDS: tuple[HardKind, ...] = ("copies", "large", "planted")
DISTRACTOR = "distractor"  # name of the same-colour ellipse in the ground truth
_KIND_CODE = {"copies": 11, "large": 12, "planted": 13}


@dataclass(frozen=True)
class HardScene:
    scene: Scene  # image, label map (one label per drawn thing) and the visible objects
    kind: HardKind
    target: str  # the class asked about (for "planted": the absent partner B)
    cause: str | None  # the planted anchor A that drives the hallucination ("planted" only)

    def mask(self, name: str) -> np.ndarray:
        """Union of the visible masks of every drawn thing called `name` (copies included)."""
        labels = [o.label for o in self.scene.objects if o.name == name]
        return np.isin(self.scene.labels, labels)

    def box(self, name: str) -> np.ndarray:
        """Boolean union of the boxes of every visible thing called `name`."""
        out = np.zeros(self.scene.labels.shape, bool)
        for o in self.scene.objects:
            if o.name == name:
                x0, y0, x1, y1 = o.box
                out[y0:y1, x0:x1] = True
        return out


def _ellipse(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    half = (size - 1) / 2
    a, b = 0.95, float(rng.uniform(0.3, 0.45))
    t = float(rng.uniform(0, np.pi))
    x, y = (xx - half) / half, (yy - half) / half
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _free_spot(rng: np.random.Generator, size: int, occupied: np.ndarray) -> tuple[int, int]:
    best, best_overlap = (0, 0), 2.0
    for _ in range(60):
        x = int(rng.integers(0, IMAGE_SIZE - size + 1))
        y = int(rng.integers(0, IMAGE_SIZE - size + 1))
        overlap = float(occupied[y : y + size, x : x + size].mean())
        if overlap < best_overlap:
            best, best_overlap = (x, y), overlap
        if overlap < 0.03:
            break
    return best


def make_hard_scene(seed: int, index: int, kind: HardKind) -> HardScene:
    """Render hard scene `index` of `kind` for `seed`; same arguments, same pixels."""
    if kind not in _KIND_CODE:
        raise ValueError(f"unknown hard scene kind {kind!r}; choose one of {', '.join(HARD_KINDS)}")
    rng = np.random.default_rng([seed, _KIND_CODE[kind], index])
    names = [c.name for c in CLASSES]
    cause = None
    # (name, size, shape mask or None for the class shape), drawn in this order
    things: list[tuple[str, int, np.ndarray | None]] = []
    if kind == "planted":
        cause, target = PLANTED_PAIRS[int(rng.integers(len(PLANTED_PAIRS)))]
        for _ in range(1 + int(rng.random() < 0.35)):
            things.append((cause, int(rng.integers(30, 44)), None))
        pool = [n for n in names if n not in PLANTED_CLASSES]
    else:
        target = str(rng.choice([n for n in names if n not in PLANTED_CLASSES]))
        if kind == "copies":
            for _ in range(int(rng.integers(2, 4))):
                things.append((target, int(rng.integers(24, 36)), None))
        else:
            things.append((target, int(rng.integers(52, 67)), None))
        pool = [n for n in names if n != target and n not in PLANTED_CLASSES]
    others = rng.choice(pool, size=int(rng.integers(2, 5)), replace=False)
    for name in others:
        things.append((str(name), int(rng.integers(22, 34)), None))
    if kind != "planted" and rng.random() < 0.5:
        size = int(rng.integers(24, 34))
        things.append((DISTRACTOR, size, _ellipse(size, rng)))
    rgb_of = {n: class_by_name(n).rgb for n in names}
    rgb_of[DISTRACTOR] = class_by_name(target).rgb

    image = background(rng)
    owner = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.int16)
    occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    drawn: list[tuple[str, np.ndarray]] = []
    for k, (name, size, local) in enumerate(things, start=1):
        local = shape_mask(name, size, rng) if local is None else local
        x, y = _free_spot(rng, size, occupied)
        occupied[y : y + size, x : x + size] = True
        full = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
        full[y : y + size, x : x + size] = local
        image[y : y + size, x : x + size][local] = fill(rgb_of[name], (size, size), rng)[local]
        owner[full] = k
        drawn.append((name, full))

    labels = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    objects: list[SceneObject] = []
    for k, (name, full) in enumerate(drawn, start=1):
        visible = owner == k
        if not visible.any():
            continue
        label = len(objects) + 1
        labels[visible] = label
        objects.append(scene_object(name, visible, label, float(visible.sum() / full.sum())))
    return HardScene(
        scene=Scene(image=image, labels=labels, objects=tuple(objects)), kind=kind, target=target, cause=cause
    )
