"""A separate writer process for the concurrency and crash tests:

python storage_worker.py write STORE RUN_ID PARTS ROWS   # one run, PARTS writes of ROWS answers, complete
python storage_worker.py forever STORE RUN_ID ROWS       # keeps writing big parts until killed
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from storage_fixtures import MODEL_A, record  # noqa: E402

from storage.store import Store  # noqa: E402


def answers(start: int, n: int) -> pa.Table:
    ids = [f"s{i:09d}" for i in range(start, start + n)]
    return pa.table(
        {
            "sample_id": ids,
            "benchmark": ["pope"] * n,
            "image": ids,
            "question": ["Is there a star in the image?"] * n,
            "answer_text": ["Yes"] * n,
            "verdict": ["yes"] * n,
        }
    )


def main() -> None:
    mode, store_dir, run_id = sys.argv[1:4]
    store = Store(store_dir)
    store.begin_run(record(MODEL_A, 5, run_id))
    if mode == "write":
        parts, rows = int(sys.argv[4]), int(sys.argv[5])
        for p in range(parts):
            store.write("answers", answers(p * rows, rows), run_id)
        store.finish_run(run_id, "complete")
    elif mode == "forever":
        rows = int(sys.argv[4])
        print("ready", flush=True)  # noqa: T201
        p = 0
        while True:
            store.write("answers", answers(p * rows, rows), run_id)
            p += 1
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
