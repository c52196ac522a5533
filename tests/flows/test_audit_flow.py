"""The audit flow end to end on the probe world, with the real Prefect engine, the shipped probe
model in-process, and a real Parquet store read back through DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.classes import PLANTED_PAIRS
from probe.world import write_world
from storage.queries import HALLUCINATION_RATE_BY_CLASS_AND_NIGHT, REGIONS_DRIVING_HALLUCINATIONS, run_named
from storage.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.usefixtures("prefect_harness")]

SMALL = {"probe_images": 16, "regions": 16, "seed": 3}


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory) -> tuple[Store, dict]:
    from flows.audit_flow import audit_flow

    store = tmp_path_factory.mktemp("store")
    summary = audit_flow(store=str(store), report=False, **SMALL)
    return Store(store), summary


def test_every_table_is_written_and_the_run_is_closed(probe_run) -> None:
    st, summary = probe_run
    run = summary["run_id"]
    con = st.connect()
    status, model_id, revision, checksums = con.execute(
        "SELECT status, model_id, model_revision, data_checksums FROM runs WHERE run_id = ?", [run]
    ).fetchone()
    assert status == "complete" and model_id == "probe" and len(revision) == 64
    assert {k for k in checksums} >= {"probe_pope_random.json", "probe_repope_adversarial.json"}
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run]).fetchone()[0]
        for t in ("answers", "marks", "metrics")
    }
    counts["explanations"] = con.execute(
        "SELECT count(*) FROM explanations WHERE run_id = ? AND method LIKE 'eagle-%'", [run]
    ).fetchone()[0]
    # beside each EAGLE explanation: the answer's own tokens along its order, for prior-vs-evidence colouring
    answer_tokens = con.execute(
        "SELECT count(*) FROM explanations WHERE run_id = ? AND method = 'answer-tokens'", [run]
    ).fetchone()[0]
    assert all(v > 0 for v in counts.values()), counts
    # one answers row per (split, question id): the three question files of the world
    world = st.root / "datasets" / f"probe-seed{SMALL['seed']}-n{SMALL['probe_images']}"
    n_questions = sum(
        len((world / f"probe_pope_{s}.json").read_text().splitlines())
        for s in ("random", "popular", "adversarial")
    )
    assert counts["answers"] == n_questions
    assert (
        con.execute("SELECT count(*) FROM answers WHERE run_id = ? AND verdict IS NULL", [run]).fetchone()[0]
        == 0
    )
    # every mark of the RePOPE label set that has a counter token is explained exactly once per unique pair
    n_pairs = con.execute(
        """SELECT count(DISTINCT (a.image, a.question)) FROM marks m JOIN answers a USING (run_id, sample_id)
           WHERE m.run_id = ? AND m.label_set = 'repope' AND m.counter_token_id IS NOT NULL""",
        [run],
    ).fetchone()[0]
    assert counts["explanations"] == n_pairs == summary["explained"] == answer_tokens


def test_planted_hallucinations_are_marked_and_explained(probe_run) -> None:
    st, summary = probe_run
    con = st.connect()
    gt = json.loads(
        (
            st.root / "datasets" / f"probe-seed{SMALL['seed']}-n{SMALL['probe_images']}" / "ground_truth.json"
        ).read_text()
    )
    present = {r["image"]: {o["name"] for o in r["objects"]} for r in gt["images"]}
    rows = con.execute(
        """SELECT a.image, m.object_class, m.kind, m.token_text, m.counter_token_text,
                  e.region_order, e.map_path, e.error
           FROM marks m JOIN answers a USING (run_id, sample_id)
           LEFT JOIN explanations e
             ON e.run_id = m.run_id AND e.sample_id = m.sample_id AND e.method LIKE 'eagle-%'
           WHERE m.run_id = ? AND m.label_set = 'repope'""",
        [summary["run_id"]],
    ).fetchall()
    planted = [
        r
        for r in rows
        if any(r[1] == b and a in present[r[0]] and b not in present[r[0]] for a, b in PLANTED_PAIRS)
    ]
    assert planted, f"no planted hallucination was marked among {len(rows)} marks"
    explained = [r for r in planted if r[5] is not None]
    assert explained, "planted hallucinations must be explained"
    for _image, _cls, kind, token, counter, order, map_path, error in explained:
        assert kind == "false_positive" and token.strip() == "Yes" and counter.strip() == "No"
        assert error is None and sorted(order) == list(range(len(order)))
        assert st.read_map(map_path).shape == (128, 128)


def test_example_queries_return_the_hallucinations(probe_run) -> None:
    st, summary = probe_run
    con = st.connect()
    by_class = run_named(con, HALLUCINATION_RATE_BY_CLASS_AND_NIGHT).to_pylist()
    fp_direct = con.execute(
        "SELECT object_class, count(*) FROM answers"
        " WHERE run_id = ? AND verdict = 'yes' AND repope_label = 'no' GROUP BY 1",
        [summary["run_id"]],
    ).fetchall()
    assert {r["object_class"]: r["hallucinations"] for r in by_class if r["hallucinations"]} == dict(
        fp_direct
    )
    regions = run_named(con, REGIONS_DRIVING_HALLUCINATIONS, limit=5).to_pylist()
    assert regions and all(r["hallucinations"] >= 1 for r in regions)


def test_metrics_rows_match_the_answers(probe_run) -> None:
    st, summary = probe_run
    con = st.connect()
    tp, fp, tn, fn = con.execute(
        "SELECT tp, fp, tn, fn FROM metrics"
        " WHERE run_id = ? AND label_set = 'repope' AND split = 'all' AND object_class = 'all'",
        [summary["run_id"]],
    ).fetchone()
    direct = con.execute(
        """SELECT count(*) FILTER (WHERE verdict='yes' AND repope_label='yes'),
                  count(*) FILTER (WHERE verdict='yes' AND repope_label='no'),
                  count(*) FILTER (WHERE verdict='no' AND repope_label='no'),
                  count(*) FILTER (WHERE verdict='no' AND repope_label='yes')
           FROM answers WHERE run_id = ?""",
        [summary["run_id"]],
    ).fetchone()
    assert (tp, fp, tn, fn) == direct


def test_corrupt_and_missing_images_fail_only_their_samples(tmp_path: Path) -> None:
    from flows.audit_flow import audit_flow

    world = tmp_path / "world"
    write_world(world, seed=5, n_images=6)
    (world / "images" / "probe_000001.png").write_bytes(b"not a png at all")
    (world / "images" / "probe_000002.png").unlink()
    summary = audit_flow(
        store=str(tmp_path / "store"),
        dataset="repope",
        annotations=str(world),
        images=str(world / "images"),
        explain="none",
        max_failed_share=0.5,
        report=False,
    )
    st = Store(tmp_path / "store")
    con = st.connect()
    failed = con.execute(
        "SELECT image, min(error) FROM answers"
        " WHERE run_id = ? AND error IS NOT NULL GROUP BY image ORDER BY image",
        [summary["run_id"]],
    ).fetchall()
    assert [f[0] for f in failed] == ["probe_000001.png", "probe_000002.png"]
    assert all("probe_00000" in err for _, err in failed)
    ok = con.execute(
        "SELECT count(*) FROM answers WHERE run_id = ? AND error IS NULL AND verdict IS NOT NULL",
        [summary["run_id"]],
    ).fetchone()[0]
    assert ok > 0
    assert (
        con.execute("SELECT status FROM runs WHERE run_id = ?", [summary["run_id"]]).fetchone()[0]
        == "complete"
    )


def test_malformed_annotation_line_stops_before_any_model_call(tmp_path: Path) -> None:
    from auditors.annotations import AnnotationError
    from flows.audit_flow import audit_flow

    world = tmp_path / "world"
    write_world(world, seed=5, n_images=4)
    path = world / "probe_pope_popular.json"
    lines = path.read_text().splitlines()
    lines[2] = (
        '{"question_id": 3, "image": "probe_000000.png", '
        '"text": "Is there a star in the image?", "label": "maybe"}'
    )
    path.write_text("\n".join(lines) + "\n")
    (world / "SHA256SUMS").unlink()  # the line is wrong, not the checksum
    store = tmp_path / "store"
    with pytest.raises(AnnotationError, match=r"probe_pope_popular\.json:3: unknown label .maybe."):
        audit_flow(
            store=str(store),
            dataset="repope",
            annotations=str(world),
            images=str(world / "images"),
            report=False,
        )
    assert Store(store).connect().execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_cli_help_and_bad_options() -> None:
    from click.testing import CliRunner

    from eagle_audit.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["audit", "--help"]).exit_code == 0
    res = runner.invoke(main, ["audit", "--splits", "random,weird"])
    assert res.exit_code == 2 and "Error: --splits: unknown split(s) weird" in res.output
    res = runner.invoke(main, ["audit", "--dataset", "repope"])
    assert res.exit_code == 2 and "--dataset repope needs --annotations DIR" in res.output


def test_a_failed_audit_ends_the_flow_run_failed(tmp_path: Path) -> None:
    """Too many unreadable images: the run ends failed in the store and the flow run ends Failed,
    so Prefect's notifications fire."""
    from audit import AuditFailed
    from flows.audit_flow import audit_flow

    world = tmp_path / "world"
    write_world(world, seed=5, n_images=6)
    (world / "images" / "probe_000001.png").write_bytes(b"not a png at all")
    state = audit_flow(
        store=str(tmp_path / "store"),
        dataset="repope",
        annotations=str(world),
        images=str(world / "images"),
        explain="none",
        report=False,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(AuditFailed, match=r"samples failed .* more than --max-failed-share 0.05") as failed:
        state.result()
    run_id = failed.value.result.run_id
    assert Store(tmp_path / "store").run_status(run_id) == "failed"
