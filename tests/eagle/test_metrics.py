"""Metric definitions, attribution map, modality analysis, correction scan, baselines, heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from eagle_fakes import InteractionScorer, LinearScorer, grid_labels, region_image, request

from eagle import Eagle, ExactSearch, Explanation
from eagle.attribution import eagle_region_scores
from eagle.baselines import ablation, random_order, rise
from eagle.correction import amcr, correction_scan, csr
from eagle.heatmap import colorize, overlay, save_png
from eagle.metrics import (
    deletion_auc,
    energy_point_game,
    faithfulness,
    highest_confidence,
    insertion_auc,
    point_game,
    region_on,
)
from eagle.modality import modality


def hand_explanation(insertion, deletion, areas, order=None, labels=None):
    insertion = np.asarray(insertion, float)
    n = insertion.shape[0] - 1
    order = np.arange(n) if order is None else np.asarray(order)
    labels = grid_labels(1, n) if labels is None else labels
    return Explanation(
        method="hand",
        order=order,
        labels=labels,
        areas=np.asarray(areas, float),
        insertion=insertion,
        deletion=np.asarray(deletion, float),
        gains=np.zeros(n),
        region_scores=np.linspace(1, 0, n),
        target_ids=tuple(range(insertion.shape[1])),
        target_positions=tuple(range(insertion.shape[1])),
    )


def test_aucs_are_trapezoids_over_area():
    e = hand_explanation([[0.0], [0.8], [1.0]], [[1.0], [0.2], [0.0]], [0, 0.5, 1])
    assert insertion_auc(e) == pytest.approx(0.5 * (0.4 + 0.9) / 1)  # 0.5*(0+.8)/2 + 0.5*(.8+1)/2
    assert deletion_auc(e) == pytest.approx(0.25 * (1.2) + 0.25 * 0.2)
    assert highest_confidence(e) == 1.0


def test_faithfulness_counts_samples_without_sensitive_tokens():
    sensitive = hand_explanation([[0.0, 0.5], [1.0, 0.5]], [[1.0, 0.5], [0.0, 0.5]], [0, 1])
    flat = hand_explanation([[0.4], [0.5]], [[0.5], [0.4]], [0, 1])
    summary = faithfulness([sensitive, flat])
    assert summary.n_without_sensitive == 1 and summary.n_samples == 2
    assert summary.sensitive_insertion_auc == pytest.approx(0.5)  # only token 0 of the first sample
    none = faithfulness([flat])
    assert none.sensitive_insertion_auc is None and none.n_without_sensitive == 1


def test_modality_step_area_and_sensitive():
    ins = np.array([[0.1, 0.5], [0.6, 0.5], [0.9, 0.6]])
    m = modality(ins, np.array([0.0, 0.25, 1.0]))
    np.testing.assert_allclose(m.influence, [0.0 + 0.5 + 0.8, 0.0 + 0.0 + 0.1])
    np.testing.assert_allclose(m.influence_area, [0.25 * 0.25 + 0.75 * 0.65, 0.75 * 0.05])
    assert m.sensitive.tolist() == [True, False]


def test_eagle_map_first_one_last_zero_spaced_by_gain_and_guarded():
    order = np.array([2, 0, 1])
    s = eagle_region_scores(order, np.array([0.5, 0.3, 0.1]))
    # c = [.5, .8, .9]; (c_n - c_k)/(c_n - c_1) = [1, .25, 0]
    np.testing.assert_allclose(s, [0.25, 0.0, 1.0])
    np.testing.assert_allclose(eagle_region_scores(np.array([0]), np.array([0.0])), [1.0])
    np.testing.assert_allclose(eagle_region_scores(order, np.array([0.4, 0.0, 0.0])), [0.5, 0.0, 1.0])
    assert np.isfinite(eagle_region_scores(order, np.zeros(3))).all()


def test_gains_sum_to_the_objective_change():
    labels = grid_labels(2, 3)
    e = Eagle(InteractionScorer(labels, 2), lambda1=0.7, lambda2=1.3).explain(
        region_image(labels), labels, request(2)
    )
    assert e.gains.sum() == pytest.approx(e.objective[-1] - e.objective[0])


def test_point_game_on_box_mask_and_energy():
    labels = grid_labels(2, 2, cell=4)  # 8x8, region 0 top-left
    m = np.array([1.0, 0.2, 0.1, 0.0])[labels]
    assert point_game(m, (0, 0, 4, 4))
    assert not point_game(m, (4, 4, 8, 8))
    assert point_game(m, (0, 0, 3, 3))  # 9 of the 16 top pixels: most of the plateau
    assert not point_game(m, (0, 0, 2, 4))  # exactly half is not most
    assert point_game(m, labels == 0) and not point_game(m, labels == 3)
    assert energy_point_game(m, (0, 0, 4, 4), top_fraction=0.25) == pytest.approx(1.0)
    # top half: regions 0 (16 px at 1.0) and 1 (16 px at 0.2) -> 16 / (16 + 3.2)
    assert energy_point_game(m, (0, 0, 4, 4), top_fraction=0.5) == pytest.approx(16 / 19.2)
    assert region_on(labels, 0, (0, 0, 4, 4)) and not region_on(labels, 1, (0, 0, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        point_game(m, (0, 0, 9, 4))


def _regenerate_with(labels, cause: int):
    """Answers 'Yes' (the hallucination) while region `cause` is visible, else 'No.'."""
    from eagle_fakes import visible_regions

    def regenerate(images):
        return ["Yes" if v else "No." for v in visible_regions(images, labels)[:, cause]]

    return regenerate


def test_correction_scan_area_and_csr_denominator():
    labels = grid_labels(1, 10)  # ten equal regions, 10% each
    image = region_image(labels)
    regenerate = _regenerate_with(labels, 9)
    says_no = parse_yes_no_is("no")
    good = correction_scan(image, labels, np.arange(10), regenerate, says_no, batch_size=3)
    assert good.corrected and good.k == 9 and good.area_removed == pytest.approx(0.1)
    assert good.regenerations == 2 and good.answers[0] == "Yes"
    mid = correction_scan(image, labels, np.array([0, 1, 2, 3, 9, 4, 5, 6, 7, 8]), regenerate, says_no)
    assert mid.k == 4 and mid.area_removed == pytest.approx(0.6)
    never = correction_scan(image, labels, np.array([9, 0, 1, 2, 3, 4, 5, 6, 7, 8]), regenerate, says_no)
    assert not never.corrected and never.area_removed == 1.0 and never.regenerations == 10
    assert amcr([good, mid, never]) == pytest.approx((0.1 + 0.6 + 1.0) / 3)
    assert csr([good, mid, never]) == pytest.approx(1 / 3)  # the failure stays in the denominator


def parse_yes_no_is(truth: str):
    """The predicate the audit passes: the project's one yes/no parser agrees with `truth`."""
    from auditors.parsing import parse_yes_no

    return lambda answer: parse_yes_no(answer) == truth


