"""POPE / RePOPE annotation files: load, verify checksums, deduplicate questions across splits.

An annotation directory holds JSON-lines files named `<prefix>_<labelset>_<split>.json` with
prefix `coco` (the public POPE/RePOPE files) or `probe` (a probe world), label set `pope` or
`repope` and split `random`, `popular` or `adversarial`. One line is one question::

    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg",
     "text": "Is there a snowboard in the image?", "label": "yes"}

(shown on two lines here; one line in the file).

Question ids are per split and are shared by the two label sets (RePOPE keeps POPE's ids, drops
ambiguous questions and flips wrong labels). A model should answer each unique (image, question)
pair once; `AnnotationSet.pairs` maps every pair back to each split and label set it occurs in.

Checksums: the public files are checked against `KNOWN_DIGESTS`; a probe world's files against
the world's own `SHA256SUMS` when it is present.

Example::

    >>> annotations = load_annotations("../shared/data/repope")  # doctest: +SKIP
    >>> len(annotations.questions("repope", "random")), len(annotations.pairs)  # doctest: +SKIP
    (2774, 5127)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

LabelSet = Literal["pope", "repope"]
Split = Literal["random", "popular", "adversarial"]
Label = Literal["yes", "no"]
ChecksumStatus = Literal["ok", "mismatch", "unknown"]

LABEL_SETS: tuple[LabelSet, ...] = ("pope", "repope")
SPLITS: tuple[Split, ...] = ("random", "popular", "adversarial")
PREFIXES: tuple[str, ...] = ("coco", "probe")

# SHA-256 of the public annotation files (POPE as redistributed by the RePOPE repository, and RePOPE).
KNOWN_DIGESTS: dict[str, str] = {
    "coco_pope_adversarial.json": "85436f0517a167e8034013458d47507ea75b89da7853d380f13530399f7d4018",
    "coco_pope_popular.json": "f31727768b228d0409a3ffe86b808958c05c26b5db4d593b137b14a2ec45ac98",
    "coco_pope_random.json": "196144ab005fcd23af78c7b11d7c110dbbc4ed17e361e05e11a927c8856cfde2",
    "coco_repope_adversarial.json": "8c346dbb060bf422ff92e769fa68e5ab3e8a777cb28a26e973387441e05c9ccf",
    "coco_repope_popular.json": "57832b055bae5fd6176278a4f104c98ddd84811f7d26dfcb93d481f6c9da09a5",
    "coco_repope_random.json": "f464fcaf60b24ce2f280cf33f122e000dbdd35c8e88f77c4141c9c2cba864611",
}

_QUESTION_RE = re.compile(r"^Is there (?:an? )?(?P<object>.+?) in the image\?$")


class AnnotationError(ValueError):
    """A malformed annotation file or line; the message names the file (and line) and the fix."""


class ChecksumError(AnnotationError):
    """An annotation file whose SHA-256 differs from the expected digest."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Question:
    """One POPE-format question as it appears in one file."""

    question_id: int  # unique within its split file
    image: str  # image file name relative to the image directory
    text: str  # "Is there a dog in the image?"
    label: Label  # ground truth in this file's label set

    @property
    def object(self) -> str:
        """The object asked about ("dog"), or the whole question text when it is not POPE-shaped."""
        match = _QUESTION_RE.match(self.text)
        return match.group("object") if match else self.text

    @property
    def pair(self) -> tuple[str, str]:
        """The (image, question text) key under which the question is asked once."""
        return (self.image, self.text)


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotationFile:
    """One loaded file: its questions in file order and how its checksum compared."""

    path: Path
    label_set: LabelSet
    split: Split
    questions: tuple[Question, ...]
    sha256: str
    checksum: ChecksumStatus  # ok: matches the expected digest; unknown: no digest to compare with
    expected_sha256: str | None = None

    @property
    def n_yes(self) -> int:
        return sum(q.label == "yes" for q in self.questions)

    @property
    def n_no(self) -> int:
        return sum(q.label == "no" for q in self.questions)


@dataclass(frozen=True, kw_only=True, slots=True)
class Occurrence:
    """Where a unique (image, question) pair occurs: one split file of one label set."""

    label_set: LabelSet
    split: Split
    question_id: int
    label: Label


@dataclass(frozen=True, kw_only=True, slots=True)
class UniquePair:
    """An (image, question) pair asked once, with every place it occurs."""

    image: str
    text: str
    occurrences: tuple[Occurrence, ...]  # in label-set then split order

    @property
    def key(self) -> tuple[str, str]:
        return (self.image, self.text)

    def label(self, label_set: LabelSet) -> Label | None:
        """The pair's label in `label_set`, None if that label set does not contain it."""
        for occ in self.occurrences:
            if occ.label_set == label_set:
                return occ.label
        return None


