"""Loading a local transformers checkpoint for in-process scoring: the model in the dtype asked for
(default: the checkpoint's own), and its processor without a video processor.

Why not `AutoProcessor.from_pretrained`: for Qwen2-VL, Qwen2.5-VL, InternVL and others it builds the
video processor too, which needs torchvision (not a dependency of this project). Audits only send
images, so the processor is built from its image processor and tokenizer alone.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16")  # "auto": the dtype the checkpoint was saved in


def check_checkpoint(path: Path) -> None:
    """Raise FileNotFoundError naming `path` unless it is a transformers checkpoint directory."""
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no model at {path} (config.json missing): pass a local transformers checkpoint directory"
        )


def checkpoint_dtype(path: Path) -> str:
    """The dtype recorded in the checkpoint's config.json ("float32" when it records none)."""
    config = json.loads((path / "config.json").read_text())
    text = config.get("text_config") or {}
    return str(config.get("dtype") or config.get("torch_dtype") or text.get("dtype") or "float32")


def resolve_dtype(path: Path, dtype: str) -> str:
    """`dtype`, with "auto" replaced by the checkpoint's own dtype; unknown names fail naming the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return checkpoint_dtype(path) if dtype == "auto" else dtype


def load_model(path: Path, *, dtype: str = "auto", device: str = "cpu") -> Any:
    """The image-text-to-text model in `path` (offline), in `dtype` ("auto": the checkpoint's)."""
    import torch
    from transformers import AutoModelForImageTextToText

    check_checkpoint(path)
    _offline()
    torch_dtype = getattr(torch, resolve_dtype(path, dtype))
    return AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(device).eval()


def load_processor(path: Path) -> Any:
    """The checkpoint's processor with its image processor and tokenizer, never a video processor."""
    from transformers import AutoProcessor

    check_checkpoint(path)
    _offline()
    pixtral_without_torchvision()
    cls = _processor_class(path)
    if cls is None:
        return AutoProcessor.from_pretrained(path)
    if "video_processor" not in cls.get_attributes():
        if cls.__name__ == "PaliGemmaProcessor":
            # It warns on every call that it puts the image tokens and BOS before the text itself:
            # PaliGemma's prompt format, which no chat template spells (noise in an audit's log).
            logging.getLogger("transformers.models.paligemma.processing_paligemma").setLevel(logging.ERROR)
        return cls.from_pretrained(path)
    from transformers import AutoImageProcessor, AutoTokenizer

    settings, _ = cls.get_processor_dict(str(path))
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in settings.items() if k in params and k not in cls.get_attributes()}
    return image_only(cls)(
        image_processor=AutoImageProcessor.from_pretrained(path),
        tokenizer=AutoTokenizer.from_pretrained(path),
        **kwargs,
    )


def _processor_class(path: Path) -> type | None:
    from transformers.models.auto.processing_auto import processor_class_from_name

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = path / name
        if file.is_file():
            cls_name = json.loads(file.read_text()).get("processor_class")
            if cls_name in _WITHOUT_TORCHVISION:  # transformers only offers a placeholder by name
                return getattr(importlib.import_module(_WITHOUT_TORCHVISION[cls_name]), cls_name)
            if cls_name:
                return processor_class_from_name(cls_name)
    return None


# Processors that work without torchvision once `pixtral_without_torchvision` ran, by module.
_WITHOUT_TORCHVISION = {"PixtralProcessor": "transformers.models.pixtral.processing_pixtral"}


def pixtral_without_torchvision() -> None:
    """Let transformers 5.19's PixtralProcessor (Mistral3, Pixtral) import without torchvision.

    Its module imports one helper, `get_resize_output_image_size`, from the torchvision image
    processor's module, which fails at import; the PIL image processor's module defines the same
    function. Without torchvision that module cannot load anyway, so it is stood in for by a module
    holding only this helper (with torchvision installed, nothing changes)."""
    name = "transformers.models.pixtral.image_processing_pixtral"
    if name in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    from transformers.models.pixtral import image_processing_pil_pixtral as pil

    stand_in = types.ModuleType(name, "get_resize_output_image_size only (torchvision is not installed)")
    stand_in.get_resize_output_image_size = pil.get_resize_output_image_size  # type: ignore[attr-defined]
    sys.modules[name] = stand_in


@cache
def image_only(cls: type) -> type:
    """A subclass of processor class `cls` whose only sub-processors are the image processor and the
    tokenizer (transformers finds a processor's parts from its `__init__` signature)."""

    def __init__(self: Any, image_processor: Any, tokenizer: Any, **kwargs: Any) -> None:
        cls.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                     **kwargs)  # fmt: skip

    # The parent's parameters less the video processor, so its settings (e.g. image_seq_length) are
    # still found by transformers when it saves or describes the processor.
    sig = inspect.signature(cls.__init__)
    __init__.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != "video_processor"]
    )
    return type(cls.__name__, (cls,), {"__init__": __init__, "__doc__": f"{cls.__name__} for images only."})


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
