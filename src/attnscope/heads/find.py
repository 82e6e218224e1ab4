"""Rank heads by how well their attention matches a pattern, scored as TransformerLens's ``detect_head``.

Score of one head on one sequence (TransformerLens's error measure ``"mul"``, the default there):
``(attention * pattern).sum() / attention.sum()`` over the [Q, K] matrix, after zeroing the first key
column if ``exclude_bos`` and the diagonal if ``exclude_current_token`` (both off by default, as there).
Over many sequences the score is the mean of the per-sequence scores, as ``detect_head`` does for a list.

Named patterns (1 = "the head should attend here"): ``previous`` (key i-1), ``next`` (key i+1),
``self`` (key i), ``first`` (key 0), ``duplicate`` (earlier keys holding the same token as the query)
and ``induction`` (the key right after an earlier occurrence of the query's token). Special tokens
never count as duplicates of each other. For ``duplicate`` and ``induction`` the sums run only over
the query rows that have a target (the tokens that occurred before), which makes the score Olsson et
al.'s (2022) prefix-matching score: the mean attention from those tokens to the token after their
earlier occurrence. (TransformerLens divides by every row's attention instead, which caps the score
of a perfect induction head near 0.5 on a sequence repeated once.) Sequences without such rows are
skipped. A user pattern is a [Q, K] matrix (.npy or .csv); a sequence shorter than it uses its
top-left block, and a longer one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.heads.exact import from_units, to_units, zeros
from attnscope.traces import Trace

NAMED_PATTERNS = ("previous", "next", "self", "first", "duplicate", "induction")
TARGETED = ("duplicate", "induction")
SCHEMA_VERSION = 1

F64 = NDArray[np.float64]


def check_pattern_name(name: str) -> str:
    """``name`` if it is a named pattern, else one clear error listing them."""
    if name not in NAMED_PATTERNS:
        raise InputError(
            f"unknown pattern {name!r}; choose one of {', '.join(NAMED_PATTERNS)} or give a .npy/.csv file"
        )
    return name


def named_pattern(name: str, tokens: tuple[str, ...], special: NDArray[np.bool_] | None = None) -> F64:
    """The [T, T] 0/1 pattern ``name`` for a token sequence (token identity by its string)."""
    check_pattern_name(name)
    n = len(tokens)
    if name == "previous":
        return np.eye(n, k=-1)
    if name == "next":
        return np.eye(n, k=1)
    if name == "self":
        return np.eye(n)
    if name == "first":
        out = np.zeros((n, n))
        out[:, 0] = 1.0
        return out
    if name in TARGETED:
        ids = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
        codes = np.array([ids[t] for t in tokens])
        same = (codes[:, None] == codes[None, :]) & np.tri(n, k=-1, dtype=bool)  # earlier key, same token
        if special is not None:
            same &= ~special[:, None] & ~special[None, :]
        if name == "duplicate":
            return np.asarray(same, dtype=np.float64)
        out = np.zeros((n, n))
        out[:, 1:] = same[:, :-1]  # the key after the earlier occurrence
        return np.tril(out)
    raise AssertionError(name)


def load_pattern(path: str | Path) -> F64:
    """A user's [Q, K] pattern from a .npy or .csv file, checked: 2-D, finite, non-negative, not all zero."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"pattern file {p} not found")
    try:
        if p.suffix.lower() == ".npy":
            matrix = np.load(p, allow_pickle=False)
        elif p.suffix.lower() == ".csv":
            matrix = np.loadtxt(p, delimiter=",", ndmin=2)
        else:
            raise InputError(f"pattern file {p} must be .npy or .csv")
    except ValueError as err:
        raise InputError(f"pattern file {p} is not a numeric matrix: {err}") from None
    return check_pattern(np.asarray(matrix, dtype=np.float64), str(p))