def test_the_scan_uses_the_callers_predicate_for_every_answer() -> None:
    """'None.' and 'No doubt, ...' are read by the caller's parser, not by eagle: one policy."""
    labels = grid_labels(1, 4)
    image = region_image(labels)
    answers = iter(["No doubt, there is a dog.", "Yes", "None.", "No"])
    scan = correction_scan(
        image,
        labels,
        np.arange(4),
        lambda ims: [next(answers) for _ in ims],
        parse_yes_no_is("no"),
        batch_size=1,
    )
    assert scan.corrected and scan.answers == ("No doubt, there is a dog.", "Yes", "None.") and scan.k == 2
    seen: list[str] = []
    scan = correction_scan(
        image, labels, np.arange(4), lambda ims: ["a circle and a star."] * len(ims),
        lambda a: seen.append(a) or "star" not in a,
    )  # fmt: skip
    assert not scan.corrected and len(seen) == 4 and scan.area_removed == 1.0


@pytest.mark.parametrize("batch_size", [1, 2, 3, 12, None])
def test_baselines_are_batch_invariant_and_count_forwards(batch_size):
    n = 12
    labels = grid_labels(3, 4)
    image = region_image(labels)
    weights = np.random.default_rng(2).permutation(np.arange(1.0, n + 1))
    scorer = LinearScorer(labels, weights)
    abl = ablation(scorer, image, labels, request(), batch_size=batch_size)
    assert abl.order.tolist() == np.argsort(-weights, kind="stable").tolist()  # exact on additive scores
    assert abl.params["ranking_forward_passes"] == n + 1 and abl.forward_passes == n + 1 + 2 * (n + 1)
    r = rise(scorer, image, labels, request(), n_masks=400, batch_size=batch_size)
    assert r.params["ranking_forward_passes"] == 400
    assert r.order[0] in np.argsort(-weights)[:3]  # a top-weight region found by random masks
    ro = random_order(scorer, image, labels, request(), seed=1, batch_size=batch_size)
    assert sorted(ro.order.tolist()) == list(range(n)) and ro.params["ranking_forward_passes"] == 0
    again = ablation(scorer, image, labels, request(), batch_size=1)
    np.testing.assert_allclose(abl.insertion, again.insertion, atol=1e-6)


def test_eagle_beats_baselines_on_an_interaction_scorer():
    labels = grid_labels(3, 4)
    image = region_image(labels)
    scorer = InteractionScorer(labels, n_targets=1, seed=5)
    e = Eagle(scorer, search=ExactSearch()).explain(image, labels, request())
    ro = random_order(scorer, image, labels, request())
    assert insertion_auc(e) >= insertion_auc(ro) and deletion_auc(e) <= deletion_auc(ro)


def test_heatmap_overlay_and_png(tmp_path):
    labels = grid_labels(2, 2, cell=8)
    image = region_image(labels)
    m = np.array([1.0, 0.5, 0.0, 0.2])[labels]
    out = overlay(image, m, min_size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    hall = overlay(image, m, hallucination=True, min_size=16)
    np.testing.assert_array_equal(colorize(np.array([[0.0]])), colorize(1 - np.array([[1.0]])))
    assert not np.array_equal(hall, overlay(image, m, min_size=16))
    path = save_png(out, tmp_path / "h" / "map.png")
    from PIL import Image

    assert Image.open(path).size == (64, 64)
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, m[:-1])
