"""Heads compared: JS distances against scipy's, MDS recovering a known layout, clusters, merging."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from attnscope.heads.rows import KeyKinds
from attnscope.heads.similarity import HeadDistances, classical_mds, cluster_heads, js_divergence_sums


@pytest.mark.parametrize("with_zeros", [True, False])  # two code paths: masked log2, plain log2
def test_js_sums_equal_scipy_pair_by_pair(with_zeros: bool) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=(5, 4))  # 5 heads, 4 rows, 7 keys
    if with_zeros:
        probs[1, 0] = [1, 0, 0, 0, 0, 0, 0]  # zeros must not produce NaN
    assert np.isfinite(js_divergence_sums(probs)).all()
    sums = js_divergence_sums(probs)
    for g in range(5):
        for h in range(5):
            expected = sum(jensenshannon(probs[g, r], probs[h, r], base=2) ** 2 for r in range(4))
            assert sums[g, h] == pytest.approx(expected, abs=2e-6)  # float32 inside


def kinds(n: int) -> KeyKinds:
    rows = np.ones(n, dtype=bool)
    none = np.zeros(n, dtype=bool)
    return KeyKinds(rows=rows, first=none, sep=none, punct=none, segment=np.zeros(n, dtype=np.int8))


def test_identical_and_disjoint_heads() -> None:
    att = np.zeros((1, 3, 4, 4))
    att[0, 0] = np.eye(4)
    att[0, 1] = np.eye(4)
    att[0, 2] = np.roll(np.eye(4), 1, axis=1)
    dist = HeadDistances(1, 3, "encoder")
    dist.update_attention(att, kinds(4), 0)
    d = dist.distances()
    assert d[0, 1] == 0.0
    assert d[0, 2] == pytest.approx(1.0)
    assert d[2, 1] == pytest.approx(1.0)


def test_merge_and_sentence_limit() -> None:
    rng = np.random.default_rng(1)
    atts = [rng.dirichlet(np.ones(5), size=(2, 2, 5)) for _ in range(6)]
    whole = HeadDistances(2, 2, "encoder", max_sentences=4)
    for i, a in enumerate(atts):
        whole.update_attention(a, kinds(5), i)
    a_part, b_part = HeadDistances(2, 2, "encoder", max_sentences=4), HeadDistances(2, 2, "encoder", max_sentences=4)
    for i, a in enumerate(atts):
        (a_part if i % 2 else b_part).update_attention(a, kinds(5), i)
    merged = a_part.merge(b_part)
    assert merged.rows == whole.rows == 4 * 5  # sentences 4 and 5 lie beyond the limit
    np.testing.assert_allclose(merged.distances(), whole.distances(), atol=1e-12)


def test_mds_recovers_a_planar_layout() -> None:
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0], [1.0, 1.0]])
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    coords = classical_mds(d)
    np.testing.assert_allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), d, atol=1e-9)


def test_clusters_cut_by_silhouette() -> None:
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    rng = np.random.default_rng(2)
    points = np.concatenate([c + rng.normal(0, 0.3, (4, 2)) for c in centres])
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    labels = cluster_heads(d)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(set(cluster_heads(d, n_clusters=2).tolist())) == 2


def test_silhouette_by_hand() -> None:
    from attnscope.heads.similarity import silhouette

    d = np.array([[0, 1, 4, 5], [1, 0, 4, 4], [4, 4, 0, 2], [5, 4, 2, 0]], dtype=float)
    labels = np.array([0, 0, 1, 1])
    # point 0: a = 1, b = (4 + 5) / 2 = 4.5 -> 3.5 / 4.5; point 1: a = 1, b = 4 -> 3 / 4
    # point 2: a = 2, b = 4 -> 0.5; point 3: a = 2, b = 4.5 -> 2.5 / 4.5
    expected = (3.5 / 4.5 + 3 / 4 + 0.5 + 2.5 / 4.5) / 4
    assert silhouette(d, labels) == pytest.approx(expected)
    # singletons count 0; points 2 and 3: a = 2, b = the nearer singleton, 4 -> 0.5 each
    assert silhouette(d, np.array([0, 1, 2, 2])) == pytest.approx((0 + 0 + 0.5 + 0.5) / 4)
