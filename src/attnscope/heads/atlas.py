"""The head atlas: the partial state of a corpus pass (stats + distances) and its finalised result.

``AtlasState`` is what a corpus driver keeps: ``update(trace, index)`` per sentence, ``merge`` of two
partial states, ``finalize()`` into a :class:`HeadAtlas`, whose ``to_json()`` is report.json's
content (schema below, versioned by ``SCHEMA_VERSION``). Layers and heads are 0-based everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.heads.roles import BROAD_THRESHOLD, SHARE_THRESHOLD, Role, assign_role, book_claims
from attnscope.heads.rows import resolve_stack
from attnscope.heads.similarity import HeadDistances, classical_mds, cluster_heads
from attnscope.heads.stats import PATTERNS, HeadStats, behaviours
from attnscope.traces import ModelInfo, Trace

SCHEMA_VERSION = 1
HEAD_STATS = (
    "first", "sep", "punct", "self", "previous", "next", "entropy", "entropy_norm", "max_weight", "distance",
    "best_offset", "best_offset_share",
)  # fmt: skip
LAYER_KINDS = {"cls": "first", "sep": "sep", "punct": "punct", "other": "other"}

F64 = NDArray[np.float64]


@dataclass
class AtlasState:
    """Mergeable partial state of the head atlas over one self-attention stack."""

    stats: HeadStats
    distances: HeadDistances
    model: str = "unknown"
    skipped_long: int = 0  # traces cut to the model's length, left out (a corpus driver counts them here)

    @classmethod
    def for_model(
        cls, info: ModelInfo, stack: str | None = None, *, max_offset: int = 5, js_sentences: int = 1000
    ) -> AtlasState:
        """An empty state for a model (``stack``: encoder or decoder; default: the model's first)."""
        chosen = resolve_stack(info, stack)
        return cls(
            stats=HeadStats(info.num_layers, info.num_heads, chosen, max_offset=max_offset),
            distances=HeadDistances(info.num_layers, info.num_heads, chosen, max_sentences=js_sentences),
            model=info.name,
        )

    def update(self, trace: Trace, index: int | None = None) -> None:
        """Add one traced sentence; ``index`` is its position in the corpus (default: sentences so far)."""
        index = self.stats.sentences if index is None else index
        self.stats.update(trace, index)
        self.distances.update(trace, index)

    def merge(self, other: AtlasState) -> AtlasState:
        """Add another partial state into this one (returns self)."""
        self.stats.merge(other.stats)
        self.distances.merge(other.distances)
        self.skipped_long += other.skipped_long
        return self

    def finalize(self, n_clusters: int | None = None) -> HeadAtlas:
        """Means, roles, per-layer shares, pattern shares, examples, distances, map and clusters."""
        stats = self.stats
        means = stats.means()
        n_layers, n_heads = stats.num_layers, stats.num_heads
        roles = [
            [assign_role({k: float(v[layer, head]) for k, v in means.items()}) for head in range(n_heads)]
            for layer in range(n_layers)
        ]
        compare = self.distances.max_sentences > 0  # js_sentences=0 turns the comparison off
        dist = self.distances.distances() if compare else None
        layers = {name: means[key].mean(axis=1) for name, key in LAYER_KINDS.items()}
        return HeadAtlas(
            model=self.model,
            stack=stats.stack,
            sentences=stats.sentences,
            rows=stats.rows,
            means=means,
            patterns=stats.pattern_shares(),
            roles=roles,
            examples=_examples(stats, roles),
            layers=layers,
            distances=dist,
            embedding=classical_mds(dist) if dist is not None else None,
            clusters=cluster_heads(dist, n_clusters) if dist is not None else None,
            claims=book_claims(layers, means, has_sep=stats.sep_rows > 0),
            distance_rows=self.distances.rows,
            skipped={"too_long": self.skipped_long} if self.skipped_long else {},
        )


def _examples(stats: HeadStats, roles: list[list[Role]]) -> list[list[dict[str, Any] | None]]:
    names = behaviours(stats.max_offset)
    out: list[list[dict[str, Any] | None]] = []
    for layer, row in enumerate(roles):
        out.append([])
        for head, role in enumerate(row):
            b = names.index(role.behaviour)
            index = int(stats.best_index[layer, head, b])
            if index < 0 or index not in stats.texts:
                out[-1].append(None)
                continue
            texts = stats.texts[index]
            example: dict[str, Any] = {
                "index": index,
                "text": texts[0] if texts else "",
                "behaviour": role.behaviour,
                "score": float(stats.best_score[layer, head, b]),
            }
            if len(texts) > 1:
                example["text_pair"] = texts[1]
            out[-1].append(example)
    return out


@dataclass
class HeadAtlas:
    """What every head of one stack does over a corpus: statistics, roles, examples, comparisons."""

    model: str
    stack: str
    sentences: int
    rows: int
    means: dict[str, F64]
    patterns: F64
    roles: list[list[Role]]
    examples: list[list[dict[str, Any] | None]]
    layers: dict[str, F64]
    distances: F64 | None
    embedding: F64 | None
    clusters: NDArray[np.int64] | None
    claims: list[dict[str, Any]] = field(default_factory=list)
    distance_rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.roles)

    @property
    def num_heads(self) -> int:
        return len(self.roles[0]) if self.roles else 0

    def role(self, layer: int, head: int) -> Role:
        """The role of head <layer, head>."""
        return self.roles[layer][head]

    def _similarity(self) -> dict[str, Any] | None:
        return None if self.distances is None else _similarity_json(self.distances, self.distance_rows)

    def to_json(self) -> dict[str, Any]:
        """report.json's content: ``schema_version``, ``heads`` (per layer, per head), ``layers``, ..."""
        n_heads = self.num_heads
        heads: list[list[dict[str, Any]]] = []
        for layer in range(self.num_layers):
            heads.append([])
            for head in range(n_heads):
                role = self.roles[layer][head]
                flat = layer * n_heads + head
                heads[-1].append(
                    {
                        "layer": layer,
                        "head": head,
                        "role": role.role,
                        "score": _num(role.score),
                        "stats": {k: _num(self.means[k][layer, head]) for k in HEAD_STATS},
                        "patterns": {p: _num(self.patterns[layer, head, i]) for i, p in enumerate(PATTERNS)},
                        "example": self.examples[layer][head],
                        "cluster": int(self.clusters[flat]) if self.clusters is not None else None,
                        "map": [_num(x) for x in self.embedding[flat]] if self.embedding is not None else None,
                    }
                )
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "heads",
            "model": self.model,
            "stack": self.stack,
            "sentences": self.sentences,
            "rows": self.rows,
            "skipped": self.skipped,
            "heads": heads,
            "layers": [
                {name: _num(values[layer]) for name, values in self.layers.items()} for layer in range(self.num_layers)
            ],
            "similarity": self._similarity(),
            "claims": self.claims,
            "thresholds": {"share": SHARE_THRESHOLD, "broad_entropy_norm": BROAD_THRESHOLD},
        }


def _similarity_json(distances: F64, rows: int) -> dict[str, Any]:
    return {
        "metric": "sqrt of the mean Jensen-Shannon divergence (bits) between heads' attention rows",
        "rows": rows,
        "order": "head index = layer * num_heads + head",
        "distances": [[_num(x) for x in row] for row in distances],
    }


def _num(value: Any) -> float | None:
    x = float(value)
    return round(x, 6) if math.isfinite(x) else None
