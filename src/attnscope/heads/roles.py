"""A role for every head, and whether the book's BERTology claims hold for a model.

Role rule (an operationalisation; thresholds are constants below): each head's candidate behaviours
are its mean shares ``first``, ``sep``, ``punct``, ``self``, ``previous``, ``next`` and, for its best
fixed offset d with |d| >= 2, ``offset±d``. The role is the candidate with the largest share if that
share is at least ``SHARE_THRESHOLD`` (the head sends at least half of its attention there); otherwise
``broad`` if its normalised entropy is at least ``BROAD_THRESHOLD`` (attention spread nearly evenly,
Clark et al.'s broad heads), scored by that entropy; otherwise ``mixed``, scored by its largest share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

SHARE_THRESHOLD = 0.5
BROAD_THRESHOLD = 0.8
SHARE_ROLES = ("first", "sep", "punct", "self", "previous", "next")

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Role:
    """One head's role, the score that earned it, and the behaviour whose example sentence shows it."""

    role: str
    score: float
    behaviour: str


def assign_role(means: dict[str, float]) -> Role:
    """The role of one head from its mean statistics (see the module docstring)."""
    candidates = {name: means[name] for name in SHARE_ROLES}
    behaviour_of = {"self": "offset+0", "previous": "offset-1", "next": "offset+1"}
    offset = int(means["best_offset"])
    if abs(offset) >= 2:
        name = f"offset{offset:+d}"
        candidates[name] = means["best_offset_share"]
        behaviour_of[name] = name
    top = max(candidates, key=lambda k: (candidates[k], -list(candidates).index(k)))
    share = float(candidates[top])
    if share >= SHARE_THRESHOLD:
        return Role(top, share, behaviour_of.get(top, top))
    entropy = float(means["entropy_norm"])
    if np.isfinite(entropy) and entropy >= BROAD_THRESHOLD:
        return Role("broad", entropy, "broad")
    return Role("mixed", share, behaviour_of.get(top, top))


def book_claims(layers: dict[str, F64], heads: dict[str, F64], has_sep: bool) -> list[dict[str, Any]]:
    """Whether the book's claims hold, with numbers: lower layers = the first half, upper = the rest.

    1. Tokens attend to [CLS] in lower layers: mean ``cls`` share of lower layers > that of upper layers.
    2. Tokens attend to [SEP] in upper layers: mean ``sep`` share of upper layers > that of lower layers
       (not applicable when the inputs hold no [SEP]-like token).
    3. Previous/next-token heads exist in low layers: some lower-layer head has previous or next share
       >= ``SHARE_THRESHOLD``.
    """
    n = len(layers["cls"])
    half = max(1, n // 2)
    lower, upper = slice(0, half), slice(half, n)

    def mean(values: F64, part: slice) -> float:
        chunk = values[part]
        return float(chunk.mean()) if chunk.size else float("nan")

    cls_lo, cls_hi = mean(layers["cls"], lower), mean(layers["cls"], upper)
    sep_lo, sep_hi = mean(layers["sep"], lower), mean(layers["sep"], upper)
    claims: list[dict[str, Any]] = []
    comparable = n >= 2
    claims.append(
        {
            "claim": "tokens attend to [CLS] (the first token) in lower layers",
            "holds": bool(cls_lo > cls_hi) if comparable else None,
            "lower": cls_lo,
            "upper": cls_hi,
            "evidence": f"mean share to the first token: layers 0-{half - 1} {cls_lo:.3f}, "
            f"layers {half}-{n - 1} {cls_hi:.3f}"
            if comparable
            else "one layer: nothing to compare",
        }
    )
    sep_ok = comparable and has_sep
    claims.append(
        {
            "claim": "tokens attend to [SEP] in upper layers",
            "holds": bool(sep_hi > sep_lo) if sep_ok else None,
            "lower": sep_lo,
            "upper": sep_hi,
            "evidence": (
                f"mean share to [SEP]-like tokens: layers 0-{half - 1} {sep_lo:.3f}, layers {half}-{n - 1} {sep_hi:.3f}"
                if sep_ok
                else "not applicable: the inputs hold no [SEP]-like special token"
                if not has_sep
                else "one layer: nothing to compare"
            ),
        }
    )
    low_prev = heads["previous"][lower]
    low_next = heads["next"][lower]
    which = "previous" if low_prev.max() >= low_next.max() else "next"
    values = low_prev if which == "previous" else low_next
    layer, head = np.unravel_index(int(values.argmax()), values.shape)
    best = float(values.max())
    claims.append(
        {
            "claim": "previous/next-token heads exist in low layers",
            "holds": bool(best >= SHARE_THRESHOLD),
            "best": {"layer": int(layer), "head": int(head), "kind": which, "score": best},
            "evidence": f"strongest {which}-token head in layers 0-{half - 1}: <{layer},{head}> with share "
            f"{best:.3f} (a role needs >= {SHARE_THRESHOLD})",
        }
    )
    return claims
