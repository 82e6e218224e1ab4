"""Probing: which attention heads encode which linguistic relation (Clark et al. 2019), one command each.

Light on import: the readers and word-level attention need only numpy (and ``conllu`` for treebanks);
models load only when an analysis runs.
"""

from __future__ import annotations

from attnscope.probe.classify import HeadProbeResult, fit_pair_probe, fit_token_probe
from attnscope.probe.coref import CorefResult, probe_coref
from attnscope.probe.data import CorefItem, Sentence, SkippedSentence, base_relation, read_coref, read_treebank
from attnscope.probe.deps import DepsCounts, probe_deps
from attnscope.probe.train import ArcProbe, fit_arc_probe, probe_train
from attnscope.probe.words import token_to_word, word_attention

__all__ = [
    "ArcProbe",
    "CorefItem",
    "CorefResult",
    "DepsCounts",
    "HeadProbeResult",
    "Sentence",
    "SkippedSentence",
    "base_relation",
    "fit_arc_probe",
    "fit_pair_probe",
    "fit_token_probe",
    "probe_coref",
    "probe_deps",
    "probe_train",
    "read_coref",
    "read_treebank",
    "token_to_word",
    "word_attention",
]
