"""A synthetic, probe-like audit written through the real `storage.Store` API, for report tests,
the report benchmark and demos. `build_report` never imports this module.

Scenes, masks and questions come from a real probe world (`probe.world.write_world`); the model's
answers, marks and EAGLE explanations are drawn from a seeded rule that mimics the trained probe
model: it hallucinates the planted partner (moon -> star, arrow -> ring) with a per-night
propensity, misses a few present objects and sometimes answers something unparseable. Maps and
curves are deterministic functions of the scene's masks on real SLICO regions: for a false
positive the counter token "No" is supported by everything except the anchor object, so the
`1 − map` view lights up the anchor that drives the hallucination.

Example::

    >>> runs = write_synthetic_audit("/tmp/store", "/tmp/world", nights=3, n_images=20)  # doctest: +SKIP
    >>> len(runs)  # doctest: +SKIP
    3
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from storage.rows import metrics_row

MODEL_ID = "probe/llava-probe-128"
# Token ids of the synthetic vocabulary (the probe tokenizer keeps " Yes"/" No" single tokens too).
YES_ID, NO_ID, MAYBE_ID = 11, 12, 13
_QUESTION_CLASS = re.compile(r"Is there an? (\w+) in the image\?")
_TOKEN = re.compile(r"\s?\w+|\s?[^\w\s]")

# An injection attempt in model output; {cls} is a class absent from the image (the marked token).
HOSTILE_TEXT = (
    "a moon and a </script><script>window.__pwned = 1</script>"
    '<img src="x.png" onerror="window.__pwned = 2"> <b>bold</b> & "quotes" {cls}.'
)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Scene:
    name: str
    labels: np.ndarray  # (H, W) uint8 label map of the world's masks/ PNG: 0 background, k object k-1
    objects: tuple[str, ...]  # class of label k at index k-1


def _load_world(world: Path) -> dict[str, _Scene]:
    from PIL import Image

    gt = json.loads((world / "ground_truth.json").read_text())
    scenes = {}
    for rec in gt["images"]:
        labels = np.asarray(Image.open(world / rec["mask"]))
        objects = tuple(o["name"] for o in sorted(rec["objects"], key=lambda o: o["label"]))
        scenes[rec["image"]] = _Scene(name=rec["image"], labels=labels, objects=objects)
    return scenes


def _questions(world: Path, split: str) -> list[dict[str, Any]]:
    rows = []
    for line in (world / f"probe_repope_{split}.json").read_text().splitlines():
        q = json.loads(line)
        match = _QUESTION_CLASS.fullmatch(q["text"])
        if match is None:
            raise ValueError(
                f"{world}/probe_repope_{split}.json: question {q['text']!r} is not a probe question"
            )
        q["object"] = match.group(1)
        rows.append(q)
    return rows


def _tokens(text: str) -> list[str]:
    """Word-level pseudo tokens that concatenate back to `text` (" a", " circle", ",", ...)."""
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != text:  # anything the pattern skipped (e.g. runs of spaces) goes in one token
        tokens = [text]
    return tokens


def _token_id(token: str) -> int:
    return 100 + (sum(token.encode()) * 131 + len(token)) % 5000


class _ExplanationMaker:
    """Deterministic EAGLE-shaped explanations from scene masks on SLICO regions."""

    def __init__(self, n_segments: int = 36) -> None:
        from eagle.regions import SlicoSegmenter

        self._segmenter = SlicoSegmenter(n_segments=n_segments)
        self._regions: dict[str, np.ndarray] = {}

    def regions(self, image_name: str, image: np.ndarray) -> np.ndarray:
        if image_name not in self._regions:
            self._regions[image_name] = self._segmenter.segment(image)
        return self._regions[image_name]

    def explain(
        self,
        labels: np.ndarray,
        support: np.ndarray,
        driver: np.ndarray,
        *,
        targets: list[tuple[int, int]],
        grounded: list[float],
        method: str = "eagle-efficient",
        rise: bool = False,
    ):
        """An `eagle.explanation.Explanation` whose counter/target probability rises as `support`
        pixels appear and falls as `driver` pixels appear. `grounded[i]` in [0, 1] scales how much
        target i depends on the image (0: a language-prior token with a flat curve). With `rise`, each
        target's probability climbs from a prior level with the revealed `support` (answer tokens)."""
        from eagle.attribution import eagle_region_scores, gains
        from eagle.explanation import Explanation
        from eagle.regions import region_areas

        n = int(labels.max()) + 1
        area = region_areas(labels, n)
        cover_s = np.bincount(labels.ravel(), weights=support.ravel().astype(float), minlength=n)
        cover_d = np.bincount(labels.ravel(), weights=driver.ravel().astype(float), minlength=n)
        key = cover_s / np.maximum(area * labels.size, 1) - cover_d / np.maximum(area * labels.size, 1)
        order = np.lexsort((np.arange(n), -key))  # most supportive first; ties by id
        s = np.concatenate([[0.0], np.cumsum(cover_s[order])]) / max(cover_s.sum(), 1.0)
        d = np.concatenate([[0.0], np.cumsum(cover_d[order])]) / max(cover_d.sum(), 1.0)
        g = np.asarray(grounded, np.float64)[None, :]  # (1, N)
        if rise:
            ins = np.clip(0.03 + 0.92 * g * np.sqrt(s[:, None]) + (1 - g) * 0.6, 0.01, 0.99)  # (n+1, N)
            dele = np.clip(0.03 + 0.92 * g * np.sqrt(1 - s[:, None]) + (1 - g) * 0.6, 0.01, 0.99)
        else:
            ins = np.clip(0.55 + g * (0.35 * s[:, None] - 0.55 * d[:, None]), 0.01, 0.99)  # (n+1, N)
            dele = np.clip(0.55 + g * (0.35 * (1 - s[:, None]) - 0.55 * (1 - d[:, None])), 0.01, 0.99)
        step = gains(ins, dele, 1.0, 1.0)
        return Explanation(
            method=method,
            order=order.astype(np.int64),
            labels=labels.astype(np.int32),
            areas=np.concatenate([[0.0], np.cumsum(area[order])]),
            insertion=ins,
            deletion=dele,
            gains=step,
            region_scores=eagle_region_scores(order, step),
            target_ids=tuple(t for _, t in targets),
            target_positions=tuple(p for p, _ in targets),
            forward_passes=2 * n * 11,
            wall_time_s=0.8 + 0.01 * n,
            params={
                "search": "efficient",
                "search_scope": 10,
                "update_step": 5,
                "pending_samples": 8,
                "n_segments": 36,
            },
        )


