"""Which heads carry a signal: logistic-regression probes on per-head attention features of traces.

The book's general recipe, for any labelled data: label token pairs (``fit_pair_probe``) or single tokens
(``fit_token_probe``) inside traces, describe each example by a few attention numbers per head, then
fit scikit-learn's ``LogisticRegression``

- on each head alone, cross-validated: ``per_head_accuracy`` [layers, heads] says which heads know;
- on all heads together: its cross-validated ``accuracy`` and, refit on every example, its ``weights``.

Features are standardised (zero mean, unit variance over the examples) before fitting, so a weight is the
change in log-odds per standard deviation of that attention number and weights compare across heads.

Pair features, for a pair (i, j) of token indices in one trace and one attention stack:
``att_ij`` = attention from token i (query) to token j (key), ``att_ji`` = the reverse (self-attention
stacks only; ``cross`` has just ``att_ij``, from target token i to source token j).

Token features, for token i (the query row i and key column i of each head):
``to_special`` (share of i's attention on special tokens such as [CLS]/[SEP]), ``to_prev``
(on token i-1), ``to_self``, ``to_next`` (on token i+1), ``entropy`` (of i's attention row, in nats)
and ``received`` (attention i receives, summed over all queries, divided by the number of queries).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import Trace

PAIR_FEATURES = ("att_ij", "att_ji")
TOKEN_FEATURES = ("to_special", "to_prev", "to_self", "to_next", "entropy", "received")


@dataclass(frozen=True, eq=False)
class HeadProbeResult:
    """What a per-head probe found: accuracy of each head alone, and the all-heads classifier.

    ``per_head_accuracy`` [L, H]: mean cross-validated accuracy of a classifier that sees only that head's
    features. ``accuracy``: cross-validated accuracy of the classifier over all heads' features.
    ``weights``: that classifier refit on every example, on standardised features: [L, H, F] for two
    classes (positive = log-odds of ``classes[1]``), [C, L, H, F] for C > 2 classes (one row per class).
    ``majority_baseline``: accuracy of always answering the most frequent label.
    """

    kind: str
    features: tuple[str, ...]
    classes: tuple[Hashable, ...]
    per_head_accuracy: NDArray[np.float64]
    accuracy: float
    weights: NDArray[np.float64]
    majority_baseline: float
    n_examples: int
    folds: int
    stack: str
    model: str
    class_counts: dict[str, int] = field(default_factory=dict)

    def top_heads(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The k heads with the best single-head accuracy: (layer, head, accuracy), best first, 0-based."""
        flat = self.per_head_accuracy.ravel()
        order = sorted(range(flat.size), key=lambda n: (-flat[n], n))[: max(k, 0)]
        width = self.per_head_accuracy.shape[1]
        return [(n // width, n % width, float(flat[n])) for n in order]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (accuracies in [0, 1]; layers and heads 0-based)."""
        return {
            "kind": self.kind,
            "model": self.model,
            "stack": self.stack,
            "features": list(self.features),
            "classes": [str(c) for c in self.classes],
            "class_counts": dict(self.class_counts),
            "n_examples": self.n_examples,
            "folds": self.folds,
            "accuracy": self.accuracy,
            "majority_baseline": self.majority_baseline,
            "per_head_accuracy": np.round(self.per_head_accuracy, 6).tolist(),
            "weights": np.round(self.weights, 6).tolist(),
            "top_heads": [{"layer": li, "head": h, "accuracy": a} for li, h, a in self.top_heads(10)],
        }

    def summary(self, k: int = 5) -> str:
        """A few readable lines: overall accuracy against the majority baseline, then the best heads."""
        lines = [
            f"{self.kind} probe on {self.model} ({self.stack}): {self.n_examples} examples, "
            f"{len(self.classes)} classes, {self.folds}-fold cross-validation",
            f"all heads: accuracy {self.accuracy:.3f} (majority baseline {self.majority_baseline:.3f})",
        ]
        lines += [f"  head {li}-{h}: accuracy {a:.3f}" for li, h, a in self.top_heads(k)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def pair_features(trace: Trace, i: int, j: int, stack: str | None = None) -> NDArray[np.float32]:
    """Per-head features of the token pair (i, j): [L, H, F] with F as in ``PAIR_FEATURES`` (1 for cross)."""
    att, name = _stack(trace, stack)
    q, k = att.shape[2], att.shape[3]
    if not (0 <= i < q and 0 <= j < k):
        raise InputError(f"token pair ({i}, {j}) is outside the {name} attention of {q} x {k} tokens")
    if name == "cross":
        return np.ascontiguousarray(att[:, :, i, j, None])
    return np.stack([att[:, :, i, j], att[:, :, j, i]], axis=-1)


def token_features(trace: Trace, i: int, stack: str | None = None) -> NDArray[np.float32]:
    """Per-head features of token i (as query and as key): [L, H, 6] in the order of ``TOKEN_FEATURES``."""
    att, name = _stack(trace, stack)
    q, k = att.shape[2], att.shape[3]
    if name == "cross":
        raise InputError("token features need a self-attention stack (encoder or decoder), not cross")
    if not 0 <= i < q:
        raise InputError(f"token {i} is outside the {name} attention of {q} tokens")
    row = att[:, :, i, :].astype(np.float64)  # [L, H, K]
    special = trace.sides(name)[1].special
    zero = np.zeros(row.shape[:2])
    to_special = row[:, :, special].sum(axis=-1)
    to_prev = row[:, :, i - 1] if i > 0 else zero
    to_next = row[:, :, i + 1] if i + 1 < k else zero
    entropy = -(row * np.log(np.clip(row, 1e-12, None))).sum(axis=-1)
    received = att[:, :, :, i].astype(np.float64).sum(axis=-1) / q
    feats = np.stack([to_special, to_prev, row[:, :, i], to_next, entropy, received], axis=-1)
    return feats.astype(np.float32)


def fit_pair_probe(
    traces: Sequence[Trace],
    pairs: Sequence[tuple[int, int, int, Hashable]],
    *,
    stack: str | None = None,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,  # noqa: N803  (scikit-learn's name)
) -> HeadProbeResult:
    """Fit probes on labelled token pairs ``(trace_index, i, j, label)``: which heads tell the labels apart?"""
    traces = list(traces)
    rows, labels = [], []
    for n, (t, i, j, label) in enumerate(pairs):
        trace = _trace_at(traces, t, n)
        try:
            rows.append(pair_features(trace, int(i), int(j), stack))
        except InputError as err:
            raise InputError(f"pair {n} (trace {t}): {err}") from None
        labels.append(label)
    name = _stack(traces[0], stack)[1] if traces else "encoder"
    feats = PAIR_FEATURES[:1] if name == "cross" else PAIR_FEATURES
    return _fit("pair", feats, rows, labels, traces, name, folds, seed, C)


def fit_token_probe(
    traces: Sequence[Trace],
    tokens: Sequence[tuple[int, int, Hashable]],
    *,
    stack: str | None = None,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,  # noqa: N803
) -> HeadProbeResult:
    """Fit probes on labelled tokens ``(trace_index, i, label)`` with the ``TOKEN_FEATURES`` of each head."""
    traces = list(traces)
    rows, labels = [], []
    for n, (t, i, label) in enumerate(tokens):
        trace = _trace_at(traces, t, n)
        try:
            rows.append(token_features(trace, int(i), stack))
        except InputError as err:
            raise InputError(f"token {n} (trace {t}): {err}") from None
        labels.append(label)
    name = _stack(traces[0], stack)[1] if traces else "encoder"
    return _fit("token", TOKEN_FEATURES, rows, labels, traces, name, folds, seed, C)


# -- internals -----------------------------------------------------------------------------------


def _stack(trace: Trace, stack: str | None) -> tuple[NDArray[np.float32], str]:
    name = stack or trace.main_stack
    if name not in trace.attention:
        raise InputError(f"the trace has no {name!r} attention; it has {', '.join(trace.stacks)}")
    return trace.attention[name], name


def _trace_at(traces: list[Trace], t: int, n: int) -> Trace:
    if not isinstance(t, (int, np.integer)) or not 0 <= int(t) < len(traces):
        raise InputError(f"example {n} names trace {t!r}, but there are {len(traces)} traces (0-based index)")
    return traces[int(t)]


def _fit(
    kind: str,
    feature_names: tuple[str, ...],
    rows: list[NDArray[np.float32]],
    labels: list[Hashable],
    traces: list[Trace],
    stack: str,
    folds: int,
    seed: int,
    c: float,
) -> HeadProbeResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # comes with scikit-learn

    if not rows:
        raise InputError(f"no labelled examples given to the {kind} probe")
    shapes = {r.shape for r in rows}
    if len(shapes) != 1:
        raise InputError(f"the traces disagree in layers x heads x features: {sorted(shapes)}; use one model")
    x = np.stack(rows).astype(np.float64)  # [N, L, H, F]
    n, layers, heads, f = x.shape
    classes, y = np.unique(np.asarray([str(v) for v in labels]), return_inverse=True)
    originals = {str(v): v for v in labels}
    counts = np.bincount(y)
    if len(classes) < 2:
        raise InputError(f"the {kind} probe needs at least two different labels; all {n} examples are {classes[0]!r}")
    k = min(folds, int(counts.min()))
    if k < 2:
        rare = classes[int(counts.argmin())]
        raise InputError(f"label {rare!r} has only {int(counts.min())} example; cross-validation needs 2 per label")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)

    def model() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))

    per_head = np.zeros((layers, heads))
    with threadpool_limits(1):  # many tiny fits: one BLAS thread is faster and repeatable
        for li in range(layers):
            for h in range(heads):
                per_head[li, h] = cross_val_score(model(), x[:, li, h, :], y, cv=cv).mean()
        flat = x.reshape(n, -1)
        accuracy = float(cross_val_score(model(), flat, y, cv=cv).mean())
        full = model().fit(flat, y)
    coef = full[-1].coef_  # [1, L*H*F] for two classes, [C, L*H*F] otherwise
    weights = coef.reshape(layers, heads, f) if len(classes) == 2 else coef.reshape(len(classes), layers, heads, f)
    return HeadProbeResult(
        kind=kind,
        features=feature_names,
        classes=tuple(originals[c] for c in classes),
        per_head_accuracy=per_head,
        accuracy=accuracy,
        weights=np.asarray(weights, dtype=np.float64),
        majority_baseline=float(counts.max() / n),
        n_examples=n,
        folds=k,
        stack=stack,
        model=traces[0].model.name,
        class_counts={str(c): int(m) for c, m in zip(classes, counts, strict=True)},
    )
