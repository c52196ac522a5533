"""The release gate: may this candidate run's model ship? Limits from a policy file, judged with
their uncertainty.

    policy = load_policy("gate.toml")
    result = run_gate("store", policy, candidate="model:qwen25vl-rc2")
    result.verdict, result.exit_code          # "pass" 0 | "fail" 1 | "cannot judge" 2

A limit is one metric (a rate under one label set and split, the failed-sample share, or AMCR) and
one bound:
- `min` / `max`: on the candidate's own value (point estimate, all of its questions);
- `max_increase` / `max_decrease`: on candidate − baseline over the shared questions. It fails only
  when the regression is significant: the one-sided (1 − level) bound of the paired bootstrap
  (resampling shared images, `auditors.significance.paired_bootstrap`) lies beyond the limit. With
  `max_increase = 0.0` on the hallucination rate, the gate fails when the rate rose and the lower
  95% bound of the rise is above zero; a rise that noise could explain passes.

The gate cannot judge (exit 2) when data is missing: no baseline for a limit on a change, runs over
different question sets (unless `intersect = true`), an undefined metric, a candidate that did not
complete. Any failed limit makes the verdict "fail", whatever else could not be judged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.compare import (
    BETTER,
    MODEL_PREFIX,
    RATES,
    CompareError,
    Comparison,
    compare_resolved,
    open_store,
    resolve_run,
)
from auditors.annotations import LABEL_SETS, SPLITS
from auditors.scoring import OUTCOME_COLUMNS, metric_values
from storage.verdicts import RunRef, correction_areas, latest_complete_run, run_health, verdicts

RUN_METRICS = ("failed_share", "amcr")  # metrics of the whole run (no label set or split)
METRICS = RATES + RUN_METRICS
BOUNDS = ("min", "max", "max_increase", "max_decrease")
PREVIOUS = "previous"  # baseline: the candidate model's previous complete run

PASS, FAIL, CANNOT = "pass", "fail", "cannot judge"
EXIT_CODES = {PASS: 0, FAIL: 1, CANNOT: 2}


class GateFailed(RuntimeError):
    """The gate found a regression after an audit (the flow run ends Failed so notifications fire);
    `summary` is the audit's summary with the gate's result under "gate"."""

    def __init__(self, result: GateResult, summary: dict[str, Any]) -> None:
        failed = [c.limit.describe() for c in result.checks if c.status == FAIL]
        super().__init__(f"release gate failed for run {summary.get('run_id')}: {'; '.join(failed)}")
        self.result = result
        self.summary = summary


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """One limit of a policy: `metric` (under `label_set` and `split` for rates) `bound` `value`."""

    metric: str
    bound: str  # min | max | max_increase | max_decrease
    value: float
    label_set: str | None = None  # rates only
    split: str | None = None  # rates only

    @property
    def on_change(self) -> bool:
        return self.bound in ("max_increase", "max_decrease")

    def describe(self) -> str:
        where = f" ({self.label_set}, {self.split})" if self.label_set else ""
        return f"{self.metric}{where} {self.bound.replace('_', ' ')} {self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "bound": self.bound,
            "value": self.value,
            "label_set": self.label_set,
            "split": self.split,
        }


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A gate policy (see the committed gate.toml)."""

    limits: tuple[Limit, ...]
    level: float = 0.05  # one-sided significance level of limits on changes
    n_boot: int = 2000
    seed: int = 0
    baseline: str | None = (
        PREVIOUS  # "previous", a run id, "model:NAME", or None (limits on changes cannot be judged)
    )
    intersect: bool = False
    source: str = "<policy>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "level": self.level,
            "bootstrap": self.n_boot,
            "seed": self.seed,
            "baseline": self.baseline,
            "intersect": self.intersect,
            "limits": [limit.to_dict() for limit in self.limits],
        }


_GATE_KEYS = {"level", "bootstrap", "seed", "baseline", "intersect"}
_LIMIT_KEYS = {"metric", "label_set", "split", *BOUNDS}


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and check a policy file; PolicyError names the file, the limit and the fix."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from exc
    return parse_policy(data, source=str(path))


