"""Loading POPE/RePOPE files: real counts, checksums, dedup, errors naming file and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from auditors.annotations import (
    KNOWN_DIGESTS,
    AnnotationError,
    ChecksumError,
    check_image_name,
    image_path,
    load_annotation_file,
    load_annotations,
    read_sha256sums,
    sha256_file,
)


def _line(qid: int, image: str = "img_1.jpg", obj: str = "dog", label: str = "yes") -> str:
    return json.dumps(
        {"question_id": qid, "image": image, "text": f"Is there a {obj} in the image?", "label": label}
    )


def test_real_counts(real_annotations) -> None:
    a = real_annotations
    assert [len(a.questions("pope", s)) for s in ("random", "popular", "adversarial")] == [3000, 3000, 3000]
    assert [len(a.questions("repope", s)) for s in ("random", "popular", "adversarial")] == [2774, 2727, 2684]
    assert len(a.unique_pairs("pope")) == 5127
    assert len(a.unique_pairs("repope")) == 4779
    assert len(a.pairs) == 5127  # RePOPE adds no pair of its own
    assert all(f.checksum == "ok" for f in a.files.values())


def test_real_flips_and_removals_match_the_paper(real_annotations) -> None:
    a = real_annotations
    yes_to_no, removed_pos = set(), set()
    no_to_yes, removed_neg = {}, {}
    for split in ("random", "popular", "adversarial"):
        repope = {q.question_id: q for q in a.questions("repope", split)}
        n2y = rn = 0
        for q in a.questions("pope", split):
            r = repope.get(q.question_id)
            if q.label == "yes":
                if r is None:
                    removed_pos.add((split, q.pair))
                elif r.label == "no":
                    yes_to_no.add((split, q.pair))
            else:
                if r is None:
                    rn += 1
                elif r.label == "yes":
                    n2y += 1
        no_to_yes[split], removed_neg[split] = n2y, rn
    assert len(yes_to_no) == 3 * 139 and len({p for _, p in yes_to_no}) == 139
    assert len({p for _, p in removed_pos}) == 207
    assert no_to_yes == {"random": 5, "popular": 39, "adversarial": 33}
    assert removed_neg == {"random": 19, "popular": 66, "adversarial": 109}


def test_pairs_map_back_to_every_split_and_label_set(real_annotations) -> None:
    a = real_annotations
    pair = a.pair_of("random", 1)
    assert pair is not None and pair.text == "Is there a snowboard in the image?"
    places = {(o.label_set, o.split) for o in pair.occurrences}
    # a positive question occurs in all three splits of both label sets
    assert places == {(ls, s) for ls in ("pope", "repope") for s in ("random", "popular", "adversarial")}
    assert pair.label("pope") == "yes"
    assert a.pair_of("random", 10**9) is None


def test_known_digests_match_the_shared_sums(real_annotations_dir: Path) -> None:
    assert read_sha256sums(real_annotations_dir / "SHA256SUMS") == KNOWN_DIGESTS
    assert (
        sha256_file(real_annotations_dir / "coco_pope_random.json") == KNOWN_DIGESTS["coco_pope_random.json"]
    )


def test_tampered_public_file_is_refused(real_annotations_dir: Path, tmp_path: Path) -> None:
    for name in KNOWN_DIGESTS:
        shutil.copy(real_annotations_dir / name, tmp_path / name)
    target = tmp_path / "coco_repope_random.json"
    target.write_text(target.read_text() + "\n")  # one byte more: same questions, different file
    with pytest.raises(ChecksumError, match=r"coco_repope_random\.json: SHA-256 [0-9a-f]{64} does not match"):
        load_annotations(tmp_path)
    relaxed = load_annotations(tmp_path, strict=False)
    assert relaxed.files[("repope", "random")].checksum == "mismatch"
    assert relaxed.files[("pope", "random")].checksum == "ok"


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "coco_pope_random.json"
    path.write_text(_line(1) + "\n" + _line(2) + "\n{not json\n")
    with pytest.raises(AnnotationError, match=r"coco_pope_random\.json:3: not valid JSON"):
        load_annotation_file(path, "pope", "random")


def test_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "coco_pope_random.json"
    path.write_text(_line(1) + "\n" + _line(2, label="maybe") + "\n")
    with pytest.raises(AnnotationError, match=r"coco_pope_random\.json:2: unknown label 'maybe'"):
        load_annotation_file(path, "pope", "random")


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (
            '{"question_id": "1", "image": "a.jpg", "text": "t", "label": "yes"}',
            "question_id must be an integer",
        ),
        ('{"question_id": 1, "image": "a.jpg", "label": "yes"}', "missing field(s) text"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_other_malformed_lines(tmp_path: Path, bad: str, error: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(bad + "\n")
    with pytest.raises(AnnotationError) as exc:
        load_annotation_file(path, "pope", "random")
    assert str(exc.value).startswith(f"{path}:1: ") and error in str(exc.value)


def test_duplicate_question_id(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(_line(1) + "\n" + _line(1, obj="cat") + "\n")
    with pytest.raises(AnnotationError, match=r"x\.json:2: question_id 1 already used on line 1"):
        load_annotation_file(path, "pope", "random")


@pytest.mark.parametrize(
    "name",
    ["../secret.jpg", "/etc/passwd", "a/../../b.jpg", "..\\b.jpg", "C:\\x.jpg", "C:x.jpg", "", " a.jpg"],
)
def test_image_names_that_escape_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(AnnotationError):
        check_image_name(name, "where")
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"question_id": 1, "image": name, "text": "t", "label": "no"}) + "\n")
    with pytest.raises(AnnotationError, match=r"x\.json:1: image name"):
        load_annotation_file(path, "pope", "random")


def test_image_path_refuses_symlink_escape(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "ok.jpg").write_bytes(b"x")
    (images / "sub").mkdir()
    assert image_path(images, "ok.jpg") == (images / "ok.jpg").resolve()
    assert image_path(images, "sub/a.jpg") == (images / "sub" / "a.jpg").resolve()
    (images / "link").symlink_to(tmp_path)
    with pytest.raises(AnnotationError, match="outside the image directory"):
        image_path(images, "link/x.jpg")


def test_directory_without_annotations(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no POPE/RePOPE annotation files in"):
        load_annotations(tmp_path)
    with pytest.raises(AnnotationError, match="does not exist"):
        load_annotations(tmp_path / "nope")


def test_inconsistent_label_sets_are_refused(tmp_path: Path) -> None:
    (tmp_path / "coco_pope_random.json").write_text(_line(1, obj="dog") + "\n")
    (tmp_path / "coco_repope_random.json").write_text(_line(1, obj="cat") + "\n")
    with pytest.raises(AnnotationError, match="do not belong together"):
        load_annotations(tmp_path, strict=False)


def test_probe_world_goes_through_the_same_loader(tmp_path: Path) -> None:
    from probe.world import write_world

    write_world(tmp_path, seed=3, n_images=6)
    a = load_annotations(tmp_path)
    assert a.prefix == "probe"
    assert set(a.files) == {
        (ls, s) for ls in ("pope", "repope") for s in ("random", "popular", "adversarial")
    }
    assert all(f.checksum == "ok" for f in a.files.values())
    # positives are shared by the splits, so the pairs are fewer than the questions
    assert len(a.pairs) < sum(len(a.questions("pope", s)) for s in a.splits)
    target = tmp_path / "probe_pope_popular.json"
    target.write_text(target.read_text() + "\n")
    with pytest.raises(ChecksumError, match="probe_pope_popular.json"):
        load_annotations(tmp_path)
    (tmp_path / "SHA256SUMS").unlink()  # no sums file: loads, checksum unknown
    assert load_annotations(tmp_path).files[("pope", "popular")].checksum == "unknown"
