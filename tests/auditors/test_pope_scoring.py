"""Scoring: hand-computed confusion matrices, unparsed answers, empty classes, clustered intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auditors.annotations import AnnotationError, load_annotations
from auditors.benchmarks.pope import items, load_answers, resolve_answers, score
from auditors.scoring import Confusion, cluster_bootstrap, outcome


def _write(root: Path, name: str, rows: list[tuple[int, str, str, str]]) -> None:
    (root / name).write_text(
        "".join(
            json.dumps(
                {"question_id": q, "image": img, "text": f"Is there a {obj} in the image?", "label": lab}
            )
            + "\n"
            for q, img, obj, lab in rows
        )
    )


@pytest.fixture()
def tiny(tmp_path: Path):
    """Two splits of a toy benchmark; RePOPE flips question 2 (no->yes) and drops question 4."""
    random = [
        (1, "a.jpg", "dog", "yes"),
        (2, "a.jpg", "cat", "no"),
        (3, "b.jpg", "car", "yes"),
        (4, "b.jpg", "bus", "no"),
        (5, "c.jpg", "cup", "yes"),
        (6, "c.jpg", "tie", "no"),
    ]
    _write(tmp_path, "coco_pope_random.json", random)
    repope = [(1, "a.jpg", "dog", "yes"), (2, "a.jpg", "cat", "yes"), (3, "b.jpg", "car", "yes")]
    repope += [(5, "c.jpg", "cup", "yes"), (6, "c.jpg", "tie", "no")]
    _write(tmp_path, "coco_repope_random.json", repope)
    # a split with no positives at all
    _write(tmp_path, "coco_pope_popular.json", [(1, "a.jpg", "cat", "no"), (2, "b.jpg", "bus", "no")])
    return load_annotations(tmp_path, strict=False)


def test_hand_computed_confusion(tiny) -> None:
    answers = {
        ("random", 1): "Yes.",  # yes/yes -> TP (both)
        ("random", 2): "Yes, a cat.",  # pope no -> FP; repope yes -> TP
        ("random", 3): "No",  # FN
        ("random", 4): "I cannot tell",  # unparsed (pope only; removed in repope)
        ("random", 5): "**No**",  # FN
        ("random", 6): "There is no tie.",  # TN
        ("popular", 1): "No",  # TN
        ("popular", 2): "Yes",  # FP
    }
    report = score(tiny, answers)
    pope = report.confusion["pope"]["random"]
    assert (pope.tp, pope.fp, pope.tn, pope.fn, pope.unparsed, pope.n) == (1, 1, 1, 2, 1, 6)
    assert pope.precision == pytest.approx(1 / 2)
    assert pope.recall == pytest.approx(1 / 3)
    assert pope.f1 == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))
    assert pope.accuracy == pytest.approx(2 / 5)  # over parsed answers
    assert pope.yes_ratio == pytest.approx(2 / 5)  # predicted yes, not labelled yes (3/6)
    repope = report.confusion["repope"]["random"]
    assert (repope.tp, repope.fp, repope.tn, repope.fn, repope.unparsed, repope.n) == (2, 0, 1, 2, 0, 5)
    assert (
        repope.precision == 1.0
        and repope.recall == pytest.approx(0.5)
        and repope.accuracy == pytest.approx(0.6)
    )
    # the split with no positives: recall undefined, no division error
    popular = report.confusion["pope"]["popular"]
    assert (popular.tp, popular.fp, popular.tn, popular.fn) == (0, 1, 1, 0)
    assert (
        popular.recall is None and popular.precision == 0.0 and popular.f1 == 0.0 and popular.accuracy == 0.5
    )
    every = report.confusion["pope"]["all"]
    assert (every.tp, every.fp, every.tn, every.fn, every.unparsed, every.n) == (1, 2, 2, 2, 1, 8)
    assert "popular" not in report.confusion["repope"] or report.confusion["repope"]["popular"].n == 0
    assert [f.to_dict() for f in report.flips] == [
        {"split": "random", "question_id": 2, "pope": "fp", "repope": "tp"}
    ]
    out = report.to_dict()
    assert set(out) == {"pope", "repope", "flips"}
    assert list(out["pope"]["random"]) == [
        "tp",
        "fp",
        "tn",
        "fn",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "yes_ratio",
        "unparsed",
        "n",
    ]


def test_all_unparsed_and_empty_groups_are_undefined_not_errors() -> None:
    c = Confusion(unparsed=3)
    assert c.n == 3 and c.parsed == 0
    assert all(v is None for v in (c.precision, c.recall, c.f1, c.accuracy, c.yes_ratio))
    assert Confusion().to_dict()["n"] == 0
    only_no = Confusion(tn=4)
    assert (
        only_no.precision is None
        and only_no.recall is None
        and only_no.f1 is None
        and only_no.accuracy == 1.0
    )


def test_outcome_rejects_bad_labels() -> None:
    assert [outcome("yes", "yes"), outcome("no", "yes"), outcome("no", "no"), outcome("yes", "no")] == [
        "tp",
        "fp",
        "tn",
        "fn",
    ]
    assert outcome("yes", "unparsed") == "unparsed"
    with pytest.raises(ValueError, match="label must be yes/no"):
        outcome("maybe", "yes")


def test_unanswered_questions_are_counted_apart(tiny) -> None:
    report = score(tiny, {("random", 1): "Yes"})
    assert report.confusion["pope"]["random"].n == 1
    assert report.unanswered["pope"]["random"] == 5
    assert report.unanswered["pope"]["popular"] == 2


def test_answer_to_unknown_question_is_an_error(tiny) -> None:
    with pytest.raises(AnnotationError, match="answer for random question 99"):
        score(tiny, {("random", 99): "Yes"})


def test_one_answer_per_pair_is_spread_to_every_split(tiny) -> None:
    # popular#1 asks the same pair as random#2; answering it once answers both
    resolved = resolve_answers(tiny, {("random", 2): "Yes"})
    assert resolved == {("random", 2): "Yes", ("popular", 1): "Yes"}
    # a split's own answer wins over the pair's answer
    resolved = resolve_answers(tiny, {("random", 2): "Yes", ("popular", 1): "No"})
    assert resolved[("popular", 1)] == "No"
    assert {(i.split, i.question_id) for i in items(tiny)} == {("random", q) for q in range(1, 7)}


def test_real_files_dedup_run_scores_every_question(real_annotations) -> None:
    answers = {
        (i.split, i.question_id): ("Yes" if i.question.startswith("Is there a person") else "No")
        for i in items(real_annotations)
    }
    assert len(answers) == 5127
    report = score(real_annotations, answers)
    assert [report.confusion["pope"][s].n for s in ("random", "popular", "adversarial")] == [3000] * 3
    assert [report.confusion["repope"][s].n for s in ("random", "popular", "adversarial")] == [
        2774,
        2727,
        2684,
    ]
    assert report.unanswered["repope"]["all"] == 0
    # every flip is a corrected label under a parsed answer, in both directions
    assert report.flips and all({f.pope, f.repope} in ({"tp", "fp"}, {"tn", "fn"}) for f in report.flips)
    per_class = report.per_class("pope")
    assert per_class["person"].false_negative_rate == 0.0
    assert per_class["dog"].tp == 0 and per_class["dog"].false_positive_rate == 0.0


def test_answers_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    first = '{"question_id": 1, "split": "random", "answer": "Yes"}\n'
    path.write_text(first + '{"question_id": 2, "split": "rnd", "answer": "No"}\n')
    with pytest.raises(AnnotationError, match=r"answers\.jsonl:2: unknown split 'rnd'"):
        load_answers(path)
    path.write_text(first + '{"question_id": 1, "split": "random", "answer": "No"}\n')
    with pytest.raises(
        AnnotationError, match=r"answers\.jsonl:2: second answer for random question 1 \(first on line 1\)"
    ):
        load_answers(path)
    path.write_text('{"question_id": 1, "split": "random"}\n')
    with pytest.raises(AnnotationError, match=r"answers\.jsonl:1: missing field\(s\) answer"):
        load_answers(path)
    path.write_text('{"question_id": 1, "split": "random", "answer": null}\n\n')
    assert load_answers(path) == {("random", 1): ""}


def test_cluster_bootstrap_is_seeded_and_wider_for_clustered_data() -> None:
    rng = np.random.default_rng(0)
    # 40 images x 6 questions; each image is entirely right or entirely wrong (perfect clustering)
    image_correct = rng.random(40) < 0.7
    outcomes, clusters = [], []
    for g, ok in enumerate(image_correct):
        for k in range(6):
            label_yes = k % 2 == 0
            outcomes.append(("tp" if label_yes else "tn") if ok else ("fn" if label_yes else "fp"))
            clusters.append(f"img{g}")
    a = cluster_bootstrap(outcomes, clusters, n_boot=500, seed=1)
    b = cluster_bootstrap(outcomes, clusters, n_boot=500, seed=1)
    assert a == b
    acc = a["accuracy"]
    assert acc.estimate == pytest.approx(image_correct.mean())
    assert acc.low < acc.estimate < acc.high and acc.n_clusters == 40
    # treating every question as its own cluster understates the uncertainty
    naive = cluster_bootstrap(outcomes, [str(i) for i in range(len(outcomes))], n_boot=500, seed=1)[
        "accuracy"
    ]
    assert (acc.high - acc.low) > 1.5 * (naive.high - naive.low)


def test_cluster_bootstrap_undefined_metric_and_bad_input() -> None:
    out = cluster_bootstrap(["tn", "tn", "unparsed"], ["a", "b", "b"], n_boot=50)
    assert out["recall"].estimate is None and out["recall"].low is None
    assert out["accuracy"].estimate == 1.0 and out["accuracy"].low == 1.0
    with pytest.raises(ValueError, match="2 outcomes but 1 cluster ids"):
        cluster_bootstrap(["tp", "fp"], ["a"])


def test_report_intervals_cluster_by_image(real_annotations) -> None:
    answers = {(i.split, i.question_id): "Yes" for i in items(real_annotations)}
    report = score(real_annotations, answers)
    ci = report.intervals("repope", "random", metrics=("precision",), n_boot=200)
    assert ci["precision"].n_clusters == 500
    assert ci["precision"].estimate == pytest.approx(report.confusion["repope"]["random"].precision)
