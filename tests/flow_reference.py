"""The reference attention flow of Abnar & Zuidema (github.com/samiraabnar/attention_flow,
attention_graph_util.py): a networkx graph and nx.maximum_flow_value per token pair with edmonds_karp.

Kept as close to the original as possible (same adjacency layout and labels) so that attnscope's flow can be
checked against it number for number and timed side by side."""

from __future__ import annotations

from typing import Any

import numpy as np


def get_adjmat(mat: np.ndarray, input_tokens: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """The original's adjacency matrix: node (layer i, token k) at i*length + k, edges to layer i-1."""
    n_layers, length, _ = mat.shape
    adj_mat = np.zeros(((n_layers + 1) * length, (n_layers + 1) * length))
    labels_to_index = {}
    for k in np.arange(length):
        labels_to_index[str(k) + "_" + input_tokens[k]] = k
    for i in np.arange(1, n_layers + 1):
        for k_f in np.arange(length):
            index_from = i * length + k_f
            label = "L" + str(i) + "_" + str(k_f)
            labels_to_index[label] = index_from
            for k_t in np.arange(length):
                index_to = (i - 1) * length + k_t
                adj_mat[index_from][index_to] = mat[i - 1][k_f][k_t]
    return adj_mat, labels_to_index


def graph(adj_mat: np.ndarray) -> Any:
    """The original's DiGraph with 'capacity' attributes."""
    import networkx as nx

    g = nx.from_numpy_array(adj_mat, create_using=nx.DiGraph())
    for i in np.arange(adj_mat.shape[0]):
        for j in np.arange(adj_mat.shape[1]):
            nx.set_edge_attributes(g, {(i, j): adj_mat[i, j]}, "capacity")
    return g


def flow_value(g: Any, u: int, v: int) -> float:
    """One pair, as the original computes it."""
    import networkx as nx

    return float(nx.maximum_flow_value(g, u, v, flow_func=nx.algorithms.flow.edmonds_karp))


def compute_flows(mats: np.ndarray, rows: list[int] | None = None) -> np.ndarray:
    """Unnormalised flow [n, n] from each last-layer node (rows: a subset) to each input node."""
    layers, n, _ = mats.shape
    adj, _ = get_adjmat(mats, [str(k) for k in range(n)])
    g = graph(adj)
    out = np.full((n, n), np.nan)
    for i in rows if rows is not None else range(n):
        for j in range(n):
            out[i, j] = flow_value(g, layers * n + i, j)
    return out