def _drivers(scene: _Scene, regions: np.ndarray, expl) -> list[dict[str, Any]]:
    """The scene's objects scored by the explanation, as the audit stores them (auditors.causes)."""
    from auditors.causes import drivers
    from auditors.groundtruth import ObjectMasks

    masks = ObjectMasks(labels=scene.labels.astype(np.int32), classes=dict(enumerate(scene.objects, start=1)))
    return [d.to_row() for d in drivers(expl.order, regions, masks, expl.region_scores)]


def _correction(expl) -> tuple[float, bool, list[float]]:
    """Correction area, whether corrected, and the scan as the audit stores it: for k = n, n−1, ...
    regions kept, 1.0 if the regenerated answer was right (p(counter) > 0.5), else 0.0, up to the
    first right one."""
    ins = expl.insertion_mean  # p(counter | top-k visible), k = 0..n
    n = len(ins) - 1
    scan: list[float] = []
    for k in range(n, 0, -1):
        scan.append(float(ins[k] > 0.5))
        if ins[k] > 0.5:
            return (0.0 if k == n else float(max(0.0, 1.0 - expl.areas[k]))), True, scan
    return 1.0, False, scan


def _metric_rows(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from auditors.scoring import Confusion

    rows = []
    yes_no = [a for a in answers if a["benchmark"] == "probe"]
    groups: dict[tuple[str, str, str], list[str]] = {}
    for a in yes_no:
        for label_set in ("pope", "repope"):
            label = a["labels"].get(label_set)
            if label is None:
                continue
            verdict = a["verdict"]
            o = (
                "unparsed"
                if verdict == "unparsed"
                else {("yes", "yes"): "tp", ("yes", "no"): "fp", ("no", "no"): "tn", ("no", "yes"): "fn"}[
                    (verdict, label)
                ]
            )
            for split in (a["split"], "all"):
                for cls in (a["object_class"], "all"):
                    groups.setdefault((split, label_set, cls), []).append(o)
    for (split, label_set, cls), outcomes in sorted(groups.items()):
        c = Confusion.from_outcomes(outcomes)
        rows.append(metrics_row(c, benchmark="probe", split=split, label_set=label_set, object_class=cls))
    return rows


def write_synthetic_audit(
    store_path: str | Path,
    world_path: str | Path,
    *,
    nights: int = 5,
    n_images: int = 24,
    seed: int = 0,
    model_id: str = MODEL_ID,
    explain_nights: int = 1,
    max_explanations: int | None = None,
    hostile: bool = False,
    start: dt.datetime | None = None,
) -> list[str]:
    """Write `nights` nightly runs of `model_id` (one day apart) into the store at `store_path`.

    The world (`n_images` held-out scenes with `seed`) is written to `world_path` unless it already
    holds one. The last `explain_nights` runs get EAGLE explanations (at most `max_explanations` per
    run) with maps saved through `Store.write_map`. `hostile=True` makes one caption answer (and its
    corrected answer) an HTML/script injection attempt, for escaping tests. Returns the run ids,
    oldest first; every run is closed as complete.
    """
    from PIL import Image

    from auditors.benchmarks.yesno import stored_outcome
    from probe.classes import CAPTION_PROMPT, CLASS_INDEX, PLANTED_PAIRS, caption_text
    from probe.world import POPE_SPLITS, write_world
    from storage.rows import explanation_row
    from storage.store import RunRecord, Store

    world = Path(world_path)
    if not (world / "ground_truth.json").exists():
        write_world(world, seed, n_images, "heldout")
    scenes = _load_world(world)
    questions = {split: _questions(world, split) for split in POPE_SPLITS}
    checksums = dict(
        line.split("  ", 1)[::-1] for line in (world / "SHA256SUMS").read_text().splitlines() if line.strip()
    )
    partners = {b: a for a, b in PLANTED_PAIRS}
    start = start or dt.datetime(2025, 3, 1, 2, 30, tzinfo=dt.UTC)
    store = Store(store_path)
    maker = _ExplanationMaker()
    images: dict[str, np.ndarray] = {}
    run_ids = []
    for night in range(nights):
        rng = np.random.default_rng([seed, night, 17])
        # A propensity that wanders night to night, so trends and comparisons have something to show.
        propensity = float(
            np.clip(0.45 + 0.25 * np.sin(1.3 * night + seed) + rng.normal(0, 0.05), 0.05, 0.95)
        )
        record = RunRecord(
            model_id=model_id,
            backend="transformers",
            run_id=f"{(start + dt.timedelta(days=night)):%Y%m%dT%H%M%SZ}-synth{seed:02d}{night:02d}",
            started_at=start + dt.timedelta(days=night),
            model_revision="sha256:" + f"{seed:02d}{night:02d}".ljust(64, "0"),
            engine_version="transformers 5.19.0",
            decoding={"temperature": 0.0, "max_new_tokens": 24, "do_sample": False},
            seed=seed,
            data_checksums=checksums,
            code_version="synthetic",
            benchmark="probe",
            config={
                "image_root": str((world / "images").resolve()),
                "world_seed": seed,
                "synthetic": True,
                "propensity": round(propensity, 4),
            },
            host="synthetic-host",
        )
        run_id = store.begin_run(record)
        run_ids.append(run_id)
        explain = night >= nights - explain_nights
        answers: list[dict[str, Any]] = []
        marks: list[dict[str, Any]] = []
        explanations: list[dict[str, Any]] = []
        answered_at = record.started_at

        def want_explanation(explain: bool = explain, explanations: list = explanations) -> bool:
            return explain and (max_explanations is None or len(explanations) < max_explanations)

        def image(name: str) -> np.ndarray:
            if name not in images:
                images[name] = np.asarray(Image.open(world / "images" / name).convert("RGB"))
            return images[name]

        for split in POPE_SPLITS:
            for q in questions[split]:
                scene = scenes[q["image"]]
                obj, label = q["object"], q["label"]
                anchor = partners.get(obj)
                u = rng.random()
                if u < 0.012:
                    text, verdict, tid = "Maybe.", "unparsed", MAYBE_ID
                elif label == "yes":
                    text, verdict = ("No", "no") if u < 0.06 else ("Yes", "yes")
                else:
                    p = propensity if anchor in scene.objects else 0.03
                    text, verdict = ("Yes", "yes") if u < p else ("No", "no")
                tid = {"yes": YES_ID, "no": NO_ID}.get(verdict, MAYBE_ID)
                # RePOPE-style relabelling, simulated: a few labels removed or flipped in the second set.
                v = rng.random()
                repope = None if v < 0.03 else ({"yes": "no", "no": "yes"}[label] if v < 0.05 else label)
                sample_id = f"probe/{split}/{q['question_id']}"
                answered_at = answered_at + dt.timedelta(milliseconds=120)
                answers.append(
                    {
                        "sample_id": sample_id,
                        "benchmark": "probe",
                        "split": split,
                        "question_id": q["question_id"],
                        "image": q["image"],
                        "question": q["text"],
                        "object_class": obj,
                        "answer_text": text,
                        "verdict": verdict,
                        "labels": {"pope": label} | ({"repope": repope} if repope else {}),
                        "outcomes": {"pope": stored_outcome(label, verdict)}
                        | ({"repope": stored_outcome(repope, verdict)} if repope else {}),
                        "token_ids": [tid],
                        "tokens": [" " + text],
                        "logprobs": [float(np.log(0.55 + 0.4 * rng.random()))],
                        "finish_reason": "stop",
                        "error": None,
                        "latency_s": 0.05 + 0.02 * rng.random(),
                        "answered_at": answered_at,
                    }
                )
                if verdict == "unparsed":
                    continue
                wrong_under = [
                    ls for ls, lab in (("pope", label), ("repope", repope)) if lab and lab != verdict
                ]
                if not wrong_under:
                    continue
                kind = "false_positive" if verdict == "yes" else "false_negative"
                counter_id, counter_text = (NO_ID, " No") if verdict == "yes" else (YES_ID, " Yes")
                for label_set in wrong_under:
                    marks.append(
                        {
                            "sample_id": sample_id,
                            "token_index": 0,
                            "token_id": tid,
                            "token_text": " " + text,
                            "char_start": 0,
                            "char_end": len(text),
                            "label_set": label_set,
                            "kind": kind,
                            "object_class": obj,
                            "counter_token_id": counter_id,
                            "counter_token_text": counter_text,
                            "logprob": answers[-1]["logprobs"][0],
                        }
                    )
                if obj in scene.objects and kind == "false_positive":
                    continue  # a relabelled question the scene contradicts: nothing sensible to explain
                if not want_explanation():
                    continue
                present = scene.labels > 0
                if kind == "false_positive":
                    driver = (
                        np.isin(scene.labels, [i + 1 for i, o in enumerate(scene.objects) if o == anchor])
                        if anchor in scene.objects
                        else present
                    )
                    support = ~driver
                else:  # the present object supports the counter "Yes"; the clutter around it pulls to "No"
                    support = (
                        (scene.labels == scene.objects.index(obj) + 1) if obj in scene.objects else present
                    )
                    driver = ~support
                regions = maker.regions(q["image"], image(q["image"]))
                expl = maker.explain(regions, support, driver, targets=[(0, counter_id)], grounded=[1.0])
                ref = store.write_map(run_id, sample_id, expl.attribution_map.astype(np.float32))
                area, corrected, curve = _correction(expl)
                explanations.append(
                    explanation_row(
                        expl.to_dict(include_labels=False),
                        sample_id=sample_id,
                        question_id=q["question_id"],
                        target_text=counter_text,
                        search="efficient",
                        map_path=ref.path,
                        map_sha256=ref.sha256,
                        correction_area=area,
                        corrected=corrected,
                        corrected_answer=(counter_text.strip() if corrected else text),
                        correction_curve=curve,
                        objective="tokens",
                        label_set="repope" if "repope" in wrong_under else "pope",
                        drivers=_drivers(scene, regions, expl),
                    )
                )

        # Captions: the reference caption, plus the planted partner when the model hallucinates it.
        captions = 0
        for index, (name, scene) in enumerate(sorted(scenes.items())):
            objects = list(scene.objects)
            extra = [
                b for a, b in PLANTED_PAIRS if a in objects and b not in objects and rng.random() < propensity
            ]
            mentioned = sorted(set(objects + extra), key=CLASS_INDEX.__getitem__)
            text = caption_text(mentioned)
            if hostile and index == 0:
                absent = next(c for c in CLASS_INDEX if c not in objects)
                text, extra = HOSTILE_TEXT.format(cls=absent), [absent]
            tokens = _tokens(text)
            ids = [_token_id(t) for t in tokens]
            sample_id = f"captions/{index}"
            answers.append(
                {
                    "sample_id": sample_id,
                    "benchmark": "captions",
                    "split": None,
                    "question_id": None,
                    "image": name,
                    "question": CAPTION_PROMPT,
                    "object_class": None,
                    "answer_text": text,
                    "verdict": ", ".join(sorted(set(mentioned + extra))),
                    "labels": {"instances": ", ".join(sorted(objects))},
                    "outcomes": {"instances": "hallucinated" if extra else "faithful"},
                    "token_ids": ids,
                    "tokens": tokens,
                    "logprobs": [float(np.log(0.5 + 0.49 * rng.random())) for _ in tokens],
                    "finish_reason": "stop",
                    "error": None,
                    "latency_s": 0.2,
                    "answered_at": answered_at,
                }
            )
            captions += 1
            wrong = [i for i, t in enumerate(tokens) if t.strip() in extra]
            for i in wrong:
                char_start = sum(len(t) for t in tokens[:i]) + (len(tokens[i]) - len(tokens[i].lstrip()))
                marks.append(
                    {
                        "sample_id": sample_id,
                        "token_index": i,
                        "token_id": ids[i],
                        "token_text": tokens[i],
                        "char_start": char_start,
                        "char_end": char_start + len(tokens[i].strip()),
                        "token_end": i + 1,
                        "label_set": "instances",
                        "kind": "hallucinated_object",
                        "object_class": tokens[i].strip(),
                        "counter_token_id": None,
                        "counter_token_text": None,
                        "logprob": answers[-1]["logprobs"][i],
                    }
                )
            if not wrong or not want_explanation():
                continue
            regions = maker.regions(name, image(name))
            anchors = [a for a, b in PLANTED_PAIRS if tokens[wrong[0]].strip() == b]
            driver = np.isin(scene.labels, [k + 1 for k, o in enumerate(objects) if o in anchors])
            if not driver.any():  # no planted anchor in view: every object feeds the made-up mention
                driver = scene.labels > 0
            # The absence of the hallucinated mention (the audit's span-absence objective): everything
            # but the anchor supports it, the anchor drives the mention, so 1 − map lights the anchor.
            expl = maker.explain(
                regions, ~driver, driver, targets=[(wrong[0], ids[wrong[0]])], grounded=[0.6]
            )
            ref = store.write_map(run_id, sample_id, expl.attribution_map.astype(np.float32))
            area, corrected, curve = _correction(expl)
            explanations.append(
                explanation_row(
                    expl.to_dict(include_labels=False),
                    sample_id=sample_id,
                    target_text=tokens[wrong[0]],
                    search="efficient",
                    map_path=ref.path,
                    map_sha256=ref.sha256,
                    correction_area=area,
                    corrected=corrected,
                    corrected_answer=(
                        text if hostile and index == 0 else caption_text(objects) if corrected else None
                    ),
                    correction_curve=curve,
                    objective="span-absence",
                    label_set="instances",
                    drivers=_drivers(scene, regions, expl),
                )
            )
            # Every answer token, for the prior-vs-evidence colouring: object words lean on the image,
            # function words on the language prior.
            grounded = [
                (0.3 if t.strip() in extra else 0.95) if t.strip() in CLASS_INDEX else 0.04 for t in tokens
            ]
            whole = maker.explain(
                regions,
                scene.labels > 0,
                np.zeros_like(driver),
                targets=list(enumerate(ids)),
                grounded=grounded,
                method="eagle-efficient:answer",
                rise=True,
            )
            explanations.append(
                explanation_row(
                    whole.to_dict(include_labels=False),
                    sample_id=sample_id,
                    target_text=text,
                    search="efficient",
                    objective="tokens",
                    label_set="instances",
                )
            )

        store.write("answers", answers, run_id)
        store.write("marks", marks, run_id)
        if explanations:
            store.write("explanations", explanations, run_id)
        metrics = _metric_rows(answers)
        caption_marks = {m["sample_id"] for m in marks if m["kind"] == "hallucinated_object"}
        mentions = sum(
            1
            for a in answers
            if a["benchmark"] == "captions"
            for t in a["tokens"]
            if t.strip() in CLASS_INDEX
        )
        hallucinated = sum(1 for m in marks if m["kind"] == "hallucinated_object")
        present = sum(
            len(a["labels"]["instances"].split(", ")) for a in answers if a["benchmark"] == "captions"
        )
        metrics.append(
            {
                "benchmark": "captions",
                "split": "all",
                "label_set": "instances",
                "object_class": "all",
                "n": captions,
                "extra": {
                    "chair_i": hallucinated / max(mentions, 1),
                    "chair_s": len(caption_marks) / max(captions, 1),
                    "recall": 1.0 if present else 0.0,  # captions name every present object
                    "mentions": float(mentions),
                    "hallucinated": float(hallucinated),
                    "unverified": 0.0,
                },
            }
        )
        store.write("metrics", metrics, run_id)
        store.finish_run(run_id, "complete")
    store.close()
    return run_ids
