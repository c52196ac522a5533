"""Object mentions in free text: which words of a caption name which object class, and where.

A `Vocabulary` maps surface forms (one or more words, singular and plural) to class names and
finds them in text by longest match, so "hot dog" is a hot dog and not a dog, and "teddy bear" is
not a bear. Hyphens count as spaces ("hot-dog"). Offsets are character offsets into the text as
given, which token marking maps onto the model's own tokens.

`COCO` covers the 80 COCO classes with this project's own synonym table (`COCO_SYNONYMS`:
plurals, two-word names, a few common synonyms such as "sofa" -> couch, "bike" -> bicycle,
"man" -> person; every person word of CHAIR's own table, "chef", "passenger", "traveler", ...).
A few words are also adjectives or modifiers ("an orange cat", "a remote village", "a baseball
player"); those count as a mention only when no other word follows them directly. Person words
followed by another class ("a baby elephant", "an adult giraffe", "a passenger train") name that
class, not a person. `vocabulary("probe")` covers the probe world's 12 classes (built on first use,
so importing this module never imports the probe package).

Example::

    >>> [(m.cls, m.text) for m in COCO.extract("Two men eat hot dogs next to an orange cat.")]
    [('person', 'men'), ('hot dog', 'hot dogs'), ('cat', 'cat')]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# Singular surface forms per class (plurals are derived, see PLURALS for the irregular ones).
COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    # Every person word of CHAIR's table (Rohrbach et al. 2018, as lmms-eval ships it, including its
    # misspelling "solider"), plus a few of our own (toddler, pedestrian, surfer, crowd, ...).
    "person": (
        "person", "man", "woman", "boy", "girl", "child", "kid", "lady", "guy", "baby", "toddler",
        "teenager", "adult", "player", "skier", "surfer", "snowboarder", "skateboarder", "pedestrian",
        "rider", "people", "crowd", "chef", "baker", "worker", "passenger", "sister", "brother",
        "biker", "policeman", "policewoman", "cop", "officer", "cowboy", "bride", "groom", "male",
        "female", "traveler", "traveller", "mother", "father", "gentleman", "pitcher",
        "catcher", "umpire", "skater", "foreigner", "caller", "offender", "coworker", "trespasser",
        "patient", "politician", "soldier", "solider", "grandchild", "serviceman", "walker", "drinker",
        "doctor", "bicyclist", "cyclist", "thief", "buyer", "student", "camper", "driver", "hunter",
        "shopper", "villager", "tourist", "spectator", "athlete", "vendor", "customer", "infant",
        "youngster", "teen", "daughter", "son", "friend",
    ),
    "bicycle": ("bicycle", "bike", "cycle"),
    "car": ("car", "automobile", "sedan", "taxi", "suv"),
    "motorcycle": ("motorcycle", "motorbike", "motor bike", "scooter"),
    "airplane": ("airplane", "aeroplane", "plane", "jet", "airliner", "aircraft"),
    "bus": ("bus",),
    "train": ("train", "locomotive"),
    "truck": ("truck", "pickup truck", "lorry"),
    "boat": ("boat", "ship", "sailboat", "canoe", "kayak", "yacht"),
    "traffic light": ("traffic light", "traffic signal", "stoplight", "stop light"),
    "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter",),
    "bench": ("bench",),
    "bird": ("bird", "pigeon", "seagull", "duck", "goose", "parrot", "crow"),
    "cat": ("cat", "kitten", "kitty"),
    "dog": ("dog", "puppy", "pup"),
    "horse": ("horse", "pony", "foal"),
    "sheep": ("sheep", "lamb"),
    "cow": ("cow", "cattle", "bull", "calf", "ox"),
    "elephant": ("elephant",),
    "bear": ("bear",),
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack", "knapsack", "rucksack"),
    "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "hand bag", "purse"),
    "tie": ("tie", "necktie"),
    "suitcase": ("suitcase", "suit case", "luggage"),
    "frisbee": ("frisbee",),
    "skis": ("ski", "skis"),
    "snowboard": ("snowboard",),
    "sports ball": (
        "ball", "sports ball", "soccer ball", "tennis ball", "football", "basketball", "baseball",
        "volleyball",
    ),
    "kite": ("kite",),
    "baseball bat": ("baseball bat", "bat"),
    "baseball glove": ("baseball glove", "baseball mitt", "glove", "mitt"),
    "skateboard": ("skateboard", "skate board"),
    "surfboard": ("surfboard", "surf board"),
    "tennis racket": ("tennis racket", "tennis racquet", "racket", "racquet"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass", "wineglass"),
    "cup": ("cup", "mug"),
    "fork": ("fork",),
    "knife": ("knife",),
    "spoon": ("spoon",),
    "bowl": ("bowl",),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich",),
    "orange": ("orange",),
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hotdog"),
    "pizza": ("pizza",),
    "donut": ("donut", "doughnut"),
    "cake": ("cake", "cupcake"),
    "chair": ("chair", "stool"),
    "couch": ("couch", "sofa"),
    "potted plant": ("potted plant", "houseplant", "house plant", "plant", "flower pot", "flowerpot"),
    "bed": ("bed",),
    "dining table": ("dining table", "table", "dinner table", "kitchen table"),
    "toilet": ("toilet",),
    "tv": ("tv", "television", "tv set", "television set"),
    "laptop": ("laptop", "laptop computer", "notebook computer"),
    "mouse": ("mouse", "computer mouse"),
    "remote": ("remote", "remote control"),
    "keyboard": ("keyboard",),
    "cell phone": ("cell phone", "cellphone", "phone", "mobile phone", "smartphone", "smart phone"),
    "microwave": ("microwave", "microwave oven"),
    "oven": ("oven", "stove"),
    "toaster": ("toaster",),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge"),
    "book": ("book",),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddy", "stuffed animal"),
    "hair drier": ("hair drier", "hair dryer", "hairdryer", "blow dryer", "blow drier"),
    "toothbrush": ("toothbrush", "tooth brush"),
}  # fmt: skip

# Words that are also common modifiers: a mention only when no word follows them directly
# ("an orange." / "an orange and a pear" yes; "an orange cat" no).
COCO_MODIFIERS: frozenset[str] = frozenset(
    {"orange", "remote", "baseball", "football", "tennis ball", "ski", "cycle"}
)

# Words of a class that modify a following mention of *another* class: "a baby elephant" and "an
# adult giraffe" are elephants and giraffes, "a passenger train" is a train, not a person. Only the
# singular forms (plural person words do not modify: "the men" is never "the men elephant").
COCO_CLASS_MODIFIERS: frozenset[str] = frozenset(COCO_SYNONYMS["person"]) - {"people", "crowd"}

# Irregular or invariant plurals of the last word of a form.
PLURALS: dict[str, str] = {
    "man": "men", "woman": "women", "person": "people", "child": "children", "people": "people",
    "knife": "knives", "mouse": "mice", "goose": "geese", "calf": "calves", "ox": "oxen",
    "sheep": "sheep", "skis": "skis", "scissors": "scissors", "broccoli": "broccoli",
    "cattle": "cattle", "luggage": "luggage", "bus": "buses", "glass": "glasses", "lady": "ladies",
    "teddy": "teddies", "kitty": "kitties", "puppy": "puppies", "pony": "ponies", "crowd": "crowds",
    "tv": "tvs", "suv": "suvs", "policeman": "policemen", "policewoman": "policewomen",
    "gentleman": "gentlemen", "serviceman": "servicemen", "grandchild": "grandchildren", "thief": "thieves",
}  # fmt: skip

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def plural(word: str) -> str:
    """English plural of one word (irregular ones from PLURALS)."""
    if word in PLURALS:
        return PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def forms(surface: str) -> tuple[str, str]:
    """Singular and plural of a (multi-word) surface form; the last word is inflected."""
    *head, last = surface.split()
    return surface, " ".join([*head, plural(last)])


@dataclass(frozen=True, kw_only=True, slots=True)
class Mention:
    """One object mention in a text."""

    cls: str  # the class it names ("dining table")
    text: str  # the words as written ("tables")
    start: int  # character offset of the first character in the text
    end: int  # character offset one past the last character


@dataclass(frozen=True)
class Vocabulary:
    """Surface forms -> class names, matched longest first; see the module docstring."""

    classes: tuple[str, ...]
    table: Mapping[tuple[str, ...], str]  # lower-cased word tuple -> class
    modifiers: frozenset[tuple[str, ...]] = frozenset()  # no mention when any word follows
    class_modifiers: frozenset[tuple[str, ...]] = frozenset()  # no mention when another class follows
    max_words: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_words", max((len(k) for k in self.table), default=1))
        unknown = sorted(set(self.table.values()) - set(self.classes))
        if unknown:
            raise ValueError(f"synonym table names classes {unknown} that are not in the class list")

    @classmethod
    def from_synonyms(
        cls,
        classes: Iterable[str],
        synonyms: Mapping[str, Iterable[str]],
        modifiers: Iterable[str] = (),
        class_modifiers: Iterable[str] = (),
    ) -> Vocabulary:
        """Build from singular surface forms per class; plurals are added. A form claimed by two
        classes is an error (the table would be ambiguous). `modifiers` count as a mention only
        when no word follows them; `class_modifiers` only when no mention of another class follows
        them ("a baby elephant" is an elephant). Both are singular forms."""
        classes = tuple(classes)
        table: dict[tuple[str, ...], str] = {}
        for name in classes:
            for surface in synonyms.get(name, (name,)):
                for form in forms(surface.lower()):
                    key = tuple(form.split())
                    if table.get(key, name) != name:
                        raise ValueError(f"surface form {form!r} is claimed by {table[key]!r} and {name!r}")
                    table[key] = name
        mods = frozenset(tuple(m.lower().split()) for m in modifiers)  # singular only: "skis here" is skis
        class_mods = frozenset(tuple(m.lower().split()) for m in class_modifiers)
        return cls(classes=classes, table=table, modifiers=mods, class_modifiers=class_mods)

    def extract(self, text: str) -> list[Mention]:
        """All mentions in `text`, left to right, non-overlapping, longest match first."""
        words = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
        out: list[Mention] = []
        i = 0
        while i < len(words):
            found = self._match(text, words, i)
            if found is None:
                i += 1
                continue
            cls, n = found
            key = tuple(w for w, _, _ in words[i : i + n])
            if key in self.class_modifiers and self._followed_by_other_class(text, words, i + n, cls):
                i += n  # "baby" in "a baby elephant": the elephant is the mention
                continue
            start, end = words[i][1], words[i + n - 1][2]
            out.append(Mention(cls=cls, text=text[start:end], start=start, end=end))
            i += n
        return out

    def _match(self, text: str, words: list[tuple[str, int, int]], i: int) -> tuple[str, int] | None:
        """The class and word count of the longest form starting at word `i`, None if none does."""
        for n in range(min(self.max_words, len(words) - i), 0, -1):
            chunk = words[i : i + n]
            # words of one form must be separated by spaces or hyphens only
            if any(text[a[2] : b[1]] not in (" ", "-") for a, b in zip(chunk, chunk[1:], strict=False)):
                continue
            key = tuple(w for w, _, _ in chunk)
            cls = self.table.get(key)
            if cls is None:
                continue
            if key in self.modifiers and self._followed_by_word(text, words, i + n):
                continue
            return cls, n
        return None

    def _followed_by_other_class(
        self, text: str, words: list[tuple[str, int, int]], j: int, cls: str
    ) -> bool:
        if j >= len(words) or text[words[j - 1][2] : words[j][1]] not in (" ", "-"):
            return False
        after = self._match(text, words, j)
        return after is not None and after[0] != cls

    @staticmethod
    def _followed_by_word(text: str, words: list[tuple[str, int, int]], j: int) -> bool:
        if j >= len(words):
            return False
        gap = text[words[j - 1][2] : words[j][1]]
        return gap in (" ", "-") and words[j][0] not in _FUNCTION_WORDS


_FUNCTION_WORDS = frozenset(
    "and or but with on in at of to from by near next behind under over for is are was were has have "
    "that which who while as the a an here there too also".split()
)

COCO = Vocabulary.from_synonyms(COCO_CLASSES, COCO_SYNONYMS, COCO_MODIFIERS, COCO_CLASS_MODIFIERS)


@functools.cache
def _probe_vocabulary() -> Vocabulary:
    from probe.classes import CLASS_NAMES

    return Vocabulary.from_synonyms(CLASS_NAMES, {})


def vocabulary(name: str) -> Vocabulary:
    """The vocabulary called `name`: "coco" or "probe"."""
    if name == "coco":
        return COCO
    if name == "probe":
        return _probe_vocabulary()
    raise KeyError(f"unknown vocabulary {name!r}; choose 'coco' or 'probe'")
