"""One contract, one registry: the generated TypeScript types, the view table and the head palette."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest

from attnscope.traces import ModelInfo, Trace
from attnscope.views import VIEW_KINDS, ViewOptions, page
from attnscope.views.contract import TARGET, typescript
from attnscope.views.payload import ContributionPayload, ModelPayload, Payload, ResolvedPayload, build_payload
from attnscope.views.registry import NEEDS, VIEWS, available_views
from attnscope.views.resolve import HEAD_PALETTE, Resolved, head_colours, resolve
from test_views_payload import random_trace

ROOT = Path(__file__).resolve().parents[1]


def test_generated_typescript_matches_the_python_contract() -> None:
    committed = (ROOT / TARGET).read_text(encoding="utf-8")
    assert committed == typescript(), "the contract changed: run `python -m attnscope.views.contract` and commit"


def test_contract_typeddicts_match_what_python_writes() -> None:
    assert set(get_type_hints(ModelPayload)) == {f.name for f in dataclasses.fields(ModelInfo)}
    assert set(get_type_hints(ResolvedPayload)) == {f.name for f in dataclasses.fields(Resolved)}
    trace = random_trace(["[CLS]", "a", "b", "[SEP]"])
    payload = build_payload(trace, ("head", "neuron"), ViewOptions())
    assert set(payload) == set(get_type_hints(Payload)) - Payload.__optional_keys__
    # sections only some payloads have: an atlas payload (tests/test_views_atlas.py), a comparison payload
    # (tests/test_views_compare.py), a contribution view's
    assert Payload.__optional_keys__ == {"atlas", "contribution", "compare"}
    with_section = build_payload(trace, ("contribution",), ViewOptions())
    assert set(with_section) == set(payload) | {"contribution"}
    assert set(with_section["contribution"]) == set(get_type_hints(ContributionPayload))
    assert set(payload["resolved"]) == set(get_type_hints(ResolvedPayload))


def test_every_list_of_views_derives_from_the_registry() -> None:
    assert VIEW_KINDS == ("head", "model", "neuron", "heatmap", "contribution")  # the views of a trace
    assert tuple(VIEWS) == (*VIEW_KINDS, "atlas", "compare")  # and views of other subjects (a head atlas, two traces)
    assert {spec.subject for spec in VIEWS.values()} == {"trace", "atlas", "compare"}
    registry_ts = (ROOT / "frontend" / "src" / "registry.ts").read_text(encoding="utf-8")
    for name, spec in VIEWS.items():
        assert set(spec.needs) <= set(NEEDS)
        assert (ROOT / "frontend" / "src" / f"{name}.ts").is_file()
        assert re.search(rf"^  {name}: \{{ title: \"{spec.title}\"", registry_ts, flags=re.MULTILINE), name
    sources = [p for p in (ROOT / "src" / "attnscope").rglob("*.py") if p.name not in ("registry.py",)]
    spelled = [p for p in sources if re.search(r"\(\s*\"head\",\s*\"model\"", p.read_text(encoding="utf-8"))]
    assert spelled == [], "a list of view kinds is spelled outside the registry"


def test_every_registered_view_has_a_drawer() -> None:
    pytest.importorskip("matplotlib", reason="static drawers need the 'views' extra (matplotlib)")
    for spec in VIEWS.values():
        assert callable(spec.draw_function())


def test_default_tabs_are_the_views_whose_needs_the_trace_has() -> None:
    trace = random_trace(["[CLS]", "a", "b", "[SEP]"])
    assert available_views(trace) == VIEW_KINDS
    trace.qk = {}
    assert available_views(trace) == ("head", "model", "heatmap", "contribution")
    assert page(trace).views == ("head", "model", "heatmap", "contribution")


def _lab(hex_colour: str) -> np.ndarray:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_32_head_colours_are_distinct_and_start_as_bertviz() -> None:
    assert len(HEAD_PALETTE) == 32
    assert HEAD_PALETTE[:3] == ("#1f77b4", "#ff7f0e", "#2ca02c")  # d3's category10, as BertViz
    lab = np.array([_lab(c) for c in HEAD_PALETTE])
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=-1) + np.eye(32) * 1e9
    assert distance.min() > 24  # CIE76 ΔE: clearly different colours side by side
    assert lab[:, 0].min() > 35
    assert lab[:, 0].max() < 80
    many = head_colours(64)
    assert many[:32] == list(HEAD_PALETTE)
    assert len(set(many)) == 64


def test_resolve_fills_every_default_once() -> None:
    trace: Trace = random_trace(["[CLS]", "a", "b", "[SEP]"], layers=2, heads=3)
    r = resolve(trace, ViewOptions())
    assert (r.stack, r.layer, r.heads) == ("encoder", 0, (0, 1, 2))
    assert (r.include_layers, r.include_heads) == ((0, 1), (0, 1, 2))
    assert r.head_colours == HEAD_PALETTE[:3]
    r = resolve(trace, ViewOptions(layer=1, heads=(2,), include_layers=(1,), index_base=1, hide_special=True))
    assert (r.layer, r.head, r.include_layers, r.index_base, r.hide_special) == (1, 2, (1,), 1, True)
