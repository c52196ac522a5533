"""Rows from the other packages' result objects land in the pinned schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from storage_fixtures import MODEL_A, record

from eagle.explanation import Explanation
from storage.rows import explanation_row
from storage.store import Store


def small_explanation() -> Explanation:
    return Explanation(
        method="eagle-exact",
        order=np.array([2, 0, 1]),
        labels=np.array([[0, 1], [2, 2]], np.int32),
        areas=np.array([0.0, 0.5, 0.75, 1.0]),
        insertion=np.array([[0.1, 0.2], [0.5, 0.3], [0.7, 0.4], [0.9, 0.5]]),  # (n+1, N)
        deletion=np.array([[0.9, 0.5], [0.4, 0.3], [0.2, 0.2], [0.1, 0.1]]),
        gains=np.array([0.3, 0.2, 0.1]),
        region_scores=np.array([0.5, 0.0, 1.0]),
        target_ids=(5, 6),
        target_positions=(3, 4),
        forward_passes=12,
        wall_time_s=0.5,
        params={"search": "exact"},
    )


def test_an_eagle_explanation_round_trips_through_the_store(tmp_path):
    expl = small_explanation()
    store = Store(tmp_path / "s")
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    ref = store.write_map(run_id, "s1-eagle", expl.attribution_map.astype(np.float32))
    row = explanation_row(
        expl.to_dict(include_labels=False),
        sample_id="s1",
        question_id=7,
        target_text=" No",
        map_path=ref.path,
        map_sha256=ref.sha256,
        correction_area=0.25,
        corrected=True,
    )
    store.write("explanations", [row], run_id)
    (got,) = store.query("SELECT * FROM explanations").to_pylist()
    assert got["region_order"] == [2, 0, 1] and got["n_regions"] == 3
    assert (got["target_position"], got["target_token_id"], got["target_positions"]) == (3, 5, [3, 4])
    assert got["insertion_curves"] == [[0.1, 0.5, 0.7, 0.9], [0.2, 0.3, 0.4, 0.5]]  # one curve per token
    np.testing.assert_allclose(got["insertion_curve"], expl.insertion_mean)
    assert got["insertion_auc"] == expl.insertion_auc and got["deletion_auc"] == expl.deletion_auc
    np.testing.assert_allclose(got["modality_step"], expl.modality.influence)
    assert got["sensitive"] == expl.modality.sensitive.tolist()
    assert got["search"] == "exact" and '"lambda1": 1.0' in got["params"]
    assert (got["forward_passes"], got["wall_s"], got["corrected"]) == (12, 0.5, True)
    np.testing.assert_array_equal(store.read_map(got["map_path"], got["map_sha256"]), expl.attribution_map)


def test_storage_imports_without_prefect():
    code = "import sys, storage, storage.queries; print('prefect' in sys.modules, 'torch' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.split() == ["False", "False"]