@dataclass(frozen=True, kw_only=True)
class AnnotationSet:
    """All annotation files of one directory (both label sets, all three splits)."""

    root: Path
    prefix: str  # "coco" or "probe"
    files: Mapping[tuple[LabelSet, Split], AnnotationFile]
    pairs: tuple[UniquePair, ...] = field(init=False)
    _by_id: dict[tuple[LabelSet, Split], dict[int, Question]] = field(init=False, repr=False)
    _pair_index: dict[tuple[str, str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_id: dict[tuple[LabelSet, Split], dict[int, Question]] = {}
        occurrences: dict[tuple[str, str], list[Occurrence]] = {}
        for (label_set, split), f in sorted(self.files.items(), key=lambda kv: _file_order(*kv[0])):
            by_id[(label_set, split)] = {q.question_id: q for q in f.questions}
            for q in f.questions:
                occurrences.setdefault(q.pair, []).append(
                    Occurrence(label_set=label_set, split=split, question_id=q.question_id, label=q.label)
                )
        pairs = tuple(UniquePair(image=k[0], text=k[1], occurrences=tuple(v)) for k, v in occurrences.items())
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "_pair_index", {p.key: i for i, p in enumerate(pairs)})
        self._check_consistency()

    def _check_consistency(self) -> None:
        # The two label sets must agree on what a (split, question id) asks, and a pair must
        # carry one label per label set; otherwise answers would be scored against the wrong item.
        for split in SPLITS:
            pope, repope = self._by_id.get(("pope", split), {}), self._by_id.get(("repope", split), {})
            for qid, q in repope.items():
                other = pope.get(qid)
                if other is not None and other.pair != q.pair:
                    raise AnnotationError(
                        f"question {qid} of split {split} asks {q.text!r} about {q.image} in RePOPE but "
                        f"{other.text!r} about {other.image} in POPE: the files in {self.root} do not belong "
                        "together; fetch them again with `eagle-audit pope fetch`"
                    )
        for pair in self.pairs:
            for label_set in LABEL_SETS:
                labels = {o.label for o in pair.occurrences if o.label_set == label_set}
                if len(labels) > 1:
                    where = ", ".join(
                        f"{o.split}#{o.question_id}={o.label}"
                        for o in pair.occurrences
                        if o.label_set == label_set
                    )
                    raise AnnotationError(
                        f"{label_set} labels disagree across splits for {pair.text!r} on {pair.image} "
                        f"({where}) in {self.root}"
                    )

    @property
    def label_sets(self) -> tuple[LabelSet, ...]:
        return tuple(ls for ls in LABEL_SETS if any(k[0] == ls for k in self.files))

    @property
    def splits(self) -> tuple[Split, ...]:
        return tuple(s for s in SPLITS if any(k[1] == s for k in self.files))

    def questions(self, label_set: LabelSet, split: Split) -> tuple[Question, ...]:
        """Questions of one file, in file order; empty when the file is absent."""
        f = self.files.get((label_set, split))
        return f.questions if f is not None else ()

    def question(self, label_set: LabelSet, split: Split, question_id: int) -> Question | None:
        return self._by_id.get((label_set, split), {}).get(question_id)

    def pair_of(self, split: Split, question_id: int) -> UniquePair | None:
        """The unique pair asked by question `question_id` of `split` (in either label set)."""
        for label_set in LABEL_SETS:
            q = self.question(label_set, split, question_id)
            if q is not None:
                return self.pairs[self._pair_index[q.pair]]
        return None

    def unique_pairs(self, label_set: LabelSet | None = None) -> tuple[UniquePair, ...]:
        """Unique (image, question) pairs of one label set, or of both (None)."""
        if label_set is None:
            return self.pairs
        return tuple(p for p in self.pairs if any(o.label_set == label_set for o in p.occurrences))


def _file_order(label_set: str, split: str) -> tuple[int, int]:
    return (LABEL_SETS.index(label_set), SPLITS.index(split))  # type: ignore[arg-type]


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sha256sums(path: Path | str) -> dict[str, str]:
    """Parse a `sha256sum`-style file (`<hex>  <name>` per line) into name -> digest."""
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *]?(.+)", line.strip())
        if match is None:
            raise AnnotationError(f"{path}:{lineno}: expected '<sha256>  <file name>', got {line!r}")
        out[match.group(2)] = match.group(1).lower()
    return out


def check_image_name(name: str, where: str) -> str:
    """Reject image names that could escape the image directory (absolute, `..`, backslashes)."""
    if not name or name.strip() != name:
        raise AnnotationError(f"{where}: image name {name!r} is empty or has surrounding whitespace")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if (
        "\\" in name
        or "\x00" in name
        or posix.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or ".." in posix.parts
    ):
        raise AnnotationError(
            f"{where}: image name {name!r} points outside the image directory; "
            "image names must be relative paths without '..'"
        )
    return name


