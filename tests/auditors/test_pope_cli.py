"""`eagle-audit pope stats|score|fetch` through click's CliRunner: output shape, exit codes, errors."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditors.annotations import KNOWN_DIGESTS
from eagle_audit.cli import main
from eagle_audit.commands.pope import pope

SPLITS = ("random", "popular", "adversarial")


def _run(*args: str):
    return CliRunner().invoke(main, ["pope", *args], catch_exceptions=False)


@pytest.mark.parametrize("command", [[], *[[name] for name in sorted(pope.commands)]])
def test_every_pope_command_has_help(command: list[str]) -> None:
    result = _run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage: main pope" in result.output
    assert len(result.output.splitlines()) > 4
    assert set(pope.commands) == {"stats", "score", "fetch"}


def test_stats_on_real_files(real_annotations_dir: Path) -> None:
    result = _run("stats", "--annotations", str(real_annotations_dir), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    counts = {f["file"]: (f["questions"], f["yes"], f["no"], f["checksum"]) for f in out["files"]}
    for split in SPLITS:
        assert counts[f"coco_pope_{split}.json"] == (3000, 1500, 1500, "ok")
    assert counts["coco_repope_random.json"] == (2774, 1159, 1615, "ok")
    assert [counts[f"coco_repope_{s}.json"][0] for s in SPLITS] == [2774, 2727, 2684]
    assert out["unique_pairs"] == {"all": 5127, "pope": 5127, "repope": 4779}


def test_stats_reports_a_checksum_mismatch(real_annotations_dir: Path, tmp_path: Path) -> None:
    for name in KNOWN_DIGESTS:
        shutil.copy(real_annotations_dir / name, tmp_path / name)
    with open(tmp_path / "coco_pope_popular.json", "a") as fh:
        fh.write("\n")
    result = CliRunner().invoke(main, ["pope", "stats", "--annotations", str(tmp_path), "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    status = {f["file"]: f["checksum"] for f in out["files"]}
    assert status["coco_pope_popular.json"] == "mismatch" and status["coco_pope_random.json"] == "ok"
    assert "warning: checksum mismatch for coco_pope_popular.json" in result.stderr
    # score refuses mismatched files unless told otherwise
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": 1, "split": "random", "answer": "Yes"}) + "\n")
    refused = CliRunner().invoke(
        main, ["pope", "score", "--annotations", str(tmp_path), "--answers", str(answers)]
    )
    assert refused.exit_code == 1
    assert "coco_pope_popular.json: SHA-256" in refused.output and "eagle-audit pope fetch" in refused.output
    forced = _run("score", "--annotations", str(tmp_path), "--answers", str(answers), "--json", "--no-verify")
    assert forced.exit_code == 0


def test_stats_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pope", "stats", "--annotations", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output == f"Error: annotation directory {tmp_path / 'nope'} does not exist\n"


def test_score_shape_and_counts(real_annotations_dir: Path, tmp_path: Path) -> None:
    from auditors.annotations import load_annotations

    annotations = load_annotations(real_annotations_dir)
    answers = tmp_path / "answers.jsonl"
    rows = []
    for split in SPLITS:  # every question of every split answered: yes to persons, garbage to dogs
        for q in annotations.questions("pope", split):
            text = "Yes." if q.object == "person" else ("hmm" if q.object == "dog" else "No, there is not.")
            rows.append(json.dumps({"question_id": q.question_id, "split": split, "answer": text}))
    answers.write_text("\n".join(rows) + "\n")
    result = _run("score", "--annotations", str(real_annotations_dir), "--answers", str(answers), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"pope", "repope", "flips"}
    keys = ["tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy", "yes_ratio", "unparsed", "n"]
    for ls in ("pope", "repope"):
        assert set(out[ls]) == {*SPLITS, "all"}
        for row in out[ls].values():
            assert list(row) == keys
            assert row["tp"] + row["fp"] + row["tn"] + row["fn"] + row["unparsed"] == row["n"]
    assert [out["pope"][s]["n"] for s in SPLITS] == [3000, 3000, 3000]
    assert [out["repope"][s]["n"] for s in SPLITS] == [2774, 2727, 2684]
    assert out["pope"]["all"]["n"] == 9000
    dog = sum(1 for s in SPLITS for q in annotations.questions("pope", s) if q.object == "dog")
    assert out["pope"]["all"]["unparsed"] == dog > 0
    for flip in out["flips"]:
        assert set(flip) == {"split", "question_id", "pope", "repope"} and flip["pope"] != flip["repope"]
    assert len(out["flips"]) > 0


def test_score_with_per_class_and_intervals(tmp_path: Path) -> None:
    from probe.world import write_world

    write_world(tmp_path / "world", seed=1, n_images=8)
    answers = tmp_path / "a.jsonl"
    lines = [json.loads(x) for x in (tmp_path / "world" / "probe_pope_random.json").read_text().splitlines()]
    answers.write_text(
        "".join(
            json.dumps({"question_id": r["question_id"], "split": "random", "answer": "Yes"}) + "\n"
            for r in lines
        )
    )
    result = _run(
        "score",
        "--annotations",
        str(tmp_path / "world"),
        "--answers",
        str(answers),
        "--json",
        "--per-class",
        "--ci",
        "100",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "warning: questions without an answer (not scored): pope " in result.stderr
    assert out["pope"]["random"]["yes_ratio"] == 1.0 and out["pope"]["random"]["n"] == len(lines)
    assert out["flips"] == []  # probe labels are exact: both label sets agree
    assert all(v["false_positive_rate"] in (None, 1.0) for v in out["per_class"]["pope"].values())
    iv = out["intervals"]["pope"]["random"]["accuracy"]
    assert iv["n_clusters"] == 8 and iv["low"] <= iv["estimate"] <= iv["high"]
    # the table form works too
    table = _run("score", "--annotations", str(tmp_path / "world"), "--answers", str(answers))
    assert table.exit_code == 0 and "pope    random" in table.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question_id": 1, "split": "random", "answer": "Yes"', "answers.jsonl:1: not valid JSON"),
        ('{"question_id": 1, "split": "nope", "answer": "Yes"}', "answers.jsonl:1: unknown split 'nope'"),
        (
            '{"question_id": 99999, "split": "random", "answer": "Yes"}',
            "answer for random question 99999, which is in none",
        ),
    ],
)
def test_score_errors(real_annotations_dir: Path, tmp_path: Path, line: str, message: str) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(line + "\n")
    result = CliRunner().invoke(
        main, ["pope", "score", "--annotations", str(real_annotations_dir), "--answers", str(answers)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output


def test_score_missing_answers_file(real_annotations_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["pope", "score", "--annotations", str(real_annotations_dir), "--answers", str(tmp_path / "x.jsonl")],
    )
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: cannot read answers file {tmp_path / 'x.jsonl'}: No such file or directory\n"
    )


# ------------------------------------------------------------------------------------------------
# fetch: against a real HTTP server on 127.0.0.1 serving a temporary directory
# ------------------------------------------------------------------------------------------------


@pytest.fixture()
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/annotations/", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass


def _serve_real(real: Path, root: Path) -> Path:
    (root / "annotations").mkdir()
    for name in KNOWN_DIGESTS:
        shutil.copy(real / name, root / "annotations" / name)
    return root / "annotations"


def test_fetch_downloads_and_verifies(real_annotations_dir: Path, file_server, tmp_path: Path) -> None:
    url, root = file_server
    _serve_real(real_annotations_dir, root)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pope", "fetch", "--out", str(out), "--base-url", url])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {f["file"]: f["status"] for f in summary["files"]} == dict.fromkeys(KNOWN_DIGESTS, "downloaded")
    assert "downloaded coco_repope_random.json" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(KNOWN_DIGESTS)  # no temporary files left
    stats = json.loads(_run("stats", "--annotations", str(out), "--json").output)
    assert all(f["checksum"] == "ok" for f in stats["files"])
    again = CliRunner().invoke(main, ["pope", "fetch", "--out", str(out), "--base-url", url])
    assert {f["status"] for f in json.loads(again.stdout)["files"]} == {"present"}


def test_fetch_refuses_a_tampered_file(real_annotations_dir: Path, file_server, tmp_path: Path) -> None:
    url, root = file_server
    served = _serve_real(real_annotations_dir, root)
    tampered = served / "coco_repope_popular.json"
    tampered.write_text(tampered.read_text().replace('"label": "no"', '"label": "yes"', 1))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pope", "fetch", "--out", str(out), "--base-url", url])
    assert result.exit_code == 1
    assert f"Error: {url}coco_repope_popular.json: downloaded SHA-256" in result.output
    assert "the file was not saved" in result.output
    assert not (out / "coco_repope_popular.json").exists()
    assert not any(p.name.endswith(".part") for p in out.iterdir())


def test_fetch_reports_http_errors(file_server, tmp_path: Path) -> None:
    url, _ = file_server  # nothing served: 404
    result = CliRunner().invoke(main, ["pope", "fetch", "--out", str(tmp_path / "out"), "--base-url", url])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {url}coco_pope_adversarial.json: HTTP 404")


def test_auditors_import_without_heavy_libraries() -> None:
    import subprocess
    import sys

    modules = (
        "auditors.annotations auditors.parsing auditors.scoring auditors.mentions auditors.marking "
        "auditors.fetch auditors.benchmarks.pope auditors.benchmarks.captions eagle_audit.commands.pope"
    ).split()
    heavy = ("torch", "transformers", "prefect", "duckdb", "httpx")
    code = f"import sys, {', '.join(modules)}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
