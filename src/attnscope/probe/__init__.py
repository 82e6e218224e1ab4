"""Probing: which attention heads encode which linguistic relation (Clark et al. 2019), one command each.

Light on import: the readers and word-level attention need only numpy (and ``conllu`` for treebanks);
models load only when an analysis runs.
"""

from __future__ import annotations

from attnscope.probe.data import CorefItem, Sentence, base_relation, read_coref, read_treebank
from attnscope.probe.words import token_to_word, word_attention

__all__ = [
    "CorefItem",
    "Sentence",
    "base_relation",
    "read_coref",
    "read_treebank",
    "token_to_word",
    "word_attention",
]
