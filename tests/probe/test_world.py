"""The probe world: determinism, ground-truth consistency, POPE sampling rules, planted biases."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from probe.classes import CLASS_NAMES, PLANTED_PAIRS, caption_text, question_text
from probe.world import (
    HELDOUT_PARTNER_RATE,
    POPE_SPLITS,
    class_statistics,
    make_scene,
    negatives,
    write_world,
)


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_world(a, seed=3, n_images=12)
    write_world(b, seed=3, n_images=12)
    write_world(c, seed=4, n_images=12)
    assert _digest_tree(a) == _digest_tree(b)
    assert _digest_tree(a)["images/probe_000000.png"] != _digest_tree(c)["images/probe_000000.png"]


def test_scene_is_independent_of_how_many_scenes_are_generated() -> None:
    # Scene k depends on (seed, k, split) only, so a bigger world extends a smaller one.
    assert np.array_equal(make_scene(5, 7).image, make_scene(5, 7).image)
    assert not np.array_equal(make_scene(5, 7, "train").image, make_scene(5, 7, "heldout").image)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_masks_boxes_and_pixels_agree(split: str) -> None:
    n_occluded = 0
    for index in range(150):
        scene = make_scene(11, index, split)  # type: ignore[arg-type]
        assert scene.image.shape == (128, 128, 3) and scene.image.dtype == np.uint8
        assert 1 <= len(scene.objects) <= 5
        assert len(set(scene.names)) == len(scene.names), "a class appears at most once per scene"
        assert set(np.unique(scene.labels)) == {0} | {o.label for o in scene.objects}
        for obj in scene.objects:
            mask = scene.labels == obj.label
            assert mask.sum() == obj.area > 0
            ys, xs = np.nonzero(mask)
            assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            # The visible pixels carry the class colour (jitter 12 + noise), not the grey background.
            mean = scene.image[mask].astype(float).mean(0)
            from probe.classes import class_by_name

            assert np.abs(mean - np.array(class_by_name(obj.name).rgb)).max() < 30, (index, obj.name, mean)
            n_occluded += obj.visible_fraction < 0.999
    assert n_occluded > 10, "some objects must be partly hidden"


def test_images_are_at_least_128_px_with_1_to_4_primary_objects_and_12_classes() -> None:
    assert len(CLASS_NAMES) >= 12
    counts = Counter(len(make_scene(2, i).objects) for i in range(300))
    assert set(counts) >= {1, 2, 3, 4}


def test_planted_bias_in_training_scenes_and_absent_partner_in_heldout() -> None:
    train = [make_scene(0, i, "train").names for i in range(3000)]
    heldout = [make_scene(0, i, "heldout").names for i in range(1500)]
    for a, b in PLANTED_PAIRS:
        with_a = [names for names in train if a in names]
        rate = sum(b in names for names in with_a) / len(with_a)
        assert len(with_a) > 100 and rate >= 0.90, (a, b, rate)
        held_a = [names for names in heldout if a in names]
        without_b = sum(b not in names for names in held_a)
        assert without_b / len(held_a) > 0.3, (a, b, without_b, len(held_a))
        # B is an ordinary class too: it appears without A in training.
        assert sum(b in names and a not in names for names in train) > 50
    assert 0 < HELDOUT_PARTNER_RATE < 1


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pope_question_files_follow_pope_sampling(tmp_path: Path) -> None:
    info = write_world(tmp_path, seed=9, n_images=80)
    gt = json.loads((tmp_path / "ground_truth.json").read_text())
    present = {r["image"]: [o["name"] for o in r["objects"]] for r in gt["images"]}
    freq, co = class_statistics(list(present.values()))
    sets = {s: _read_jsonl(tmp_path / f"probe_pope_{s}.json") for s in POPE_SPLITS}
    for split, rows in sets.items():
        assert [r["question_id"] for r in rows] == list(range(1, len(rows) + 1))
        assert set(rows[0]) == {"question_id", "image", "text", "label"}
        labels = Counter(r["label"] for r in rows)
        assert labels["yes"] == labels["no"], "balanced like POPE"
        by_image: dict[str, list[dict]] = {}
        for r in rows:
            by_image.setdefault(r["image"], []).append(r)
        for image, qs in by_image.items():
            for q in qs:
                obj = next(n for n in CLASS_NAMES if q["text"] == question_text(n))
                assert (obj in present[image]) == (q["label"] == "yes")
            no = [
                next(n for n in CLASS_NAMES if q["text"] == question_text(n))
                for q in qs
                if q["label"] == "no"
            ]
            absent = [n for n in CLASS_NAMES if n not in present[image]]
            if split == "popular":  # the most frequent absent classes
                cutoff = sorted((int(freq[CLASS_NAMES.index(n)]) for n in absent), reverse=True)[len(no) - 1]
                assert all(freq[CLASS_NAMES.index(n)] >= cutoff for n in no)
            if split == "adversarial":  # the absent classes that co-occur most with the present ones
                score = {
                    n: sum(co[CLASS_NAMES.index(p), CLASS_NAMES.index(n)] for p in present[image])
                    for n in absent
                }
                cutoff = sorted(score.values(), reverse=True)[len(no) - 1]
                assert all(score[n] >= cutoff for n in no)
    # Positives are identical across splits, as in POPE.
    positives = {
        s: [(r["image"], r["text"]) for r in rows if r["label"] == "yes"] for s, rows in sets.items()
    }
    assert positives["random"] == positives["popular"] == positives["adversarial"]
    # The adversarial split asks for the planted partner B on images that have A without B.
    asked_b = 0
    for rows in [sets["adversarial"]]:
        for r in rows:
            for a, b in PLANTED_PAIRS:
                if r["text"] == question_text(b) and a in present[r["image"]]:
                    asked_b += 1
    assert asked_b > 0
    sums = dict(line.split("  ")[::-1] for line in (tmp_path / "SHA256SUMS").read_text().splitlines())
    assert sums == {k: v for k, v in info.files.items()}


def test_negative_sampling_rules_on_a_handmade_distribution() -> None:
    freq = np.arange(len(CLASS_NAMES))[::-1].copy()  # class 0 most frequent
    co = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), int)
    co[0, 5] = co[5, 0] = 50
    co[0, 7] = co[7, 0] = 20
    rng = np.random.default_rng(0)
    assert negatives(["circle"], 2, "popular", freq, co, rng) == ["square", "triangle"]
    assert negatives(["circle"], 2, "adversarial", freq, co, rng) == [CLASS_NAMES[5], CLASS_NAMES[7]]
    rand = negatives(["circle"], 3, "random", freq, co, rng)
    assert len(set(rand)) == 3 and "circle" not in rand
    with pytest.raises(ValueError, match="unknown POPE split"):
        negatives(["circle"], 1, "weird", freq, co, rng)


def test_ground_truth_files_and_masks_on_disk(tmp_path: Path) -> None:
    write_world(tmp_path, seed=1, n_images=6)
    gt = json.loads((tmp_path / "ground_truth.json").read_text())
    captions = {r["image"]: r["caption"] for r in _read_jsonl(tmp_path / "captions.json")}
    for rec in gt["images"]:
        labels = np.asarray(Image.open(tmp_path / rec["mask"]))
        scene = make_scene(1, int(rec["image"][6:12]))
        assert np.array_equal(labels, scene.labels)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "images" / rec["image"])), scene.image)
        assert captions[rec["image"]] == caption_text([o["name"] for o in rec["objects"]])
    assert gt["planted_pairs"] == [list(p) for p in PLANTED_PAIRS]


def test_caption_text_orders_by_class_and_uses_articles() -> None:
    assert caption_text(["moon", "circle"]) == "a circle and a moon."
    assert caption_text(["arrow"]) == "an arrow."
    assert caption_text(["star", "circle", "arrow"]) == "a circle, a star and an arrow."
    with pytest.raises(ValueError):
        caption_text([])
