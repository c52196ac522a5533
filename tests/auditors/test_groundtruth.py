"""Ground truth about objects (probe world, COCO instances, RePOPE labels), COCO masks, and the
cause table's matching of driver regions to the objects they lie on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auditors.annotations import AnnotationError
from auditors.causes import drivers, first_object
from auditors.groundtruth import (
    MaskSource,
    ObjectMasks,
    coco_truth,
    labelled_truth,
    load_masks,
    probe_truth,
    rasterize,
    rle_counts,
)


def test_probe_world_truth_and_masks(tmp_path: Path) -> None:
    from probe.world import make_scene, write_world

    write_world(tmp_path, seed=4, n_images=3)
    truth = probe_truth(tmp_path)
    scene = make_scene(4, 1, "heldout")
    t = truth["probe_000001.png"]
    assert t.present == frozenset(scene.names) and t.absent is None
    other = next(c for c in ("star", "moon", "bolt", "ring") if c not in scene.names)
    assert t.status(scene.names[0]) == "present" and t.status(other) == "absent"
    masks = load_masks(MaskSource(kind="probe", path=tmp_path), "probe_000001.png")
    assert masks is not None
    np.testing.assert_array_equal(masks.labels, scene.labels)
    assert masks.classes == {o.label: o.name for o in scene.objects}
    assert load_masks(MaskSource(kind="probe", path=tmp_path), "nope.png") is None
    assert load_masks(None, "probe_000001.png") is None


def test_repope_labels_leave_other_classes_unverified() -> None:
    truth = labelled_truth([("a.jpg", "dog", "yes"), ("a.jpg", "cat", "no"), ("b.jpg", "car", "no")])
    a = truth["a.jpg"]
    assert (a.status("dog"), a.status("cat"), a.status("giraffe")) == ("present", "absent", "unverified")
    assert truth["b.jpg"].present == frozenset() and a.label() == "dog"
    with pytest.raises(AnnotationError, match="both yes and no for 'dog'"):
        labelled_truth([("a.jpg", "dog", "yes"), ("a.jpg", "dog", "no")])


def test_coco_rle_strings_decode() -> None:
    # hand-encoded with COCO's scheme: 5-bit groups + 48, each count after the second a difference
    assert rle_counts("231") == [2, 3, 1]
    assert rle_counts("2312") == [2, 3, 1, 5]  # 5 stored as 5 - 3
    assert rle_counts("511O") == [5, 1, 1, 0]  # 0 stored as 0 - 1 = -1 ('O': 31 with the sign bit)
    assert rle_counts("a12") == [49, 2]  # 49 = 17 + (1 << 5): two groups, continuation bit on "a"


def test_coco_instances_masks_from_polygons_and_rle(tmp_path: Path) -> None:
    h, w = 6, 8
    column_major = np.zeros((h, w), bool)
    column_major[1:3, 5] = True  # one run of 2 in column 5, rows 1-2
    counts = [5 * h + 1, 2, h * w - 5 * h - 3]
    path = tmp_path / "instances.json"
    path.write_text(
        json.dumps(
            {
                "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"},
                               {"id": 3, "name": "car"}],
                "images": [{"id": 5, "file_name": "a.jpg", "height": h, "width": w},
                           {"id": 6, "file_name": "b.jpg", "height": h, "width": w}],
                "annotations": [
                    # a 4x3 rectangle (x 0..4, y 0..3) as a polygon: the large dog
                    {"image_id": 5, "category_id": 18, "area": 12.0,
                     "segmentation": [[0, 0, 4, 0, 4, 3, 0, 3]]},
                    {"image_id": 5, "category_id": 1, "area": 2.0, "iscrowd": 1,
                     "segmentation": {"counts": counts, "size": [h, w]}},
                ],
            }
        )
    )  # fmt: skip
    truth = coco_truth(path)
    assert truth["a.jpg"].present == {"dog", "person"} and truth["b.jpg"].present == frozenset()
    assert truth["a.jpg"].status("car") == "absent"  # COCO instances are exhaustive
    masks = load_masks(MaskSource(kind="coco", path=path), "a.jpg")
    assert masks is not None and masks.labels.shape == (h, w)
    dog = [k for k, c in masks.classes.items() if c == "dog"][0]
    person = [k for k, c in masks.classes.items() if c == "person"][0]
    np.testing.assert_array_equal(masks.labels == person, column_major)
    assert (masks.labels == dog).sum() >= 9 and (masks.labels[4:] == 0).all()
    np.testing.assert_array_equal(rasterize({"counts": counts, "size": [h, w]}, h, w), column_major)
    path.write_text("{}")
    with pytest.raises(AnnotationError, match="is not a COCO instances file"):
        coco_truth(tmp_path / "missing.json")


def test_objects_are_ranked_by_the_one_minus_map_over_their_pixels() -> None:
    # regions: 4 columns of 2 px; the moon on column 3, the star on half of 1, the circle on 3/4 of 0
    regions = np.repeat(np.arange(4)[None, :], 2, axis=1).repeat(4, axis=0).astype(np.int32)  # (4, 8)
    objects = np.zeros((4, 8), np.int32)
    objects[:, 6:8] = 1  # moon: region 3
    objects[:2, 2:4] = 2  # star: half of region 1
    objects[:3, 0:2] = 3  # circle: 3/4 of region 0
    masks = ObjectMasks(labels=objects, classes={1: "moon", 2: "star", 3: "circle"})
    order = [3, 1, 2, 0]  # region 0 ranked last: the top of 1 − map
    found = drivers(order, regions, masks, k=2)  # 1 − map evenly spaced by rank: 0, 1/3, 2/3, 1
    assert [(d.rank, d.object) for d in found] == [(1, "circle"), (2, "star"), (3, "moon"), (None, None)]
    assert [d.score for d in found[:3]] == pytest.approx([1.0, 1 / 3, 0.0])
    assert [d.top_share for d in found[:3]] == [1.0, 0.0, 0.0]  # top 2 regions: 0 and 2
    background = found[-1]  # 2 px of region 0, 4 of region 1, 8 of region 2
    assert background.score == pytest.approx((2 * 1 + 4 / 3 + 8 * 2 / 3) / 14)
    assert first_object(found) == "circle"
    # the map's own values when given (gain-spaced): a map that puts the star's region at the top
    scores = np.array([0.0, 0.0, 1.0, 1.0])  # 1 − map: regions 0 and 1 drive equally
    found = drivers(order, regions, masks, region_scores=scores)
    assert [d.object for d in found[:3]] == ["circle", "star", "moon"]  # tie 1.0 / 1.0: later rank first
    assert found[0].score == found[1].score == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        drivers([0], regions[:2], masks)
