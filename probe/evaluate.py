"""Quality bars of the probe model on fresh held-out scenes (`eagle-audit probe eval`).

Per scene the model is asked about every present class ("yes"), as many absent classes ("no"),
and, when a planted anchor A is present without its partner B, about B. Answers go through the
model's own processor and chat template, as at inference time; the yes/no verdict is the greedy
first answer token (" Yes" or " No"; anything else counts as wrong).

Metrics:
- accuracy_unbiased: accuracy on questions whose class belongs to no planted pair;
- false_yes_planted: share of "Yes" to "Is there a B?" on scenes with A but not B;
- false_yes_other: false-yes rate on every other absent-class question;
- caption_recall / caption_chair_i: object recall and hallucinated-mention share of greedy
  captions, on scenes that contain no planted anchor A (where the prior cannot fire).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from auditors.mentions import vocabulary
from probe.classes import CAPTION_PROMPT, CLASS_NAMES, PLANTED_CLASSES, PLANTED_PAIRS, question_text
from probe.world import make_scene


@dataclass(frozen=True, kw_only=True)
class EvalQuestion:
    scene: int
    obj: str
    label: str  # "yes" | "no"
    # "unbiased" | "planted" (B asked with A present, B absent) | "planted_class" (other
    # planted-class questions)
    kind: str


@dataclass(kw_only=True)
class EvalResult:
    seed: int
    n: int
    questions: list[EvalQuestion]
    answers: list[str]  # "yes" | "no" | "other"
    captions: dict[int, str] = field(default_factory=dict)
    scene_names: dict[int, list[str]] = field(default_factory=dict)

    def summary(self) -> dict:
        q, a = self.questions, self.answers
        unb = [i for i, x in enumerate(q) if x.kind == "unbiased"]
        planted = [i for i, x in enumerate(q) if x.kind == "planted"]
        other_no = [i for i, x in enumerate(q) if x.label == "no" and x.kind != "planted"]
        out = {
            "n": self.n,
            "seed": self.seed,
            "accuracy_unbiased": _mean([a[i] == q[i].label for i in unb]),
            "false_yes_planted": _mean([a[i] == "yes" for i in planted]),
            "false_yes_other": _mean([a[i] == "yes" for i in other_no]),
            "n_questions_unbiased": len(unb),
            "n_planted": len(planted),
            "n_other_absent": len(other_no),
        }
        if self.captions:
            mentioned_total = halluc = hit = present_total = 0
            vocab = vocabulary("probe")  # the audit's own mention extraction
            for s, text in self.captions.items():
                present = set(self.scene_names[s])
                mentions = [m.cls for m in vocab.extract(text)]
                mentioned_total += len(mentions)
                halluc += sum(m not in present for m in mentions)
                hit += len(present & set(mentions))
                present_total += len(present)
            out["caption_recall"] = hit / present_total if present_total else float("nan")
            out["caption_chair_i"] = halluc / mentioned_total if mentioned_total else 0.0
            out["n_captions"] = len(self.captions)
        return out


def _mean(xs: list[bool]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def build_questions(seed: int, n: int) -> tuple[list[EvalQuestion], dict[int, list[str]], list[np.ndarray]]:
    rng = np.random.default_rng([seed, 99])
    anchors = {a: b for a, b in PLANTED_PAIRS}
    questions: list[EvalQuestion] = []
    names: dict[int, list[str]] = {}
    images = []
    for s in range(n):
        scene = make_scene(seed, s, "heldout")
        images.append(scene.image)
        present = scene.names
        names[s] = present
        planted_b = {anchors[a] for a in present if a in anchors and anchors[a] not in present}
        for obj in present:
            kind = "planted_class" if obj in PLANTED_CLASSES else "unbiased"
            questions.append(EvalQuestion(scene=s, obj=obj, label="yes", kind=kind))
        absent = [c for c in CLASS_NAMES if c not in present and c not in planted_b]
        for i in rng.choice(len(absent), size=min(len(present), len(absent)), replace=False):
            obj = absent[i]
            kind = "planted_class" if obj in PLANTED_CLASSES else "unbiased"
            questions.append(EvalQuestion(scene=s, obj=obj, label="no", kind=kind))
        for b in sorted(planted_b):
            questions.append(EvalQuestion(scene=s, obj=b, label="no", kind="planted"))
    return questions, names, images


@torch.no_grad()
def first_tokens(
    model, processor, images: list[np.ndarray], prompts: list[str], batch_size: int = 64
) -> list[int]:
    """Greedy first answer token for each (image, prompt), batched with left padding."""
    tok = processor.tokenizer
    tok.padding_side = "left"
    out: list[int] = []
    for i in range(0, len(prompts), batch_size):
        texts = [_chat(processor, p) for p in prompts[i : i + batch_size]]
        inputs = processor(text=texts, images=images[i : i + batch_size], return_tensors="pt", padding=True)
        logits = model(**inputs, use_cache=False).logits[:, -1]
        out += logits.argmax(-1).tolist()
    return out


@torch.no_grad()
def generate_texts(
    model, processor, images: list[np.ndarray], prompt: str, max_new_tokens: int = 24, batch_size: int = 64
) -> list[str]:
    tok = processor.tokenizer
    tok.padding_side = "left"
    texts: list[str] = []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        inputs = processor(
            text=[_chat(processor, prompt)] * len(chunk), images=chunk, return_tensors="pt", padding=True
        )
        gen = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
        texts += tok.batch_decode(gen[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [t.strip() for t in texts]


def _chat(processor, prompt: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def evaluate(
    model, processor, *, seed: int, n: int, captions: bool = True, progress: bool = True
) -> EvalResult:
    """Ask the quality-bar questions on `n` fresh held-out scenes of world `seed`."""
    questions, names, images = build_questions(seed, n)
    tok = processor.tokenizer
    yes_id = tok.convert_tokens_to_ids("ĠYes")
    no_id = tok.convert_tokens_to_ids("ĠNo")
    q_images = [images[q.scene] for q in questions]
    prompts = [question_text(q.obj) for q in questions]
    it = range(0, len(prompts), 256)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="yes/no questions", unit="x256")
    ids: list[int] = []
    for i in it:
        ids += first_tokens(model, processor, q_images[i : i + 256], prompts[i : i + 256])
    answers = ["yes" if t == yes_id else "no" if t == no_id else "other" for t in ids]
    result = EvalResult(seed=seed, n=n, questions=questions, answers=answers, scene_names=names)
    if captions:
        anchors = {a for a, _ in PLANTED_PAIRS}
        keep = [s for s in range(n) if not anchors & set(names[s])]
        texts = generate_texts(model, processor, [images[s] for s in keep], CAPTION_PROMPT)
        result.captions = dict(zip(keep, texts, strict=True))
    return result
