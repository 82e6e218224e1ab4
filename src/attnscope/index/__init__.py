"""Corpus index and search (exBERT's core): every corpus token's context vectors and embeddings per layer in
FAISS, with its metadata in Parquet; search a token's nearest corpus contexts.

Light on import: FAISS, pyarrow and torch load when an index is built or searched.
"""

from __future__ import annotations

from attnscope.index.build import IndexAnalysis, build_index
from attnscope.index.search import Match, SearchIndex, SearchResult, open_index

__all__ = ["IndexAnalysis", "Match", "SearchIndex", "SearchResult", "build_index", "open_index"]
