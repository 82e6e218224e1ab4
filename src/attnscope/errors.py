"""The one exception family attnscope raises for problems a user can fix."""

from __future__ import annotations


class AttnscopeError(Exception):
    """A problem with the user's input, model or files; the message says how to fix it."""


class ModelLoadError(AttnscopeError):
    """A model or tokenizer could not be loaded (offline, no config, remote code needed...)."""


class InputError(AttnscopeError):
    """Text or arguments that cannot be traced as given (empty, too long, wrong shape...)."""


class UnsupportedModelError(AttnscopeError):
    """The model cannot give what was asked for (no attention weights, no query/key adapter)."""


class TraceFileError(AttnscopeError):
    """A trace file that is missing, malformed or of an unknown format version."""


class DataFileError(AttnscopeError):
    """A malformed data file (treebank, coreference items); the message names file and line."""


class OutputError(AttnscopeError):
    """An output file that cannot be written (a folder in the way, no permission, disk full...)."""
