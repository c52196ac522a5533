"""A fake probe model that answers from colours it can see.

It says "Yes" to "Is there a X?" when enough pixels of X's colour are visible, and, like the trained
probe model is meant to, also when the planted partner A of X is visible: a planted hallucination
whose cause (A's pixels) is known exactly.
"""

from __future__ import annotations

import numpy as np

from eagle.types import Answer

YES, NO = 1, 2


class ColourProbe:
    model_id = "fake-colour-probe"

    def __init__(self) -> None:
        from probe.classes import CLASSES, PLANTED_PAIRS

        self.rgb = {c.name: np.array(c.rgb, np.int16) for c in CLASSES}
        self.partner_of = {b: a for a, b in PLANTED_PAIRS}

    def info(self) -> dict:
        return {"engine": "fake", "engine_version": None, "model": self.model_id, "dtype": None,
                "device": "cpu", "endpoints": []}  # fmt: skip

    def close(self) -> None:
        pass

    def _p_yes(self, images: np.ndarray, prompt: str) -> np.ndarray:
        name = prompt.split()[3]  # "Is there a star in the image?"
        lit = images.reshape(len(images), -1, 3).astype(np.int16)
        nonblack = lit.sum(-1) > 0

        def count(cls: str) -> np.ndarray:
            return ((np.abs(lit - self.rgb[cls]).max(-1) <= 28) & nonblack).sum(-1)

        evidence = count(name) + (count(self.partner_of[name]) if name in self.partner_of else 0)
        return 1.0 / (1.0 + np.exp(-(evidence - 40.0) / 12.0))

    def score(self, images, request):
        p = self._p_yes(images, request.prompt)
        cols = [p if t == YES else 1 - p for t in request.target_ids]
        return np.stack(cols, axis=1)

    def generate(self, requests):
        out = []
        for r in requests:
            yes = self._p_yes(r.image[None], r.prompt)[0] > 0.5
            out.append(
                Answer(
                    text="Yes" if yes else "No",
                    token_ids=(YES if yes else NO,),
                    logprobs=(0.0,),
                    finish_reason="stop",
                )
            )
        return out

    def answer_images(self, images, prompt, max_new_tokens=3):
        return ["Yes" if p > 0.5 else "No" for p in self._p_yes(images, prompt)]

    def answer_token_ids(self, prompt, answer):
        return (YES,) if answer.strip().lower() == "yes" else (NO,)

    def token_id(self, token):
        return self.answer_token_ids("", token)[0]

    def decode(self, ids):
        return " ".join({YES: "Yes", NO: "No"}[i] for i in ids)
