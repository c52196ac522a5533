"""A second yes/no benchmark in one file, to show that adding one needs no change to the engine, the
store or the report (tests/audit/test_benchmark_plugin.py registers and runs it).

"Partners": on every probe-world image that shows a planted anchor (moon, arrow), ask whether its
partner (star, ring) is there too; the label set "truth" is the world's exact ground truth. This is
the question the probe model was trained to get wrong, so it hallucinates often.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from auditors.benchmarks.base import BenchmarkData, DataSource, Item, SampleRef, SourceError
from auditors.benchmarks.yesno import YesNoBenchmark

PAIRS = {"moon": "star", "arrow": "ring"}  # planted anchor -> partner (probe/classes.py)


class PartnersBenchmark(YesNoBenchmark):
    name = "partners"

    def check(self, source: DataSource) -> None:
        if source.ground_truth is None:
            raise SourceError("--dataset", "the partners benchmark needs the probe world (--dataset probe)")

    def load(self, source: DataSource, splits: Sequence[str]) -> BenchmarkData:
        self.check(source)
        assert source.ground_truth is not None
        items = []
        for rec in json.loads(source.ground_truth.read_text())["images"]:
            present = {o["name"] for o in rec["objects"]}
            for anchor, partner in PAIRS.items():
                if anchor in present:
                    sid = f"{rec['image']}/{partner}"
                    label = "yes" if partner in present else "no"
                    items.append(
                        Item(
                            item_id=sid,
                            image=rec["image"],
                            prompt=f"Is there a {partner} in the image?",
                            samples=(SampleRef(sample_id=sid, split="partners", labels={"truth": label}),),
                            split="partners",
                            label=label,
                            object_class=partner,
                        )
                    )
        return BenchmarkData(items=tuple(items), label_sets=("truth",), checksums={})


PARTNERS = PartnersBenchmark()
