"""EAGLE's greedy searches over regions: the exact greedy search and the efficient bidirectional
variant. Both return a `SearchTrace`: the region order (most important first) and the per-token
scores of every prefix of that order, shown alone (insertion) and removed (deletion).

Ties are broken by the current ranking everywhere: the positive side takes the best-ranked of
tied candidates (the lowest region id before any ranking exists), the negative side removes the
worst-ranked. So on a scorer that ties everywhere both searches return 0..n-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eagle.scoring import RegionScorer, objective


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchTrace:
    order: np.ndarray  # (n,) region ids, most important first
    insertion: np.ndarray  # (n, N) f(first k regions visible), row k-1 for k = 1..n
    deletion: np.ndarray  # (n, N) f(first k regions removed), row k-1 for k = 1..n
    stopped_early_at: int | None = None  # prefix length at which an early stop ordered the rest


def _candidates(base: np.ndarray, cand: list[int], value: bool) -> np.ndarray:
    """(len(cand), n) rows of `base` with region cand[i] set to `value` in row i."""
    keep = np.repeat(base[None], len(cand), axis=0)
    keep[np.arange(len(cand)), cand] = value
    return keep


@dataclass(frozen=True, kw_only=True, slots=True)
class ExactSearch:
    """Exact greedy search: every remaining region is scored both ways at every step, n(n+1)
    forward passes in all."""

    name: str = field(default="exact", init=False)

    def params(self) -> dict:
        return {"search": self.name}

    def run(
        self, rs: RegionScorer, lambda1: float, lambda2: float, f_black: np.ndarray, f_full: np.ndarray
    ) -> SearchTrace:
        n = rs.n
        visible = np.zeros(n, bool)
        remaining = list(range(n))
        order, ins_rows, del_rows = [], [], []
        for _ in range(n):
            keep = _candidates(visible, remaining, True)  # (c, n): m ∪ v visible
            scores = rs(np.concatenate([keep, ~keep]))  # insertion rows, then deletion rows
            ins, dels = scores[: len(remaining)], scores[len(remaining) :]
            j = int(np.argmax(objective(ins, dels, lambda1, lambda2)))  # first max: lowest id
            v = remaining.pop(j)
            visible[v] = True
            order.append(v)
            ins_rows.append(ins[j])
            del_rows.append(dels[j])
        return SearchTrace(
            order=np.array(order, np.int64), insertion=np.array(ins_rows), deletion=np.array(del_rows)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class EfficientSearch:
    """Bidirectional greedy search (paper §5): the most important region is added from the front
    and the least important removed from the back each round; the full re-ranking of all
    remaining regions runs only every `update_step` rounds, otherwise the first `search_scope`
    of the ranking are candidates, and the back side tries the last `pending_samples`.

    `early_stop`: stop searching once the insertion score of the prefix reaches this fraction of
    the full-image score, order the rest by the last ranking, and score those prefixes directly
    (2 forwards each) so the curves stay exact. None disables it.
    """

    search_scope: int = 10
    pending_samples: int = 8
    update_step: int = 5
    early_stop: float | None = None
    name: str = field(default="efficient", init=False)

    def __post_init__(self) -> None:
        for attr in ("search_scope", "pending_samples", "update_step"):
            if getattr(self, attr) < 1:
                raise ValueError(f"{attr} must be at least 1, got {getattr(self, attr)}")
        if self.early_stop is not None and not 0 < self.early_stop <= 1:
            raise ValueError(f"early_stop must be a fraction in (0, 1] or None, got {self.early_stop}")

    def params(self) -> dict:
        return {
            "search": self.name,
            "search_scope": self.search_scope,
            "pending_samples": self.pending_samples,
            "update_step": self.update_step,
            "early_stop": self.early_stop,
        }

    def run(
        self, rs: RegionScorer, lambda1: float, lambda2: float, f_black: np.ndarray, f_full: np.ndarray
    ) -> SearchTrace:
        n = rs.n
        ranked = list(range(n))  # unassigned regions, best first by the last full search
        front: list[int] = []  # S, most important first
        back: list[int] = []  # O, least important first
        in_front = np.zeros(n, bool)
        in_back = np.zeros(n, bool)
        pos: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # k -> (f(S_k only), f(S_k removed))
        neg: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # j -> (f(all but O_j), f(O_j only))
        stopped_at = None
        target_full = float(f_full.mean())
        t = 0
        while ranked:
            if len(ranked) == 1:
                v = ranked.pop()
                front.append(v)
                in_front[v] = True
                break
            full = not front or t % self.update_step == 0
            cand = list(ranked) if full else ranked[: self.search_scope]
            keep = _candidates(in_front, cand, True)
            scores = rs(np.concatenate([keep, ~keep]))
            ins, dels = scores[: len(cand)], scores[len(cand) :]
            f = objective(ins, dels, lambda1, lambda2)
            if full:
                idx = np.argsort(-f, kind="stable")  # stable: ties keep the previous ranking
                ranked = [cand[i] for i in idx]
                ins, dels, cand = ins[idx], dels[idx], ranked[:]
                j = 0
            else:
                j = int(np.argmax(f))  # first max: the best-ranked of tied candidates
            v = cand[j]
            ranked.remove(v)
            front.append(v)
            in_front[v] = True
            pos[len(front)] = (ins[j], dels[j])

            if (
                self.early_stop is not None
                and ranked
                and float(ins[j].mean()) >= self.early_stop * target_full
            ):
                stopped_at = len(front)
                for v in ranked:
                    front.append(v)
                    in_front[v] = True
                ranked = []
                break

            if t == 0 and ranked:
                # First round: the region ranked last by the full search goes to the back, and its
                # scores are reused with roles swapped (S was empty when they were taken).
                o = ranked.pop()
                back.append(o)
                in_back[o] = True
                i_o = len(cand) - 1
                neg[1] = (dels[i_o], ins[i_o])
            elif t > 0 and len(ranked) > self.pending_samples:
                pend = ranked[-self.pending_samples :]
                rest = _candidates(~in_back, pend, False)  # everything except O ∪ {c} visible
                only = _candidates(in_back, pend, True)  # only O ∪ {c} visible
                sc = rs(np.concatenate([rest, only]))
                r_ins, r_del = sc[: len(pend)], sc[len(pend) :]
                g = objective(r_ins, r_del, lambda1, lambda2)
                c = len(pend) - 1 - int(np.argmax(g[::-1]))  # ties: the worst-ranked candidate
                o = pend[c]
                ranked.remove(o)
                back.append(o)
                in_back[o] = True
                neg[len(back)] = (r_ins[c], r_del[c])
            t += 1

        order = np.array(front + back[::-1], np.int64)
        n_targets = f_full.shape[0]
        ins_rows = np.full((n, n_targets), np.nan)
        del_rows = np.full((n, n_targets), np.nan)
        ins_rows[n - 1], del_rows[n - 1] = f_full, f_black
        for j, (a, b) in neg.items():
            ins_rows[n - j - 1], del_rows[n - j - 1] = a, b
        for k, (a, b) in pos.items():
            ins_rows[k - 1], del_rows[k - 1] = a, b
        missing = [k for k in range(1, n) if np.isnan(ins_rows[k - 1, 0])]
        if missing:  # prefixes ordered by an early stop: score them directly
            keep = np.zeros((len(missing), n), bool)
            for r, k in enumerate(missing):
                keep[r, order[:k]] = True
            sc = rs(np.concatenate([keep, ~keep]))
            ins_rows[np.array(missing) - 1] = sc[: len(missing)]
            del_rows[np.array(missing) - 1] = sc[len(missing) :]
        return SearchTrace(order=order, insertion=ins_rows, deletion=del_rows, stopped_early_at=stopped_at)


Search = ExactSearch | EfficientSearch
