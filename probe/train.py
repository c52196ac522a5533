"""Training recipe of the probe model (run by `eagle-audit probe train`).

What makes a 1-3 M parameter LLaVA learn the probe world on two CPU cores in well under an hour:
- Multi-turn conversations: every image carries a caption turn and several yes/no turns, so one
  vision forward supervises many answers. Every turn, the first included, is a real single-turn
  prompt in the chat template, which is what inference sends.
- Dense supervision: every answer token (captions, yes/no, EOS) is in the loss.
- A training-only auxiliary head on the projector output predicts the class under each image
  patch from the ground-truth masks, which gives the vision side a signal from the first step.
  The head is not part of the saved model.
Training scenes come from the "train" split, where the planted partners accompany their anchors.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from probe.classes import CAPTION_PROMPT, CLASS_NAMES, caption_text, question_text
from probe.model import IMAGE_TOKEN, ProbeArch, build_untrained, save_checkpoint
from probe.world import make_scene

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 4000
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup: int = 200
    weight_decay: float = 0.01
    n_scenes: int = 30000  # pre-rendered training scenes (cycled)
    questions_per_image: tuple[int, int] = (3, 5)  # inclusive range of yes/no turns per image
    caption_rate: float = 0.7  # share of conversations with a caption turn
    aux_weight: float = 0.5  # patch-classification loss weight (decays linearly to aux_floor)
    aux_floor: float = 0.1
    threads: int = 2
    eval_every: int = 500
    arch: ProbeArch = field(default_factory=ProbeArch)


def patch_labels(labels: np.ndarray, names: list[str], patch: int) -> np.ndarray:
    """Class id of the object covering most of each patch (background = len(CLASS_NAMES)), (P,)."""
    n_bg = len(CLASS_NAMES)
    g = labels.shape[0] // patch
    blocks = labels.reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, patch * patch)
    out = np.full(g * g, n_bg, np.int64)
    for k, name in enumerate(names, start=1):
        cover = (blocks == k).mean(1)
        out[cover >= 0.2] = CLASS_NAMES.index(name)
    return out


class SceneBank:
    """Pre-rendered training scenes held in memory: images (S, H, W, 3) uint8, names, patch labels."""

    def __init__(self, seed: int, n: int, patch: int):
        t0 = time.time()
        self.images = np.zeros((n, 128, 128, 3), np.uint8)
        self.names: list[list[str]] = []
        self.patch = np.zeros((n, (128 // patch) ** 2), np.int64)
        for i in range(n):
            scene = make_scene(seed, i, "train")
            self.images[i] = scene.image
            self.names.append(scene.names)
            self.patch[i] = patch_labels(scene.labels, scene.names, patch)
        log.info("rendered %d training scenes in %.0f s", n, time.time() - t0)

    def __len__(self) -> int:
        return len(self.names)


class Conversations:
    """Turns scenes into token ids and loss labels, tokenising fixed pieces once (cached).

    The pieces split at "ASSISTANT:" | " Yes" and around special tokens, where byte-level BPE never
    merges, so concatenated pieces equal the tokenisation of the whole string (checked in tests).
    """

    def __init__(self, tokenizer, image_tokens: int):
        self.tok = tokenizer
        self.image_tokens = image_tokens
        self._cache: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tok(text, add_special_tokens=False)["input_ids"]
        return self._cache[text]

    def user(self, question: str, first: bool) -> str:
        image = (IMAGE_TOKEN * self.image_tokens + "\n") if first else ""
        return f"USER: {image}{question} ASSISTANT:"

    def build(self, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
        """(input_ids, labels) for a conversation of (question, answer) turns."""
        ids: list[int] = []
        labels: list[int] = []
        for k, (q, a) in enumerate(turns):
            prompt = self.ids(self.user(q, first=k == 0))
            answer = self.ids(" " + a + "</s>")
            ids += prompt + answer
            labels += [IGNORE] * len(prompt) + answer
        return ids, labels


def sample_turns(names: list[str], rng: np.random.Generator, cfg: TrainConfig) -> list[tuple[str, str]]:
    present = list(dict.fromkeys(names))
    absent = [c for c in CLASS_NAMES if c not in present]
    lo, hi = cfg.questions_per_image
    k = int(rng.integers(lo, hi + 1))
    n_yes = min(len(present), int(rng.integers(0, k + 1)) if rng.random() < 0.2 else (k + 1) // 2)
    n_no = min(len(absent), k - n_yes)
    yes = [present[i] for i in rng.choice(len(present), size=n_yes, replace=False)]
    no = [absent[i] for i in rng.choice(len(absent), size=n_no, replace=False)]
    turns = [(question_text(o), "Yes") for o in yes] + [(question_text(o), "No") for o in no]
    order = rng.permutation(len(turns))
    turns = [turns[i] for i in order]
    if rng.random() < cfg.caption_rate:
        turns.insert(int(rng.integers(0, len(turns) + 1)), (CAPTION_PROMPT, caption_text(present)))
    return turns


def collate(
    seqs: list[tuple[list[int], list[int]]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, labels, attention_mask), each (B, T), from (ids, labels) conversations."""
    T = max(len(s[0]) for s in seqs)
    input_ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    labels = torch.full((len(seqs), T), IGNORE, dtype=torch.long)
    attn = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, (ids, lab) in enumerate(seqs):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        labels[b, : len(lab)] = torch.tensor(lab)
        attn[b, : len(ids)] = 1
    return input_ids, labels, attn