def check_pattern(matrix: F64, what: str = "pattern") -> F64:
    """Validate a user pattern: a 2-D [Q, K] matrix of finite, non-negative numbers, not all zero."""
    if matrix.ndim != 2 or min(matrix.shape) < 1:
        raise InputError(f"{what} must be a 2-D [query, key] matrix; got shape {tuple(matrix.shape)}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise InputError(f"{what} must hold finite, non-negative numbers (1 where attention is expected)")
    if not matrix.any():
        raise InputError(f"{what} is all zeros: mark with 1 the query-key cells the head should attend to")
    return matrix


def mul_scores(
    attention: NDArray[np.floating],
    pattern: F64,
    *,
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    targeted_rows: bool = False,
) -> F64 | None:
    """Per-head "mul" score [L, H] of attention [L, H, Q, K] against ``pattern`` [Q, K] (None: no row)."""
    att = np.array(attention, dtype=np.float64)
    if att.shape[-2:] != pattern.shape:
        raise InputError(f"pattern of shape {pattern.shape} does not match attention of shape {att.shape[-2:]}")
    if exclude_bos:
        att[..., :, 0] = 0.0
    if exclude_current_token:
        q = min(att.shape[-2:])
        att[..., np.arange(q), np.arange(q)] = 0.0
    if targeted_rows:
        rows = pattern.sum(-1) > 0
        if not rows.any():
            return None
        att, pattern = att[..., rows, :], pattern[rows]
    total = att.sum((-2, -1))
    return np.asarray(np.divide((att * pattern).sum((-2, -1)), total, out=np.zeros(total.shape), where=total > 0))


@dataclass
class PatternScores:
    """Mergeable sums of per-sequence pattern scores per head (mean of per-sequence scores)."""

    num_layers: int
    num_heads: int
    stack: str
    pattern: str
    matrix: F64 | None = None
    exclude_bos: bool = False
    exclude_current_token: bool = False
    sums: NDArray[np.int64] = field(default_factory=lambda: zeros(0))
    count: int = 0
    sequences: int = 0
    skipped_long: int = 0

    def __post_init__(self) -> None:
        if self.matrix is None and self.pattern not in NAMED_PATTERNS:
            check_pattern_name(self.pattern)
        if self.sums.shape != (self.num_layers, self.num_heads):
            self.sums = zeros(self.num_layers, self.num_heads)

    def update(self, trace: Trace, index: int | None = None) -> None:
        """Score one traced sequence and add it."""
        if self.stack not in trace.attention:
            raise InputError(f"this trace has no {self.stack} attention (its stacks: {', '.join(trace.stacks)})")
        att = trace.attention[self.stack]
        q_tokens, _ = trace.sides(self.stack)
        self.sequences += 1
        if self.matrix is not None:
            q, k = att.shape[-2:]
            if self.matrix.shape[0] < q or self.matrix.shape[1] < k:
                raise InputError(
                    f"the pattern is {self.matrix.shape[0]}x{self.matrix.shape[1]} but a sequence needs {q}x{k}: "
                    "give a pattern at least as large as the longest sequence (or shorter sentences)"
                )
            pattern = self.matrix[:q, :k]
        else:
            pattern = named_pattern(self.pattern, q_tokens.raw, np.asarray(q_tokens.special, dtype=bool))
        scores = mul_scores(
            att,
            pattern,
            exclude_bos=self.exclude_bos,
            exclude_current_token=self.exclude_current_token,
            targeted_rows=self.pattern in TARGETED,
        )
        if scores is not None:
            self.sums += to_units(scores)
            self.count += 1

    def merge(self, other: PatternScores) -> PatternScores:
        """Add another partial state (same model, stack and pattern) into this one (returns self)."""
        if (other.num_layers, other.num_heads, other.stack, other.pattern) != (
            self.num_layers,
            self.num_heads,
            self.stack,
            self.pattern,
        ):
            raise InputError("cannot merge pattern scores of different models, stacks or patterns")
        self.sums += other.sums
        self.count += other.count
        self.sequences += other.sequences
        self.skipped_long += other.skipped_long
        return self

    def finalize(self) -> FindResult:
        """Mean score per head, ranked best first."""
        if self.count == 0:
            what = "no sequence had a token occurring twice" if self.pattern in TARGETED else "no sequence was scored"
            raise InputError(f"cannot score pattern {self.pattern!r}: {what}")
        scores = from_units(self.sums) / self.count
        return FindResult(
            method="pattern",
            query={
                "pattern": self.pattern,
                "stack": self.stack,
                "error_measure": "mul",
                "exclude_bos": self.exclude_bos,
                "exclude_current_token": self.exclude_current_token,
                "rows": "query rows with a target (prefix matching)" if self.pattern in TARGETED else "all",
                "sequences_scored": self.count,
                "sequences": self.sequences,
                "skipped_too_long": self.skipped_long,
            },
            scores=scores,
        )


@dataclass
class FindResult:
    """Heads ranked by a question: ``scores`` [L, H] and optional per-head extras (ratio, interval)."""

    method: str
    query: dict[str, Any]
    scores: F64
    extras: dict[str, F64] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def ranking(self) -> list[dict[str, Any]]:
        """Every head as ``{"layer", "head", "score", ...}``, best first (ties: lower layer, then head)."""
        n_layers, n_heads = self.scores.shape
        order = sorted(
            ((layer, head) for layer in range(n_layers) for head in range(n_heads)),
            key=lambda lh: (-_finite(self.scores[lh]), lh),
        )
        out = []
        for layer, head in order:
            row: dict[str, Any] = {"layer": layer, "head": head, "score": _round(self.scores[layer, head])}
            for name, values in self.extras.items():
                v = values[layer, head]
                if name == "example":
                    row[name] = int(v)  # index into ``examples``: the one where this head attends most
                else:
                    row[name] = [_round(x) for x in v] if np.ndim(v) else _round(v)
            out.append(row)
        return out

    def to_json(self) -> dict[str, Any]:
        """report.json's content: ``schema_version``, ``method``, ``query``, ``ranking`` (best first)."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": "find",
            "method": self.method,
            "query": self.query,
            "ranking": self.ranking(),
        }
        if self.examples:
            out["examples"] = self.examples
        return out


def _finite(x: Any) -> float:
    v = float(x)
    return v if np.isfinite(v) else -np.inf


def _round(x: Any) -> float | None:
    v = float(x)
    return round(v, 6) if np.isfinite(v) else None
