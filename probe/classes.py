"""The probe world's object classes and its planted co-occurrence biases.

Every class has its own shape *and* its own colour, so a class is visually distinct from every
other one even at low resolution. Two pairs A -> B are planted: in training scenes B appears in
almost every image that contains A, partly hidden behind A, which teaches the probe model the
language-prior shortcut "A, therefore B" that the audit must later catch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ObjectClass:
    name: str  # one English word, used in questions and captions
    rgb: tuple[int, int, int]  # base fill colour
    weight: float  # relative sampling frequency (non-uniform, so POPE "popular" means something)

    @property
    def article(self) -> str:
        return "an" if self.name[0] in "aeiou" else "a"


CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("circle", (215, 35, 35), 1.6),
    ObjectClass("square", (30, 70, 220), 1.4),
    ObjectClass("triangle", (30, 170, 50), 1.3),
    ObjectClass("star", (245, 215, 20), 1.2),
    ObjectClass("heart", (250, 130, 190), 1.1),
    ObjectClass("cross", (245, 245, 245), 1.0),
    ObjectClass("diamond", (20, 210, 220), 0.9),
    ObjectClass("moon", (245, 130, 20), 0.9),
    ObjectClass("ring", (200, 30, 200), 0.8),
    ObjectClass("arrow", (160, 235, 60), 0.8),  # never black: masking fills removed regions with black
    ObjectClass("hexagon", (110, 40, 170), 0.7),
    ObjectClass("bolt", (140, 85, 35), 0.7),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# A -> B: in training scenes B accompanies A (see world.TRAIN_PARTNER_RATE).
PLANTED_PAIRS: tuple[tuple[str, str], ...] = (("moon", "star"), ("arrow", "ring"))
PLANTED_CLASSES: frozenset[str] = frozenset(c for pair in PLANTED_PAIRS for c in pair)


def class_by_name(name: str) -> ObjectClass:
    """Look a class up by name; unknown names fail with the list of known ones."""
    try:
        return CLASSES[CLASS_INDEX[name]]
    except KeyError as exc:
        raise KeyError(f"unknown probe class {name!r}; known classes: {', '.join(CLASS_NAMES)}") from exc


def question_text(name: str) -> str:
    """The POPE question for a class, e.g. 'Is there an arrow in the image?'."""
    return f"Is there {class_by_name(name).article} {name} in the image?"


CAPTION_PROMPT = "Describe the image."


def caption_text(names: list[str]) -> str:
    """Reference caption naming the objects in canonical class order: 'a circle, a star and a moon.'"""
    ordered = sorted(set(names), key=CLASS_INDEX.__getitem__)
    if not ordered:
        raise ValueError("a caption needs at least one object")
    parts = [f"{class_by_name(n).article} {n}" for n in ordered]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return body + "."
