"""`--limit N` samples questions stratified per split and label with a recorded seed, and every run
records the fingerprint of its question set. Checked on the real POPE/RePOPE files (no model)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from audit.config import AuditConfig
from audit.data import load_items, prepare_data, question_set
from audit.sampling import allocate, stratified_sample
from storage.verdicts import question_set_fingerprint

REAL = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "repope").resolve()


@pytest.fixture(scope="module")
def real() -> Path:
    if not (REAL / "coco_pope_random.json").exists():
        pytest.skip(f"real POPE/RePOPE files not found at {REAL}")
    return REAL


def _load(real: Path, tmp: Path, **kw):
    config = AuditConfig(store=tmp / "store", dataset="repope", annotations=real, images=tmp, **kw)
    data = prepare_data(config)
    _, loaded, items, sampling = load_items(config, data)
    return loaded, items, sampling


def _questions(items) -> list[tuple[str, dict]]:
    """(sample id, labels) of every chosen question."""
    return [(s.sample_id, dict(s.labels)) for item in items for s in item.samples]


def test_allocation_is_proportional_and_sums_to_n() -> None:
    assert allocate([50, 30, 20], 10) == [5, 3, 2]
    assert allocate([1, 1, 1], 2) == [1, 1, 0]  # ties go to the earlier stratum
    assert allocate([7, 2, 1], 5) == [4, 1, 0]  # 3.5, 1.0, 0.5: the largest remainder first
    assert allocate([3, 4], 100) == [3, 4]
    for n in range(0, 40):
        assert sum(allocate([13, 9, 5, 1], n)) == min(n, 28)


def test_stratified_sample_is_seeded_and_keeps_item_order() -> None:
    items = list(range(100))
    a, rec = stratified_sample(items, 20, seed=1, stratum=lambda i: i % 4)
    b, _ = stratified_sample(items, 20, seed=1, stratum=lambda i: i % 4)
    c, _ = stratified_sample(items, 20, seed=2, stratum=lambda i: i % 4)
    assert a == b != c and a == sorted(a) and len(a) == 20
    assert Counter(i % 4 for i in a) == {0: 5, 1: 5, 2: 5, 3: 5}
    assert rec.per_stratum == {"0": 5, "1": 5, "2": 5, "3": 5} and rec.seed == 1 and rec.population == 100
    everything, rec = stratified_sample(items, None, seed=1, stratum=lambda i: i % 4)
    assert everything == items and rec.method == "all" and rec.seed is None


def test_limit_keeps_every_split_and_label_share_of_the_real_files(real: Path, tmp_path: Path) -> None:
    _, full, full_sampling = _load(real, tmp_path)
    _, limited, sampling = _load(real, tmp_path, limit=300, sample_seed=7)
    assert full_sampling.method == "all" and full_sampling.questions == full_sampling.population == 9000
    assert sampling.questions == 300 and sampling.population == 9000 and sampling.seed == 7
    chosen = _questions(limited)
    assert len(chosen) == 300  # questions, each scored once per split it was chosen for
    assert len(limited) <= 300  # pairs asked: a pair chosen for two splits is asked once
    population = _questions(full)
    for split in ("random", "popular", "adversarial"):
        ours = [labels for sid, labels in chosen if sid.startswith(split + "/")]
        theirs = [labels for sid, labels in population if sid.startswith(split + "/")]
        assert len(ours) == 100  # the three splits are equally large
        for label_set in ("pope", "repope"):
            share = sum(q.get(label_set) == "yes" for q in ours) / len(ours)
            truth = sum(q.get(label_set) == "yes" for q in theirs) / len(theirs)
            # proportional allocation: off by at most one question per stratum
            assert abs(share - truth) <= 2 / len(ours), (split, label_set, share, truth)
    # the first-N selection this replaces gave popular/adversarial RePOPE yes-ratios near 0.7
    popular = [labels for sid, labels in chosen if sid.startswith("popular/")]
    assert sum(q.get("repope") == "yes" for q in popular) / 100 < 0.5


def test_the_question_set_fingerprint_follows_the_questions(real: Path, tmp_path: Path) -> None:
    loaded, a, _ = _load(real, tmp_path, limit=60, sample_seed=0)
    _, b, _ = _load(real, tmp_path, limit=60, sample_seed=0)
    _, c, _ = _load(real, tmp_path, limit=60, sample_seed=1)
    _, d, _ = _load(real, tmp_path, limit=60, sample_seed=0, splits=("random", "popular"))
    checksums = dict(loaded.checksums)
    fp = [question_set("repope-pope", s, checksums) for s in (a, b, c, d)]
    assert fp[0] == fp[1] and len({fp[0], fp[2], fp[3]}) == 3
    # the same function over (split, sample id) pairs, as it is derived from a store's answers
    answers = [(sid.split("/")[0], sid) for sid, _ in _questions(a)]
    assert question_set_fingerprint("repope-pope", reversed(answers), checksums) == fp[0]
    # another label file version is another question set
    assert question_set("repope-pope", a, checksums | {"coco_repope_random.json": "0" * 64}) != fp[0]
