"""Object-mention extraction (COCO synonym table, probe classes) and CHAIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditors.benchmarks import get_benchmark
from auditors.benchmarks.captions import chair, coco_ground_truth, probe_ground_truth
from auditors.mentions import COCO, COCO_CLASSES, COCO_SYNONYMS, Vocabulary, forms, plural, vocabulary


def _found(text: str, vocab=COCO) -> list[tuple[str, str]]:
    return [(m.cls, m.text) for m in vocab.extract(text)]


def test_every_coco_class_is_covered_by_its_own_name_and_plural() -> None:
    assert len(COCO_CLASSES) == 80 == len(set(COCO_CLASSES))
    assert set(COCO_SYNONYMS) == set(COCO_CLASSES)
    for name in COCO_CLASSES:
        assert _found(f"there is a {name} here.") == [(name, name)], name
        many = forms(name)[1]
        assert _found(f"I count two {many}.") == [(name, many)], name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A man and two women", [("person", "man"), ("person", "women")]),
        ("hot dogs and a dog", [("hot dog", "hot dogs"), ("dog", "dog")]),
        ("a teddy bear next to a bear", [("teddy bear", "teddy bear"), ("bear", "bear")]),
        (
            "A Dining Table with wine glasses",
            [("dining table", "Dining Table"), ("wine glass", "wine glasses")],
        ),
        ("a hot-dog stand", [("hot dog", "hot-dog")]),
        ("Knives, forks and spoons.", [("knife", "Knives"), ("fork", "forks"), ("spoon", "spoons")]),
        ("mice near a cell phone", [("mouse", "mice"), ("cell phone", "cell phone")]),
        ("a sofa, a fridge and a tv", [("couch", "sofa"), ("refrigerator", "fridge"), ("tv", "tv")]),
        ("an orange cat", [("cat", "cat")]),
        ("an orange and a pear", [("orange", "orange")]),
        ("three oranges.", [("orange", "oranges")]),
        ("a remote control on the couch", [("remote", "remote control"), ("couch", "couch")]),
        ("a remote village", []),
        ("a baseball player with a baseball bat", [("person", "player"), ("baseball bat", "baseball bat")]),
        ("sheep and buses", [("sheep", "sheep"), ("bus", "buses")]),
        ("hot\ndog", [("dog", "dog")]),  # a form's words are separated by a space or a hyphen only
        ("doghouse catalogue", []),  # whole words only
    ],
)
def test_coco_mentions(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


def test_offsets_point_at_the_mention() -> None:
    text = "Two cats sit on a dining table."
    for m in COCO.extract(text):
        assert text[m.start : m.end] == m.text


def test_probe_vocabulary() -> None:
    assert _found("a circle, two stars and a moon.", vocabulary("probe")) == [
        ("circle", "circle"),
        ("star", "stars"),
        ("moon", "moon"),
    ]
    assert _found("a dog", vocabulary("probe")) == []


def test_plural_rules() -> None:
    assert [plural(w) for w in ("box", "bus", "puppy", "toy", "knife", "cat", "person")] == [
        "boxes", "buses", "puppies", "toys", "knives", "cats", "people",
    ]  # fmt: skip


def test_ambiguous_table_is_rejected() -> None:
    with pytest.raises(ValueError, match="'table' is claimed by 'a' and 'b'"):
        Vocabulary.from_synonyms(["a", "b"], {"a": ["table"], "b": ["table"]})


def test_chair_hand_computed() -> None:
    captions = {
        "1.jpg": "A dog and a cat on a couch.",  # cat hallucinated
        "2.jpg": "Two dogs. Another dog.",  # all right, dog mentioned twice
        "3.jpg": "An empty street.",  # no mention
    }
    truth = {"1.jpg": {"dog", "couch"}, "2.jpg": {"dog", "person"}, "3.jpg": {"car"}}
    report = chair(captions, truth)
    assert (report.n_mentions, report.n_hallucinated) == (5, 1)
    assert report.chair_i == pytest.approx(1 / 5)
    assert report.chair_s == pytest.approx(1 / 3)
    assert report.recall == pytest.approx(3 / 5)  # dog, couch | dog | -  of  2 + 2 + 1
    assert [m.text for m in report.captions[0].hallucinated] == ["cat"]
    assert chair({}, {}).chair_i is None and chair({}, {}).chair_s is None
    with pytest.raises(KeyError, match="no ground-truth objects"):
        chair({"x.jpg": "a dog"}, {})
    with pytest.raises(ValueError, match="classes \\['unicorn'\\]"):
        chair({"x.jpg": "a dog"}, {"x.jpg": {"unicorn"}})


def test_chair_on_a_probe_world(tmp_path: Path) -> None:
    from probe.world import write_world

    write_world(tmp_path, seed=2, n_images=10)
    truth = probe_ground_truth(tmp_path)
    references = {
        (r := json.loads(line))["image"]: r["caption"]
        for line in (tmp_path / "captions.json").read_text().splitlines()
    }
    perfect = chair(references, truth, "probe")
    assert perfect.chair_i == 0.0 and perfect.chair_s == 0.0 and perfect.recall == 1.0
    # add a hallucinated "bolt" to the captions of images without a bolt
    bad = {k: v[:-1] + " and a bolt." if "bolt" not in truth[k] else v for k, v in references.items()}
    report = chair(bad, truth, "probe")
    n_without = sum("bolt" not in truth[k] for k in references)
    assert report.n_hallucinated == n_without > 0
    assert report.chair_s == pytest.approx(n_without / len(references))


def test_coco_ground_truth_reader(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    path.write_text(
        json.dumps(
            {
                "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
                "images": [{"id": 5, "file_name": "a.jpg"}, {"id": 6, "file_name": "b.jpg"}],
                "annotations": [{"image_id": 5, "category_id": 18}, {"image_id": 5, "category_id": 1}],
            }
        )
    )
    assert coco_ground_truth(path) == {"a.jpg": frozenset({"person", "dog"}), "b.jpg": frozenset()}
    path.write_text("{}")
    with pytest.raises(Exception, match="is not a COCO instances file"):
        coco_ground_truth(path)


def test_benchmark_registry() -> None:
    assert get_benchmark("captions").name == "captions"
    with pytest.raises(
        KeyError, match="Unknown benchmark 'pop'. Did you mean: pope\\? Available: captions, pope"
    ):
        get_benchmark("pop")