def image_path(image_dir: Path | str, name: str) -> Path:
    """Resolve an image name under `image_dir`, refusing names (or symlinks) that leave it."""
    check_image_name(name, f"image {name!r}")
    root = Path(image_dir).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise AnnotationError(f"image {name!r} resolves to {path}, outside the image directory {root}")
    return path


def parse_annotation_lines(lines: Iterable[str], source: str) -> tuple[Question, ...]:
    """Parse POPE JSON lines; errors name `source` and the 1-based line number."""
    questions: list[Question] = []
    seen: dict[int, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"{source}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnnotationError(
                f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object"
            ) from exc
        if not isinstance(row, dict):
            raise AnnotationError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("question_id", "image", "text", "label") if k not in row]
        if missing:
            raise AnnotationError(f"{where}: missing field(s) {', '.join(missing)}")
        qid = row["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, int):
            raise AnnotationError(f"{where}: question_id must be an integer, got {qid!r}")
        label = row["label"]
        if label not in ("yes", "no"):
            raise AnnotationError(f"{where}: unknown label {label!r}; labels must be 'yes' or 'no'")
        if not isinstance(row["image"], str) or not isinstance(row["text"], str):
            raise AnnotationError(f"{where}: image and text must be strings")
        if qid in seen:
            raise AnnotationError(f"{where}: question_id {qid} already used on line {seen[qid]}")
        seen[qid] = lineno
        questions.append(
            Question(
                question_id=qid, image=check_image_name(row["image"], where), text=row["text"], label=label
            )
        )
    return tuple(questions)


def file_name(prefix: str, label_set: LabelSet, split: Split) -> str:
    return f"{prefix}_{label_set}_{split}.json"


def load_annotation_file(
    path: Path | str,
    label_set: LabelSet,
    split: Split,
    expected_sha256: str | None = None,
    strict: bool = True,
) -> AnnotationFile:
    """Load one JSON-lines file and compare its SHA-256 with `expected_sha256`.

    With `strict` a mismatch raises ChecksumError; otherwise the file loads with checksum
    status "mismatch" (for `pope stats`, which reports rather than refuses).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(f"cannot read annotation file {path}: {exc.strerror}") from exc
    sha = hashlib.sha256(data).hexdigest()
    status: ChecksumStatus = (
        "unknown" if expected_sha256 is None else ("ok" if sha == expected_sha256 else "mismatch")
    )
    if status == "mismatch" and strict:
        raise ChecksumError(
            f"{path}: SHA-256 {sha} does not match the expected {expected_sha256}; the file is corrupt or "
            "a different version: fetch it again with `eagle-audit pope fetch`"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return AnnotationFile(
        path=path,
        label_set=label_set,
        split=split,
        questions=parse_annotation_lines(text.splitlines(), str(path)),
        sha256=sha,
        checksum=status,
        expected_sha256=expected_sha256,
    )


def detect_prefix(root: Path) -> str:
    found = [
        p for p in PREFIXES if any((root / file_name(p, ls, s)).exists() for ls in LABEL_SETS for s in SPLITS)
    ]
    if not found:
        expected = ", ".join(file_name(p, "pope", "random") for p in PREFIXES)
        raise AnnotationError(
            f"no POPE/RePOPE annotation files in {root} (looked for names like {expected}); "
            "obtain the public ones with `eagle-audit pope fetch --out DIR` or write a probe world"
        )
    if len(found) > 1:
        raise AnnotationError(
            f"{root} holds both coco_* and probe_* annotation files; keep one kind per directory"
        )
    return found[0]


def expected_digests(root: Path, prefix: str) -> dict[str, str]:
    """Digests to verify against: KNOWN_DIGESTS for the public files, the directory's SHA256SUMS
    for a probe world (digests of generated worlds cannot be known in advance)."""
    if prefix == "coco":
        return dict(KNOWN_DIGESTS)
    sums = root / "SHA256SUMS"
    return read_sha256sums(sums) if sums.exists() else {}


def load_annotations(root: Path | str, strict: bool = True) -> AnnotationSet:
    """Load every annotation file present in `root` (at least one), verifying checksums.

    Missing files are allowed (a directory may hold only POPE, say); a file whose checksum does
    not match raises ChecksumError unless `strict=False`.
    """
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"annotation directory {root} does not exist")
    prefix = detect_prefix(root)
    digests = expected_digests(root, prefix)
    files: dict[tuple[LabelSet, Split], AnnotationFile] = {}
    for label_set in LABEL_SETS:
        for split in SPLITS:
            name = file_name(prefix, label_set, split)
            if (root / name).exists():
                files[(label_set, split)] = load_annotation_file(
                    root / name, label_set, split, expected_sha256=digests.get(name), strict=strict
                )
    return AnnotationSet(root=root, prefix=prefix, files=files)
