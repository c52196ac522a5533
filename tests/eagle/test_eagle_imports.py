"""`import eagle` (and every core module) stays light: no Prefect, DuckDB, serving client, torch,
transformers or probe package at import time."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_heavy_or_forbidden_packages():
    code = (
        "import sys, eagle, eagle.backends.hf, eagle.backends.openai_server, eagle.backends.serving\n"
        "import eagle.run\n"
        "import eagle.baselines, eagle.correction, eagle.heatmap, eagle.metrics, eagle.modality\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(roots & {'prefect', 'duckdb', 'vllm', 'httpx', 'torch', 'transformers', 'probe'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