def parse_policy(data: dict[str, Any], source: str = "<policy>") -> Policy:
    unknown = set(data) - {"gate", "limit"}
    if unknown:
        raise PolicyError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))}; use [gate] and [[limit]]"
        )
    gate = data.get("gate", {})
    if not isinstance(gate, dict):
        raise PolicyError(f"{source}: [gate] must be a table")
    bad = set(gate) - _GATE_KEYS
    if bad:
        raise PolicyError(
            f"{source}: unknown [gate] key(s) {', '.join(sorted(bad))}; "
            f"known: {', '.join(sorted(_GATE_KEYS))}"
        )
    level = gate.get("level", 0.05)
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0 < level < 0.5:
        raise PolicyError(f"{source}: [gate] level must be a number in (0, 0.5), e.g. 0.05; got {level!r}")
    n_boot = gate.get("bootstrap", 2000)
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 100:
        raise PolicyError(f"{source}: [gate] bootstrap must be an integer >= 100; got {n_boot!r}")
    seed = gate.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise PolicyError(f"{source}: [gate] seed must be an integer; got {seed!r}")
    baseline = gate.get("baseline", PREVIOUS)
    if not isinstance(baseline, str) or not baseline:
        raise PolicyError(
            f"{source}: [gate] baseline must be 'previous', a run id or 'model:NAME'; got {baseline!r}"
        )
    intersect = gate.get("intersect", False)
    if not isinstance(intersect, bool):
        raise PolicyError(f"{source}: [gate] intersect must be true or false; got {intersect!r}")
    entries = data.get("limit", [])
    if not isinstance(entries, list) or not entries:
        raise PolicyError(f"{source}: no limits; add at least one [[limit]] with a metric and a bound")
    limits = tuple(_limit(entry, f"{source}: limit {i}", i) for i, entry in enumerate(entries, 1))
    return Policy(
        limits=limits,
        level=float(level),
        n_boot=n_boot,
        seed=seed,
        baseline=baseline,
        intersect=intersect,
        source=source,
    )