def pixel_tensor(images: np.ndarray) -> torch.Tensor:
    """The probe processor's normalisation ((x/255 - 0.5)/0.5), (B, 3, H, W) float32."""
    x = torch.from_numpy(images).float().div_(255.0)
    return x.sub_(0.5).div_(0.5).permute(0, 3, 1, 2).contiguous()


def forward_logits(model, input_ids: torch.Tensor, pixel_values: torch.Tensor, attention_mask: torch.Tensor):
    """Logits (B, T, V) and projected image features (B, P, D); one vision forward for both."""
    image_features = model.model.get_image_features(
        pixel_values=pixel_values, vision_feature_layer=-1, vision_feature_select_strategy="default"
    )
    if not isinstance(image_features, torch.Tensor):  # transformers may return a list or an output object
        image_features = getattr(image_features, "pooler_output", image_features)
        if isinstance(image_features, (list, tuple)):
            image_features = torch.stack(list(image_features))
    embeds = model.get_input_embeddings()(input_ids)
    mask = input_ids == model.config.image_token_index
    embeds = embeds.masked_scatter(
        mask.unsqueeze(-1), image_features.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
    )
    out = model.model.language_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)
    return model.lm_head(out.last_hidden_state), image_features


def evaluate_quick(model, processor, seed: int, n: int = 200) -> dict:
    """Yes/no accuracy on `n` fresh held-out questions (teacher-forced first token), for the log."""
    from probe.evaluate import evaluate

    return evaluate(model, processor, seed=seed, n=n, captions=False, progress=False).summary()


def train(
    cfg: TrainConfig,
    out: Path | str,
    init: Path | str | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train a probe model and save it with its training record under `out`; returns the record.

    `init` continues from an existing checkpoint; `on_step(step, lm_loss)` observes every step.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.time()
    model, processor = build_untrained(cfg.arch, seed=cfg.seed)
    if init is not None:
        from probe.model import load_probe

        model, processor = load_probe(init)
    model.train()
    tok = processor.tokenizer
    conv = Conversations(tok, cfg.arch.image_tokens)
    bank = SceneBank(cfg.seed, cfg.n_scenes, cfg.arch.patch_size)
    aux_head = torch.nn.Linear(cfg.arch.text_hidden, len(CLASS_NAMES) + 1)
    params = list(model.parameters()) + list(aux_head.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    history: list[dict] = []
    pad = tok.pad_token_id
    t_loop = time.time()
    for step in range(cfg.steps):
        idx = rng.integers(0, len(bank), size=cfg.batch_size)
        input_ids, labels, attn = collate(
            [conv.build(sample_turns(bank.names[i], rng, cfg)) for i in idx], pad
        )
        images = bank.images[idx]
        if rng.random() < 0.5:  # horizontal flips keep every label true and double the scenes
            images = images[:, :, ::-1]
            g = 128 // cfg.arch.patch_size
            patch_tgt = torch.from_numpy(
                bank.patch[idx].reshape(len(idx), g, g)[:, :, ::-1].reshape(len(idx), -1).copy()
            )
        else:
            patch_tgt = torch.from_numpy(bank.patch[idx])
        pixel_values = pixel_tensor(np.ascontiguousarray(images))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits, feats = forward_logits(model, input_ids, pixel_values, attn)
        lm_loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
        )
        aux_loss = F.cross_entropy(aux_head(feats).reshape(-1, len(CLASS_NAMES) + 1), patch_tgt.reshape(-1))
        aux_w = cfg.aux_floor + (cfg.aux_weight - cfg.aux_floor) * max(0.0, 1 - step / (0.6 * cfg.steps))
        loss = lm_loss + aux_w * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if on_step is not None:
            on_step(step, lm_loss.item())
        if step % 50 == 0 or step == cfg.steps - 1:
            rate = (step + 1) / (time.time() - t_loop)
            log.info(
                "step %d/%d lm %.4f aux %.4f lr %.2e (%.2f steps/s)",
                step,
                cfg.steps,
                lm_loss.item(),
                aux_loss.item(),
                lr_at(step),
                rate,
            )
        if (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1:
            model.eval()
            quick = evaluate_quick(model, processor, seed=10_000 + step)
            model.train()
            history.append(
                {
                    "step": step + 1,
                    "lm_loss": round(lm_loss.item(), 5),
                    "wall_s": round(time.time() - t_start, 1),
                    **quick,
                }
            )
            log.info("eval at step %d: %s", step + 1, quick)
            save_checkpoint(model, processor, out)  # keep the latest weights on disk during long runs
    model.eval()
    record = {
        "command": None,  # filled in by the CLI
        "config": {
            k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in asdict(cfg).items()
        },
        "seed": cfg.seed,
        "steps": cfg.steps,
        "wall_time_s": round(time.time() - t_start, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "threads": cfg.threads,
        },
        "torch": torch.__version__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "history": history,
    }
    save_checkpoint(model, processor, out, record=record)
    return record


def write_record(out: Path | str, record: dict) -> None:
    Path(out, "training_record.json").write_text(json.dumps(record, indent=2) + "\n")
