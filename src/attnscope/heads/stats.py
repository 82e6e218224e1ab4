"""Per-head statistics over a corpus, as a mergeable partial state (sums and counts, no torch objects).

Sums are exact integers (:mod:`attnscope.heads.exact`), so merging in any order gives the same bits.

For every head of one self-attention stack, averaged over query rows (see :mod:`attnscope.heads.rows`
for which rows and key kinds), each row weighing the same whatever sentence it is in:

- ``first``, ``sep``, ``punct``: the share of the row's attention on keys of that kind;
- ``offsets``: the share on the key at each fixed offset d in -K..K (0 = itself, -1 = the previous
  token, +1 = the next one); the best offset is the d with the largest share;
- ``entropy`` (nats; Clark et al.'s broad heads) and ``entropy_norm`` (entropy / log of the number of
  keys the row could attend to; rows with one key are left out of it), ``max_weight`` (mean largest
  weight, Voita et al.'s confidence) and ``distance`` (mean |query - key| in tokens, weighted by attention).

Kovaleva et al. (2019) sorted attention maps by eye (and a classifier trained on those labels) into five
types. This is an operationalisation of the types by numbers, not their classifier. For one sentence
and head, take the sentence means V = share on special keys (first + sep: the vertical stripes), D =
share on the band |query - key| <= 1 and, for two-segment inputs only, B = share on keys of the
query's own segment outside V and D; turn each into its excess over chance, x' = (x - x0) / (1 - x0),
where x0 is what uniform attention over the keys a row can see would give (so a uniform head scores 0
and a head entirely on those keys scores 1). Then: ``vertical+diagonal`` if V' >= 0.3 and D' >= 0.3;
else ``vertical`` if V' >= 0.5; else ``diagonal`` if D' >= 0.5; else ``block`` if B' >= 0.5; else
``heterogeneous``. Each head reports the share of sentences of each type.

The state also keeps, per head and behaviour (first, sep, punct, broad, each offset), the one sentence
where that behaviour is strongest (its sentence mean, among sentences with at least 3 rows): a top-1
record that merges by taking the larger score (the lower corpus index on a tie).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.heads.exact import from_units, to_units, zeros
from attnscope.heads.rows import KeyKinds, key_kinds
from attnscope.traces import Trace

PATTERNS = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
ROW_STATS = ("first", "sep", "punct", "entropy", "max_weight", "distance")
MIN_EXAMPLE_ROWS = 3
SINGLE, BOTH, BLOCK = 0.5, 0.3, 0.5  # Kovaleva-type thresholds on shares above chance (module docstring)
_TINY = 1e-30

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def behaviours(max_offset: int) -> tuple[str, ...]:
    """Names of the behaviours whose strongest sentence is kept: first, sep, punct, broad, offsets."""
    return ("first", "sep", "punct", "broad", *(f"offset{d:+d}" for d in range(-max_offset, max_offset + 1)))


def _chance(mask: NDArray[np.bool_], avail: NDArray[np.bool_]) -> float:
    """Share a uniform head would put on ``mask``: mean over rows of |mask| / |keys available|."""
    return float((mask.sum(-1) / np.maximum(avail.sum(-1), 1)).mean())


def _excess(share: F64, chance: float) -> F64:
    """How far ``share`` is above chance, as a fraction of the room above it (0 = uniform, 1 = all)."""
    if chance >= 1.0:
        return np.zeros_like(share)
    return np.asarray((share - chance) / (1.0 - chance))


@dataclass
class HeadStats:
    """Mergeable sums of per-head attention statistics over one stack (see the module docstring)."""

    num_layers: int
    num_heads: int
    stack: str
    max_offset: int = 5
    rows: int = 0
    sentences: int = 0
    sums: dict[str, I64] = field(default_factory=dict)
    entropy_norm_sum: I64 = field(default_factory=lambda: zeros(0))
    entropy_norm_rows: int = 0
    offsets: I64 = field(default_factory=lambda: zeros(0))
    patterns: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sep_rows: int = 0
    best_score: F64 = field(default_factory=lambda: np.zeros(0))
    best_index: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    texts: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (self.num_layers, self.num_heads)
        if not self.sums:
            self.sums = {name: zeros(*shape) for name in ROW_STATS}
        if self.entropy_norm_sum.shape != shape:
            self.entropy_norm_sum = zeros(*shape)
        width = 2 * self.max_offset + 1
        if self.offsets.shape != (*shape, width):
            self.offsets = zeros(*shape, width)
        if self.patterns.shape != (*shape, len(PATTERNS)):
            self.patterns = np.zeros((*shape, len(PATTERNS)), dtype=np.int64)
        n_beh = len(behaviours(self.max_offset))
        if self.best_score.shape != (*shape, n_beh):
            self.best_score = np.full((*shape, n_beh), -np.inf)
            self.best_index = np.full((*shape, n_beh), -1, dtype=np.int64)

    # -- update ---------------------------------------------------------------------------------
    def update(self, trace: Trace, index: int | None = None) -> None:
        """Add one traced sentence; ``index`` is its position in the corpus (default: sentences so far)."""
        if self.stack not in trace.attention:
            raise InputError(f"this trace has no {self.stack} attention (its stacks: {', '.join(trace.stacks)})")
        texts = trace.target_tokens.texts if self.stack == "decoder" and trace.target_tokens else trace.tokens.texts
        self.update_attention(trace.attention[self.stack], key_kinds(trace, self.stack), index, texts)

    def update_attention(
        self,
        attention: NDArray[np.floating],
        kinds: KeyKinds,
        index: int | None = None,
        texts: tuple[str, ...] = (),
    ) -> None:
        """Add one sentence given as attention [L, H, T, T] and its row/key masks."""
        att = np.asarray(attention, dtype=np.float64)
        if att.ndim != 4 or att.shape[:2] != (self.num_layers, self.num_heads) or att.shape[2] != att.shape[3]:
            raise InputError(
                f"attention of shape {att.shape} does not fit {self.num_layers} layers x {self.num_heads} heads "
                "of square [T, T] self-attention"
            )
        index = self.sentences if index is None else int(index)
        self.sentences += 1
        row_pos = np.flatnonzero(kinds.rows)
        if row_pos.size == 0:
            return
        n, k = att.shape[-1], self.max_offset
        a = att[:, :, row_pos, :]  # [L, H, R, T]
        # Every per-row number in one array [L, H, R, F] (F = ROW_STATS then the 2K+1 offsets), so the sums
        # over rows, their conversion to units and the means are one operation each, not one per statistic.
        per_row = np.empty((*a.shape[:3], len(ROW_STATS) + 2 * k + 1))
        key_kind = np.stack([kinds.first, kinds.sep, kinds.punct], axis=-1).astype(np.float64)  # [T, 3]
        per_row[..., 0:3] = a @ key_kind  # first, sep, punct
        per_row[..., 3] = -np.einsum("lhrt,lhrt->lhr", a, np.log(np.maximum(a, _TINY)))  # entropy
        per_row[..., 4] = a.max(-1)  # max_weight
        distance = np.abs(np.arange(n)[None, :] - row_pos[:, None]).astype(np.float64)  # [R, T]
        per_row[..., 5] = np.einsum("lhrt,rt->lhr", a, distance)  # distance
        per_row[..., 6:] = self._offset_shares(a, row_pos)  # [L, H, R, 2K+1]
        available = row_pos + 1 if self.stack == "decoder" else np.full(row_pos.size, n)
        norm_ok = available >= 2
        ent_norm = per_row[..., 3][..., norm_ok] / np.log(available[norm_ok])

        total = per_row.sum(2)  # [L, H, F]
        units = to_units(total)
        for i, name in enumerate(ROW_STATS):
            self.sums[name] += units[..., i]
        self.offsets += units[..., len(ROW_STATS) :]
        self.entropy_norm_sum += to_units(ent_norm.sum(-1))
        self.entropy_norm_rows += int(norm_ok.sum())
        self.rows += row_pos.size
        sep_pos = np.flatnonzero(kinds.sep)
        if sep_pos.size:  # rows that could attend to a [SEP]-like key (in a decoder: one before them)
            self.sep_rows += int((row_pos >= sep_pos[0]).sum()) if self.stack == "decoder" else row_pos.size

        mean = total / row_pos.size  # [L, H, F]
        off_mean = mean[..., len(ROW_STATS) :]
        self.patterns[..., :] += self._pattern_onehot(a, kinds, row_pos, mean[..., 0] + mean[..., 1], off_mean)
        if row_pos.size >= MIN_EXAMPLE_ROWS:
            broad = ent_norm.mean(-1) if ent_norm.shape[-1] else np.full(mean.shape[:2], -np.inf)
            self._offer(np.concatenate([mean[..., 0:3], broad[..., None], off_mean], axis=-1), index, texts)

    def _offset_shares(self, a: F64, row_pos: NDArray[np.intp]) -> F64:
        """Attention at each offset -K..K from each row's own position [L, H, R, 2K+1]; 0 beyond the ends."""
        k = self.max_offset
        padded = np.zeros((*a.shape[:3], a.shape[-1] + 2 * k))
        padded[..., k : k + a.shape[-1]] = a
        window = row_pos[:, None] + np.arange(2 * k + 1)[None, :]  # padded index of key row_pos + d, d = -K..K
        return np.asarray(padded[:, :, np.arange(row_pos.size)[:, None], window])

    def _pattern_onehot(
        self, a: F64, kinds: KeyKinds, row_pos: NDArray[np.intp], special: F64, off_mean: F64
    ) -> NDArray[np.int64]:
        n = a.shape[-1]
        keys = np.arange(n)[None, :]
        avail = keys <= row_pos[:, None] if self.stack == "decoder" else np.ones((row_pos.size, n), dtype=bool)
        vertical = (kinds.first | kinds.sep)[None, :] & avail
        band = (np.abs(keys - row_pos[:, None]) <= 1) & avail
        k = self.max_offset
        v = _excess(special, _chance(vertical, avail))
        d = _excess(off_mean[..., k - 1 : k + 2].sum(-1), _chance(band, avail))
        two_segments = len(np.unique(kinds.segment)) > 1
        b = np.zeros_like(v)
        if two_segments:
            own = (kinds.segment[row_pos][:, None] == kinds.segment[None, :]) & ~vertical & ~band & avail
            b = _excess((a * own).sum(-1).mean(-1), _chance(own, avail))
        kind = np.full(v.shape, PATTERNS.index("heterogeneous"))
        kind[b >= BLOCK] = PATTERNS.index("block")
        kind[d >= SINGLE] = PATTERNS.index("diagonal")
        kind[v >= SINGLE] = PATTERNS.index("vertical")
        kind[(v >= BOTH) & (d >= BOTH)] = PATTERNS.index("vertical+diagonal")
        return np.asarray(np.eye(len(PATTERNS), dtype=np.int64)[kind])

    def _offer(self, strength: F64, index: int, texts: tuple[str, ...]) -> None:
        better = (strength > self.best_score) | ((strength == self.best_score) & (index < self.best_index))
        if better.any():
            self.best_score = np.where(better, strength, self.best_score)
            self.best_index = np.where(better, index, self.best_index)
            self.texts[index] = tuple(texts)
            self._prune()

    def _prune(self) -> None:
        keep = set(np.unique(self.best_index).tolist())
        self.texts = {i: t for i, t in self.texts.items() if i in keep}

    # -- merge ----------------------------------------------------------------------------------
    def merge(self, other: HeadStats) -> HeadStats:
        """Add another partial state of the same model and stack into this one (returns self)."""
        if (other.num_layers, other.num_heads, other.stack, other.max_offset) != (
            self.num_layers,
            self.num_heads,
            self.stack,
            self.max_offset,
        ):
            raise InputError("cannot merge head statistics of different models, stacks or offset ranges")
        for name in ROW_STATS:
            self.sums[name] += other.sums[name]
        self.entropy_norm_sum += other.entropy_norm_sum
        self.entropy_norm_rows += other.entropy_norm_rows
        self.offsets += other.offsets
        self.patterns += other.patterns
        self.rows += other.rows
        self.sentences += other.sentences
        self.sep_rows += other.sep_rows
        better = (other.best_score > self.best_score) | (
            (other.best_score == self.best_score) & (other.best_index >= 0) & (other.best_index < self.best_index)
        )
        self.best_score = np.where(better, other.best_score, self.best_score)
        self.best_index = np.where(better, other.best_index, self.best_index)
        self.texts = {**self.texts, **other.texts}
        self._prune()
        return self

    # -- means ----------------------------------------------------------------------------------
    def means(self) -> dict[str, F64]:
        """Per-head means [L, H] of every statistic (NaN where no row was seen)."""
        if self.rows == 0:
            raise InputError("no query rows were seen: the corpus is empty or holds only special tokens")
        out = {name: from_units(self.sums[name]) / self.rows for name in ROW_STATS}
        k = self.max_offset
        offsets = from_units(self.offsets) / self.rows
        out["self"], out["previous"], out["next"] = offsets[..., k], offsets[..., k - 1], offsets[..., k + 1]
        out["entropy_norm"] = (
            from_units(self.entropy_norm_sum) / self.entropy_norm_rows
            if self.entropy_norm_rows
            else np.full(out["first"].shape, np.nan)
        )
        out["other"] = 1.0 - out["first"] - out["sep"] - out["punct"]
        best = offsets.argmax(-1)
        out["best_offset"] = (best - k).astype(np.float64)
        out["best_offset_share"] = np.take_along_axis(offsets, best[..., None], -1)[..., 0]
        return out

    def offset_shares(self) -> F64:
        """Mean share at each offset -K..K, [L, H, 2K+1]."""
        return from_units(self.offsets) / max(self.rows, 1)

    def pattern_shares(self) -> F64:
        """Share of sentences of each Kovaleva type, [L, H, 5] in the order of ``PATTERNS``."""
        total = self.patterns.sum(-1, keepdims=True)
        return np.asarray(np.divide(self.patterns, total, out=np.zeros(self.patterns.shape), where=total > 0))