def _limit(entry: Any, where: str, index: int) -> Limit:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a table ([[limit]])")
    bad = set(entry) - _LIMIT_KEYS
    if bad:
        raise PolicyError(
            f"{where}: unknown key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(_LIMIT_KEYS))}"
        )
    metric = entry.get("metric")
    if metric not in METRICS:
        raise PolicyError(f"{where}: unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    bounds = [b for b in BOUNDS if b in entry]
    if len(bounds) != 1:
        raise PolicyError(
            f"{where} ({metric}): give exactly one of {', '.join(BOUNDS)}; got {bounds or 'none'}"
        )
    bound, value = bounds[0], entry[bounds[0]]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PolicyError(f"{where} ({metric}): {bound} must be a number; got {value!r}")
    if bound in ("max_increase", "max_decrease") and value < 0:
        raise PolicyError(
            f"{where} ({metric}): {bound} must be >= 0 (a change the limit tolerates); got {value}"
        )
    if metric in RUN_METRICS:
        if "label_set" in entry or "split" in entry:
            raise PolicyError(f"{where} ({metric}): a run metric takes no label_set or split")
        if metric == "failed_share" and bound != "max":
            raise PolicyError(f"{where} (failed_share): only max is supported")
        if metric == "amcr" and bound not in ("max", "max_increase"):
            raise PolicyError(f"{where} (amcr): use max or max_increase (lower AMCR is better)")
        return Limit(metric=metric, bound=bound, value=float(value))
    label_set = entry.get("label_set", "repope")
    if label_set not in LABEL_SETS:
        raise PolicyError(
            f"{where} ({metric}): unknown label_set {label_set!r}; choose {' or '.join(LABEL_SETS)}"
        )
    split = entry.get("split", "all")
    if split not in (*SPLITS, "all"):
        raise PolicyError(f"{where} ({metric}): unknown split {split!r}; choose {', '.join(SPLITS)} or all")
    return Limit(metric=metric, bound=bound, value=float(value), label_set=label_set, split=split)


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """How one limit fared."""

    limit: Limit
    status: str  # pass | fail | cannot judge
    value: float | None  # the candidate's value, or the change (candidate − baseline)
    bound: float | None  # on a change: its one-sided (1 − level) confidence bound
    reason: str  # one line a reader can act on

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit.to_dict(),
            "status": self.status,
            "value": self.value,
            "bound": self.bound,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class GateResult:
    verdict: str  # pass | fail | cannot judge
    candidate: RunRef | None
    baseline: RunRef | None
    checks: list[Check]
    policy: Policy
    notes: list[str] = field(default_factory=list)
    shared_questions: int | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "candidate": None if self.candidate is None else self.candidate.to_dict(),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "shared_questions": self.shared_questions,
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "policy": self.policy.to_dict(),
            "explanation": self.explain(),
        }

    def explain(self) -> str:
        """The one-screen explanation printed by `eagle-audit gate`."""
        head = {PASS: "PASSED", FAIL: "FAILED", CANNOT: "CANNOT JUDGE"}[self.verdict]
        cand = f"{self.candidate.run_id} ({self.candidate.model_id})" if self.candidate else "?"
        base = f"{self.baseline.run_id} ({self.baseline.model_id})" if self.baseline else "none"
        lines = [f"Gate {head}: candidate {cand}, baseline {base}"]
        if self.shared_questions is not None:
            lines.append(
                f"  changes on {self.shared_questions} shared questions; "
                f"one-sided level {self.policy.level:g}, "
                f"paired bootstrap over images ({self.policy.n_boot} replicates, seed {self.policy.seed})"
            )
        mark = {PASS: "pass ", FAIL: "FAIL ", CANNOT: "n/a  "}
        lines += [f"  {mark[c.status]} {c.limit.describe()}: {c.reason}" for c in self.checks]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def run_gate(
    store: str | os.PathLike[str],
    policy: Policy,
    candidate: str,
    *,
    baseline: str | None = None,
    intersect: bool | None = None,
) -> GateResult:
    """Judge `candidate` (a run id or `model:NAME`) against `policy`; `baseline` and `intersect`
    override the policy's. Raises CompareError for a run or model that is not in the store."""
    con = open_store(store)
    try:
        cand = resolve_run(con, candidate)
        return _judge(
            con,
            policy,
            cand,
            baseline or policy.baseline,
            policy.intersect if intersect is None else intersect,
        )
    finally:
        con.close()


def _judge(con, policy: Policy, cand: RunRef, baseline_spec: str, intersect: bool) -> GateResult:
    notes: list[str] = []
    if cand.status != "complete":
        reason = f"candidate run {cand.run_id} is {cand.status}" + (f": {cand.error}" if cand.error else "")
        return GateResult(
            verdict=CANNOT,
            candidate=cand,
            baseline=None,
            checks=[
                Check(limit=lim, status=CANNOT, value=None, bound=None, reason=reason)
                for lim in policy.limits
            ],
            policy=policy,
        )
    base, comparison, why_not = None, None, None
    if any(lim.on_change for lim in policy.limits):
        base, why_not = _baseline(con, cand, baseline_spec)
        if base is not None:
            try:
                comparison = compare_resolved(
                    con, base, cand, intersect=intersect, level=1 - 2 * policy.level,
                    n_boot=policy.n_boot, seed=policy.seed, by_class=False,
                )  # fmt: skip
                notes += comparison.notes
            except CompareError as exc:
                why_not = str(exc)
    own = _own_values(con, cand)
    checks = []
    for lim in policy.limits:
        if lim.on_change:
            checks.append(_check_change(lim, comparison, policy.level, why_not))
        else:
            checks.append(_check_value(lim, own))
    statuses = {c.status for c in checks}
    verdict = FAIL if FAIL in statuses else CANNOT if CANNOT in statuses else PASS
    return GateResult(
        verdict=verdict,
        candidate=cand,
        baseline=base,
        checks=checks,
        policy=policy,
        notes=notes,
        shared_questions=comparison.shared_questions if comparison else None,
    )


