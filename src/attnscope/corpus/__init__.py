"""Corpus analyses: one protocol (update, merge, finalize partial states), one driver, local or Ray engines.

Light on import: nothing here imports torch or Ray until an analysis runs.
"""

from __future__ import annotations

from attnscope.corpus.checkpoint import Checkpoint
from attnscope.corpus.driver import CorpusJob, add_corpus_options, analyze, run_analysis
from attnscope.corpus.engines import LocalEngine, ModelSpec
from attnscope.corpus.protocol import Analysis, Finalize, ModelRef, TraceInput
from attnscope.corpus.ray_engine import RayEngine

__all__ = [
    "Analysis",
    "Checkpoint",
    "CorpusJob",
    "Finalize",
    "LocalEngine",
    "ModelRef",
    "ModelSpec",
    "RayEngine",
    "TraceInput",
    "add_corpus_options",
    "analyze",
    "run_analysis",
]
