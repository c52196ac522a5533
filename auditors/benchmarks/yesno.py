"""The shared half of every yes/no benchmark (POPE/RePOPE, and any other "Is there ...?" set).

A yes/no benchmark only says what to ask and the labels; this base class does the rest the same
way for all of them:

- judge: `auditors.parsing.parse_yes_no` (the project's one parser) and, per label set, the
  outcome TP/FP/TN/FN or "unparsed" (`auditors.scoring.outcome`);
- mark: every wrong verdict under a label set is a marked token; the first label set in
  `label_priority` (or the sample's own order) that has a counter token gives the EAGLE target:
  the counter token (" No" for a hallucinated " Yes"), objective "tokens";
- corrected: the regenerated answer parses to the label;
- metrics: confusion counts and rates per split (and "all", which sums the splits), label set
  and object class (and "all"), with image-clustered bootstrap intervals on accuracy and F1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditors.benchmarks.base import (
    BenchmarkData,
    Item,
    Judgement,
    Mark,
    Marked,
    MetricGroup,
    SampleRef,
    Target,
)
from auditors.parsing import parse_yes_no
from auditors.scoring import Confusion, cluster_bootstrap, outcome

BOOTSTRAP_REPLICATES = 500
# the summary's columns; hallucination_rate is FP / (FP + TN), the share of "no" questions answered "yes"
YES_NO_HEADLINE = (
    "precision", "recall", "f1", "accuracy", "yes_ratio", "unparsed", "fp", "tn", "hallucination_rate",
)  # fmt: skip


def stored_outcome(label: str, verdict: str) -> str:
    """The outcome as the store spells it: "TP", "FP", "TN", "FN" or "unparsed"."""
    o = outcome(label, verdict)
    return o if o == "unparsed" else o.upper()


class YesNoBenchmark:
    """Base class of yes/no benchmarks; subclasses give `name`, `check` and `load`."""

    name: str = "yes-no"
    max_new_tokens: int = 8
    headline: tuple[str, ...] = YES_NO_HEADLINE
    label_priority: tuple[str, ...] = ()  # label sets whose errors are explained first

    def judge(self, item: Item, sample: SampleRef, answer: str) -> Judgement:
        verdict = parse_yes_no(answer)
        return Judgement(
            verdict=verdict,
            outcomes={ls: stored_outcome(label, verdict) for ls, label in sample.labels.items()},
        )

    def _priority(self, labels: Mapping[str, str]) -> list[str]:
        first = [ls for ls in self.label_priority if ls in labels]
        return first + [ls for ls in labels if ls not in first]

    def mark(self, item: Item, row: Mapping[str, Any], marker: Any) -> Marked:
        """Marks for every label set the verdict contradicts; one target (the counter token)."""
        labels = dict(row.get("labels") or {})
        out = Marked()
        logprobs = row.get("logprobs") or []
        for label_set in self._priority(labels):
            mark = marker.mark_yes_no(answer_ids=row["token_ids"], label=labels[label_set])
            if mark is None:
                continue
            out.marks.append(
                Mark(
                    sample_id=row["sample_id"],
                    token_index=mark.position,
                    token_end=mark.position + 1,
                    token_id=mark.token_id,
                    token_text=mark.token_text,
                    char_start=mark.decision[0],
                    char_end=mark.decision[1],
                    label_set=label_set,
                    kind=mark.kind,
                    object_class=row.get("object_class"),
                    counter_token_id=mark.counter_id,
                    counter_token_text=mark.counter_text,
                    logprob=logprobs[mark.position] if mark.position < len(logprobs) else None,
                )
            )
            if mark.counter_id is None:  # a phrase decision ("There is no dog") has no counter token
                continue
            out.targets.append(
                Target(
                    sample_id=item.item_id,
                    question_id=_question_id(item),
                    image=item.image,
                    prompt=item.prompt,
                    answer_ids=tuple(row["token_ids"]),
                    positions=(mark.position,),
                    target_ids=(mark.counter_id,),
                    target_text=mark.counter_text or "",
                    objective="tokens",
                    truth=labels[label_set],
                    label_set=label_set,
                    kind=mark.kind,
                    object_class=item.object_class,
                )
            )
        return out

    def corrected(self, target: Target, answer: str) -> bool:
        return parse_yes_no(answer) == target.truth

    def metrics(
        self, data: BenchmarkData, rows: Sequence[Mapping[str, Any]], splits: Sequence[str]
    ) -> list[MetricGroup]:
        return yes_no_metrics(rows, splits)


def _question_id(item: Item) -> int | None:
    return next((s.question_id for s in item.samples if s.sample_id == item.item_id), None)


def yes_no_metrics(rows: Sequence[Mapping[str, Any]], splits: Sequence[str]) -> list[MetricGroup]:
    """Metrics from answers rows: per label set, split (and "all", which sums the splits; `splits`
    gives their order, others follow by name) and object class (and "all"). Unparsed answers are
    counted; failed samples (no answer) are left out of n."""
    groups: dict[
        tuple[str, str], list[tuple[str, str, str]]
    ] = {}  # (label set, split) -> (outcome, image, class)
    for r in rows:
        if r.get("answer_text") is None:
            continue
        verdict = r.get("verdict") or parse_yes_no(r["answer_text"])
        for label_set, label in dict(r.get("labels") or {}).items():
            o = outcome(label, verdict)
            for split in (r.get("split"), "all"):
                if split is not None:
                    groups.setdefault((label_set, split), []).append(
                        (o, r["image"], r.get("object_class") or "")
                    )
    out: list[MetricGroup] = []
    order = {s: i for i, s in enumerate(splits)} | {"all": len(splits) + 1}

    def key(group: tuple[tuple[str, str], Any]) -> tuple[str, int, str]:
        label_set, split = group[0]
        return label_set, order.get(split, len(splits)), split

    for (label_set, split), found in sorted(groups.items(), key=key):
        outcomes = [o for o, _, _ in found]
        ci = cluster_bootstrap(outcomes, [im for _, im, _ in found], ("accuracy", "f1"), BOOTSTRAP_REPLICATES)
        values: dict[str, float] = {}
        se = None
        for name, iv in ci.items():
            if iv.low is not None and iv.high is not None:
                values[f"{name}_ci_low"], values[f"{name}_ci_high"] = iv.low, iv.high
                if name == "accuracy":
                    se = (iv.high - iv.low) / 3.92  # normal-approximation standard error off the interval
        c = Confusion.from_outcomes(outcomes)
        if c.false_positive_rate is not None:
            values["hallucination_rate"] = c.false_positive_rate
        out.append(
            MetricGroup(split=split, label_set=label_set, n=c.n, confusion=c, values=values, accuracy_se=se)
        )
        per_class: dict[str, list[str]] = {}
        for o, _, cls in found:
            if cls:
                per_class.setdefault(cls, []).append(o)
        for cls, got in sorted(per_class.items()):
            c = Confusion.from_outcomes(got)
            out.append(MetricGroup(split=split, label_set=label_set, object_class=cls, n=c.n, confusion=c))
    return out


__all__ = ["BOOTSTRAP_REPLICATES", "YES_NO_HEADLINE", "YesNoBenchmark", "stored_outcome", "yes_no_metrics"]
