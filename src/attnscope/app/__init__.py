"""The app (``attnscope serve``): exBERT's page rebuilt locally — type text, pick a model, mask tokens, compare,
search a corpus — on a Starlette server with a documented JSON API that the page itself uses."""

from __future__ import annotations

from attnscope.app.server import CSP, create_app

__all__ = ["CSP", "create_app"]
