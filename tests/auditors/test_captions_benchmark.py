"""The caption plug-in on COCO-style data: ground truth from RePOPE labels (the real files; unverified
mentions counted apart) or from an instances file (exhaustive, with masks), its reading of an
answer, its token spans, its correction test and its CHAIR numbers, with no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auditors.annotations import load_annotations
from auditors.benchmarks import get_benchmark
from auditors.benchmarks.base import DataSource, SourceError
from auditors.marking import TokenMarker

CAPTIONS = get_benchmark("captions")


def word_marker() -> TokenMarker:
    """A marker over a toy word-level tokenizer that splits "giraffe" in two tokens."""
    vocab: dict[str, int] = {}
    words: list[str] = []

    def pieces(text: str) -> list[str]:
        out = []
        for w in text.replace(".", " .").replace(",", " ,").split(" "):
            if not w:
                continue
            out += [" gir", "affe"] if w == "giraffe" else [" " + w]
        return out

    def encode(text: str) -> list[int]:
        ids = []
        for p in pieces(text):
            if p not in vocab:
                vocab[p] = len(words)
                words.append(p)
            ids.append(vocab[p])
        return ids

    def decode(ids) -> str:
        return "".join(words[i] for i in ids)

    return TokenMarker(decode=decode, encode=encode)


def _images(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / n)
    return root


@pytest.fixture(scope="module")
def repope_source(tmp_path_factory, real_annotations_dir: Path) -> tuple[DataSource, dict]:
    annotations = load_annotations(real_annotations_dir)
    image = annotations.questions("repope", "adversarial")[0].image
    labels = {
        q.object: q.label
        for split in annotations.splits
        for q in annotations.questions("repope", split)
        if q.image == image
    }
    images = _images(tmp_path_factory.mktemp("coco"), [image])
    source = DataSource(name="repope", images=images, annotations=real_annotations_dir)
    return source, {"image": image, "labels": labels}


def test_repope_labels_judge_captions_and_leave_the_rest_unverified(repope_source) -> None:
    source, info = repope_source
    data = CAPTIONS.load(source, ())
    assert [i.image for i in data.items] == [info["image"]]  # only the images --images holds
    assert data.label_sets == ("repope", "pope") and set(data.checksums) >= {"coco_repope_random.json"}
    item = data.items[0]
    absent = sorted(c for c, label in info["labels"].items() if label == "no")[0]
    present = sorted(c for c, label in info["labels"].items() if label == "yes")[0]
    unlabelled = next(c for c in ("giraffe", "toaster", "kite", "zebra") if c not in info["labels"])
    assert item.samples[0].labels["repope"] == ", ".join(
        sorted(c for c, v in info["labels"].items() if v == "yes")
    )
    judge = CAPTIONS.judge
    assert judge(item, item.samples[0], f"A {present}.").outcomes["repope"] == "faithful"
    assert judge(item, item.samples[0], f"A {present} and a {unlabelled}.").outcomes["repope"] == "unverified"
    got = judge(item, item.samples[0], f"A {present}, a {unlabelled} and a {absent}.")
    assert got.outcomes["repope"] == "hallucinated"
    assert got.verdict == ", ".join(sorted({present, unlabelled, absent}))
    # CHAIR: the unverified mention is counted apart and left out of CHAIR_i's denominator
    rows = [{"sample_id": item.item_id, "answer_text": f"A {present}, a {unlabelled} and a {absent}."}]
    groups = {(g.label_set, g.object_class): g for g in CAPTIONS.metrics(data, rows, ())}
    total = groups[("repope", "all")].values
    assert (total["mentions"], total["hallucinated"], total["unverified"]) == (2.0, 1.0, 1.0)
    assert total["chair_i"] == 0.5 and total["chair_s"] == 1.0
    assert groups[("repope", absent)].values["chair_i"] == 1.0
    assert groups[("repope", unlabelled)].values["unverified"] == 1.0


def test_instances_are_exhaustive_and_give_masks(tmp_path: Path) -> None:
    names = [
        "COCO_val2014_000000000001.jpg",
        "COCO_val2014_000000000002.jpg",
        "COCO_val2014_000000000003.jpg",
    ]
    images = _images(tmp_path / "val2014", names[:2])  # the third is not in --images
    instances = tmp_path / "instances.json"
    instances.write_text(
        json.dumps(
            {
                "categories": [{"id": 25, "name": "giraffe"}, {"id": 1, "name": "person"}],
                "images": [{"id": i + 1, "file_name": n, "height": 8, "width": 8}
                           for i, n in enumerate(names)],
                "annotations": [{"image_id": 1, "category_id": 25, "area": 16.0,
                                 "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}],
            }
        )
    )  # fmt: skip
    source = DataSource(name="repope", images=images, instances=instances)
    data = CAPTIONS.load(source, ())
    assert [i.image for i in data.items] == names[:2] and data.label_sets == ("instances",)
    assert list(data.checksums) == ["instances.json"]
    assert source.masks is not None and source.masks.kind == "coco"
    first, second = data.items
    assert CAPTIONS.judge(second, second.samples[0], "A person.").outcomes == {"instances": "hallucinated"}
    # marking: the split word is one span of two tokens, in the model's own tokens
    marker = word_marker()
    text = "A person next to a giraffe."
    ids = marker.encode(text)
    marked = CAPTIONS.mark(
        first, {"sample_id": first.item_id, "token_ids": ids, "logprobs": [-0.1] * len(ids)}, marker
    )
    assert [(m.object_class, m.token_end - m.token_index, m.token_text) for m in marked.marks] == [
        ("person", 1, " person")
    ]
    marked = CAPTIONS.mark(second, {"sample_id": second.item_id, "token_ids": ids, "logprobs": []}, marker)
    got = {(m.object_class, m.token_text, m.token_end - m.token_index) for m in marked.marks}
    assert got == {("person", " person", 1), ("giraffe", " giraffe", 2)}
    target = next(t for t in marked.targets if t.truth == "giraffe")
    assert target.objective == "span-absence" and len(target.positions) == 2 == len(target.target_ids)
    assert CAPTIONS.corrected(target, "A person next to a tree.")
    assert not CAPTIONS.corrected(target, "Two giraffes.")


def test_captions_need_ground_truth(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="--instances: captions need ground truth"):
        CAPTIONS.check(DataSource(name="repope", images=tmp_path))