def _baseline(con, cand: RunRef, spec: str) -> tuple[RunRef | None, str | None]:
    """The baseline run, or None and why."""
    if spec == PREVIOUS:
        run = latest_complete_run(con, cand.model_id, before=cand)
        if run is None:
            return None, f"no earlier complete run of model {cand.model_id!r} to compare with"
        return run, None
    try:
        run = resolve_run(con, spec, exclude=cand.run_id if spec.startswith(MODEL_PREFIX) else None)
    except CompareError as exc:
        return None, str(exc)
    return run, None


def _own_values(con, cand: RunRef) -> dict[tuple[str, str | None, str | None], float | None]:
    """The candidate's own values: every rate per label set and split (and all), failed share, AMCR."""
    counts: dict[tuple[str, str], np.ndarray] = {}
    for v in verdicts(con, cand.run_id):
        for split in {v.split or "all", "all"}:
            row = counts.setdefault((v.label_set, split), np.zeros(len(OUTCOME_COLUMNS), np.int64))
            row[OUTCOME_COLUMNS.index(v.outcome)] += 1
    out: dict[tuple[str, str | None, str | None], float | None] = {}
    for (label_set, split), c in counts.items():
        for metric in RATES:
            value = float(metric_values(c, metric))
            out[(metric, label_set, split)] = None if np.isnan(value) else value
    out[("failed_share", None, None)] = run_health(con, cand.run_id).failed_share
    areas = [c.area for c in correction_areas(con, cand.run_id)]
    out[("amcr", None, None)] = sum(areas) / len(areas) if areas else None
    return out


def _check_value(lim: Limit, own: dict) -> Check:
    value = own.get((lim.metric, lim.label_set, lim.split))
    if value is None:
        what = "no explained hallucination with a correction scan" if lim.metric == "amcr" else "no data"
        return Check(
            limit=lim, status=CANNOT, value=None, bound=None, reason=f"undefined for the candidate ({what})"
        )
    ok = value >= lim.value if lim.bound == "min" else value <= lim.value
    sign = ">=" if lim.bound == "min" else "<="
    reason = f"{value:.4f} {sign if ok else ('<' if lim.bound == 'min' else '>')} {lim.value:g}"
    return Check(limit=lim, status=PASS if ok else FAIL, value=value, bound=None, reason=reason)


def _check_change(lim: Limit, comparison: Comparison | None, level: float, why_not: str | None) -> Check:
    if comparison is None:
        return Check(limit=lim, status=CANNOT, value=None, bound=None, reason=why_not or "no baseline")
    if lim.metric == "amcr":
        diff = comparison.amcr
    else:
        group = comparison.group(lim.label_set or "repope", lim.split or "all")
        diff = None if group is None else group.differences.get(lim.metric)
    if diff is None or diff.difference is None:
        return Check(
            limit=lim, status=CANNOT, value=None, bound=None,
            reason="undefined in the baseline or the candidate on the shared questions",
        )  # fmt: skip
    # "increase" limits worry about the difference going up, "decrease" limits about it going down
    if lim.bound == "max_increase":
        bound = diff.bound("lower", level)
        worse = bound is not None and bound > lim.value
        reason = (
            f"change {diff.difference:+.4f}, one-sided {1 - level:.0%} lower bound {bound:+.4f} "
            f"{'>' if worse else '<='} {lim.value:+g}"
        )
    else:
        bound = diff.bound("upper", level)
        worse = bound is not None and bound < -lim.value
        reason = (
            f"change {diff.difference:+.4f}, one-sided {1 - level:.0%} upper bound {bound:+.4f} "
            f"{'<' if worse else '>='} {-lim.value:+g}"
        )
    if not worse and _regressed(lim.metric, diff.difference):
        reason += " (a regression within noise)"
    return Check(limit=lim, status=FAIL if worse else PASS, value=diff.difference, bound=bound, reason=reason)


def _regressed(metric: str, difference: float) -> bool:
    better = BETTER.get(metric)
    return (better == "higher" and difference < 0) or (better == "lower" and difference > 0)
