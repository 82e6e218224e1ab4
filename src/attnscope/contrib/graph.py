"""Attention rollout and attention flow (Abnar & Zuidema 2020) over a self-attention stack.

Both read the trace's attention only. Per layer l the graph uses Â_l = 0.5·(mean_h A_l + I), rows
renormalised: the residual connection as half of each token's own input. Rollout multiplies these matrices;
flow treats them as edge capacities of a layered graph and solves a maximum-flow problem per token pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnscope.contrib._common import keep, layer_index, pick_stack, residual_averaged
from attnscope.errors import AttnscopeError, InputError
from attnscope.traces import FloatArray, Trace

FLOW_MAX_TOKENS = 128
"""Longest sequence :func:`flow` accepts. It solves n² max-flow problems on L·n² edges each, so its time grows
about as n⁴: 2-3 s at 64 tokens (6 layers, 2-core CPU; benchmarks/results/faithfulness.md), so an estimated
0.5-1 minute at 128."""

FLOW_SCALE = 2**29
"""Capacities are rounded to multiples of 1/FLOW_SCALE for the integer (int32) max-flow solver."""

FLOW_TOLERANCE = 1e-6
"""Largest certified error :func:`flow` accepts before it refuses to return a value."""


def rollout(trace: Trace, stack: str | None = None, start_layer: int = 0) -> FloatArray:
    """Attention rollout: row l is Â_l·Â_(l-1)···Â_start, float32 [L, Q, K]; rows l < start_layer are identity.

    Entry [l, i, j] is how much of position i's representation after layer l traces back to input token j,
    with Â as in the module docstring (Abnar & Zuidema 2020, eq. 1). Each row sums to 1.
    """
    chosen = pick_stack(trace, stack, "rollout", self_only=True)
    layers = trace.attention[chosen].shape[0]
    if not 0 <= start_layer < layers:
        raise InputError(f"start_layer {start_layer} is out of range: the {chosen} stack has layers 0..{layers - 1}")
    mats = residual_averaged(trace.attention[chosen], np.float32)  # float32: rows stay within 1e-6 of 1
    out = np.empty(mats.shape, dtype=np.float32)
    current = np.eye(mats.shape[-1], dtype=np.float32)
    out[:start_layer] = current
    for layer in range(start_layer, layers):
        current = mats[layer] @ current
        out[layer] = current
    return keep(trace, "rollout", chosen, out, {"start_layer": start_layer})


def flow(trace: Trace, stack: str | None = None, layer: int = -1, *, normalize: bool = True) -> FloatArray:
    """Attention flow: the maximum flow from each input token j to each position i after ``layer``, [Q, K].

    The graph is the paper's: a node per (layer boundary, position), an edge from node (l+1, i) to (l, j)
    with capacity Â_l[i, j]; flow[i, j] is the max-flow value from (layer+1, i) to (0, j). With
    ``normalize`` (the paper's presentation) each row is divided by its sum. Exact: capacities are floored
    to multiples of 2^-29 and solved by an integer max-flow (Dinic, scipy), which gives a feasible flow of
    the true graph; the minimum cut it finds, priced at the true capacities, bounds the true value from
    above, so every value is certified to within that gap (checked ≤ 1e-6, an error otherwise).
    """
    chosen = pick_stack(trace, stack, "flow", self_only=True)
    last = layer_index(trace, chosen, layer, "layer")
    n = trace.attention[chosen].shape[-1]
    if n > FLOW_MAX_TOKENS:
        raise InputError(
            f"flow is limited to {FLOW_MAX_TOKENS} tokens (it solves n² max-flow problems on L·n² edges each) "
            f"and this {chosen} stack has {n}; use rollout(), which is instant, or trace a shorter text"
        )
    mats = residual_averaged(trace.attention[chosen][: last + 1])
    values = max_flow_all_pairs(mats)
    if normalize:
        values = values / values.sum(axis=-1, keepdims=True)
    return keep(trace, "flow", chosen, values, {"layer": last, "normalize": normalize})


def max_flow_all_pairs(mats: np.ndarray) -> np.ndarray:
    """Max-flow value from top node i to bottom node j of the layered graph of ``mats`` [L, n, n]: [n, n].

    ``mats[l][i, j]`` is the capacity from (l+1, i) to (l, j), each in [0, 1]. Values are exact to
    :data:`FLOW_TOLERANCE`, certified per pair: the integer max flow with capacities floored to multiples
    of 1/FLOW_SCALE is a flow of the true graph (a lower bound); the minimum cut it leaves (what the source
    still reaches in the residual graph), priced at the true capacities, is a cut of the true graph and so
    an upper bound. The midpoint is returned; an error if any gap exceeds twice the tolerance (the gap is
    about |min cut| / FLOW_SCALE, ~1e-7 at 64 tokens).
    """
    layers, n, _ = mats.shape
    if layers == 1:
        return np.asarray(mats[0], dtype=np.float64)
    try:
        import scipy.sparse.csgraph  # noqa: F401
    except ImportError:
        raise AttnscopeError("attention flow needs scipy: pip install 'attnscope[contrib]'") from None
    solver = _GroupSolver(mats)
    lower = np.zeros((n, n))
    upper = np.zeros((n, n))
    simple = np.minimum(1.0, mats[0].sum(axis=0))  # the cuts at the source (1) and at the sink (column sum)
    for sink in range(n):
        for start in range(0, n, _GROUP):
            sources = np.arange(start, min(start + _GROUP, n))
            lo, hi = solver.solve(sources, sink, certify_below=simple[sink] - FLOW_TOLERANCE)
            lower[sources, sink] = lo
            upper[sources, sink] = np.minimum(hi, simple[sink])
    gap = float(np.max(upper - lower))
    if gap > 2 * FLOW_TOLERANCE:
        raise AttnscopeError(
            f"attention flow could not be certified to {FLOW_TOLERANCE} (gap {gap:.2e}); please report this input"
        )
    return (lower + upper) / 2  # the true value lies in [lower, upper]: the midpoint is within gap / 2


_GROUP = 4
"""Problems solved per solver call: joined problems share Dinic's phases, so a few at a time is fastest."""


class _GroupSolver:
    """Up to _GROUP (source, sink) problems per scipy call, on one fixed sparse pattern.

    One copy of the graph per problem: node 0 is the source (layers, i), then the n positions of each
    boundary layers-1 .. 1, then the sink (0, j); the top edges carry row i of the last matrix and the
    bottom edges column j of the first, so every call has the same pattern and only the data changes.
    A super-source and a super-sink join the copies: the max flow of disjoint parts adds up, and each
    part's share is the flow on its link to the super-sink.
    """

    def __init__(self, mats: np.ndarray) -> None:
        from scipy.sparse import csr_array
        from scipy.sparse.csgraph import maximum_flow

        self.mats = mats
        layers, n, _ = mats.shape
        self.n, self.layers = n, layers
        per = (layers - 1) * n + 2
        self.per = per
        g = _GROUP
        self.total = g * per + 2
        self.super_source, self.super_sink = g * per, g * per + 1

        def node(boundary: int, k: Any) -> Any:  # boundary in 1..layers-1
            return 1 + (layers - 1 - boundary) * n + k

        src, dst = [np.zeros(n, dtype=np.int64)], [node(layers - 1, np.arange(n))]
        for b in range(layers - 2, 0, -1):  # (b+1, u) -> (b, v)
            u, v = np.divmod(np.arange(n * n), n)
            src.append(node(b + 1, u))
            dst.append(node(b, v))
        src.append(node(1, np.arange(n)))
        dst.append(np.full(n, per - 1))
        one_src, one_dst = np.concatenate(src), np.concatenate(dst)
        self.edges = len(one_src)
        offsets = (np.arange(g) * per)[:, None]
        all_src = np.concatenate([(one_src + offsets).ravel(), np.full(g, self.super_source), offsets[:, 0] + per - 1])
        all_dst = np.concatenate([(one_dst + offsets).ravel(), offsets[:, 0], np.full(g, self.super_sink)])
        order = csr_array((np.arange(1, len(all_src) + 1), (all_src, all_dst)), shape=(self.total, self.total))
        self.indices, self.indptr = order.indices, order.indptr
        perm = order.data - 1  # canonical position -> edge in the order above
        where = np.empty_like(perm)
        where[perm] = np.arange(len(perm))  # edge in the order above -> canonical position
        self.src, self.dst = all_src[perm], all_dst[perm]
        per_copy = where[: g * self.edges].reshape(g, self.edges)
        self.top, self.bottom = per_copy[:, :n], per_copy[:, self.edges - n :]
        # Capacities that never change: the middle layers, and the links (never a bottleneck).
        middle = mats[1 : layers - 1][::-1].reshape(-1)  # boundaries layers-1 .. 2, row-major
        self.true = np.full(len(perm), np.inf)
        self.true[per_copy[:, n : self.edges - n]] = middle
        self.caps = np.full(len(perm), 2**30, dtype=np.int64)
        self.caps[per_copy[:, n : self.edges - n]] = np.floor(middle * FLOW_SCALE)
        # Where the solver keeps each edge's flow: the pattern plus reverse edges, learnt from one run.
        probe = maximum_flow(self._graph(np.ones(len(perm), dtype=np.int32)), self.super_source, self.super_sink)
        self.flow_indices, self.flow_indptr = probe.flow.indices, probe.flow.indptr
        rows = np.repeat(np.arange(self.total), np.diff(self.flow_indptr))
        self.pos = np.searchsorted(rows * self.total + self.flow_indices, self.src * self.total + self.dst)
        self.links = self.pos[where[g * self.edges + g :]]  # sink links, in copy order
        self.flow_caps = np.zeros(len(self.flow_indices), dtype=np.int64)
        self.flow_caps[self.pos] = self.caps

    def _graph(self, data: np.ndarray) -> Any:
        from scipy.sparse import csr_array

        return csr_array((data, self.indices, self.indptr), shape=(self.total, self.total))

    def solve(self, sources: np.ndarray, sink: int, certify_below: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds on the max flow from each of ``sources`` to ``sink``.

        The residual cut is only priced when some lower bound is under ``certify_below`` (another cut
        already bounds it from above); else upper is +inf and the caller's cut applies.
        """
        from scipy.sparse import csr_array
        from scipy.sparse.csgraph import breadth_first_order, maximum_flow

        m = len(sources)
        padded = np.resize(sources, _GROUP)  # a short last group repeats sources; extra answers are dropped
        top = self.mats[self.layers - 1][padded]  # [g, n]
        bottom = np.broadcast_to(self.mats[0][:, sink], top.shape)
        self.true[self.top], self.true[self.bottom] = top, bottom
        self.caps[self.top], self.caps[self.bottom] = np.floor(top * FLOW_SCALE), np.floor(bottom * FLOW_SCALE)
        flows = maximum_flow(self._graph(self.caps.astype(np.int32)), self.super_source, self.super_sink).flow
        if not np.array_equal(flows.indices, self.flow_indices):
            raise AttnscopeError(
                "scipy's max-flow solver returned its flow on an unexpected layout; please report your scipy version"
            )
        lower = flows.data[self.links][:m] / FLOW_SCALE
        if lower.min() >= certify_below:
            return lower, np.full(m, np.inf)
        self.flow_caps[self.pos[self.top]], self.flow_caps[self.pos[self.bottom]] = (
            self.caps[self.top],
            self.caps[self.bottom],
        )
        residual = self.flow_caps - flows.data
        open_ = residual > 0
        indptr = np.concatenate([[0], np.cumsum(open_, dtype=np.int32)])[self.flow_indptr]
        graph = csr_array((residual[open_], self.flow_indices[open_], indptr), shape=(self.total, self.total))
        reach = np.zeros(self.total, dtype=bool)
        reach[breadth_first_order(graph, self.super_source, return_predecessors=False)] = True
        cut = reach[self.src] & ~reach[self.dst]
        upper = np.bincount(self.src[cut] // self.per, weights=self.true[cut], minlength=_GROUP + 1)[:m]
        return lower, upper
