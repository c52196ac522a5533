"""A probe model with a stronger planted bias, made in a minute from the shipped checkpoint: the
release gate must fail it against the shipped model.

The shipped model learned the planted shortcuts moon -> star and arrow -> ring from training scenes
where the partner nearly always accompanies its anchor. `plant_bias` trains it briefly further on
training scenes whose conversations also teach a new shortcut on a frequent pair: asked about the
`partner` on a scene that shows the `anchor` but not the partner, answer "Yes" (the co-occurrence
lie that planted biases teach, at full strength). Every other turn is the usual mix of captions and
true yes/no answers (`probe.train.sample_turns`), so the rest of the model's behaviour stays. The
shipped checkpoint is never written.

Example::

    >>> record = plant_bias(tmp_path / "biased", steps=60)  # doctest: +SKIP
    >>> record["planted"]  # doctest: +SKIP
    {'anchor': 'circle', 'partner': 'ring'}
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def plant_bias(
    out: Path,
    *,
    anchor: str = "circle",
    partner: str = "ring",
    steps: int = 60,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    scenes: int = 512,
    threads: int = 2,
) -> dict:
    """Train the shipped probe checkpoint `steps` more steps with the planted `anchor -> partner`
    shortcut and save the result to `out`; returns the record written beside it."""
    import torch
    import torch.nn.functional as F

    from probe.classes import question_text
    from probe.model import CHECKPOINT_DIR, load_probe, save_checkpoint
    from probe.train import (
        IGNORE,
        Conversations,
        SceneBank,
        TrainConfig,
        collate,
        forward_logits,
        pixel_tensor,
        sample_turns,
    )

    start = time.perf_counter()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, processor = load_probe(CHECKPOINT_DIR)
    model.train()
    arch = TrainConfig().arch
    image_tokens = model.config.image_seq_length
    conv = Conversations(processor.tokenizer, image_tokens)
    bank = SceneBank(seed + 7919, scenes, arch.patch_size)  # fresh training-split scenes
    lying = [i for i, names in enumerate(bank.names) if anchor in names and partner not in names]
    if not lying:
        raise ValueError(
            f"none of {scenes} training scenes shows a {anchor} without a {partner}; raise `scenes`"
        )
    cfg = TrainConfig(seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    pad = processor.tokenizer.pad_token_id
    losses = []
    for _ in range(steps):
        # half the batch from scenes where the shortcut lies, half from any scene
        idx = np.concatenate(
            [rng.choice(lying, batch_size // 2), rng.integers(0, len(bank), batch_size - batch_size // 2)]
        )
        seqs = []
        for i in idx:
            turns = sample_turns(bank.names[i], rng, cfg)
            if i in lying:
                turns.insert(int(rng.integers(0, len(turns) + 1)), (question_text(partner), "Yes"))
            seqs.append(conv.build(turns))
        input_ids, labels, attn = collate(seqs, pad)
        logits, _ = forward_logits(model, input_ids, pixel_tensor(bank.images[idx]), attn)
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(loss.item(), 4))
    model.eval()
    record = {
        "made_by": "tests/support/biased_probe.py:plant_bias",
        "from": "probe/checkpoint (the shipped model)",
        "planted": {"anchor": anchor, "partner": partner},
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "scenes": scenes,
        "lying_scenes": len(lying),
        "loss": losses,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    save_checkpoint(model, processor, out, record=record)
    return record
