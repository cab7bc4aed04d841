"""`scenefusion serve`: a JSON API and one offline HTML page over a saved model bundle.

Needs the optional extra: ``pip install 'scenefusion[serve]'`` (FastAPI, uvicorn,
python-multipart). :func:`create_app` builds the ASGI app; the CLI runs it with uvicorn.
"""

from __future__ import annotations

from .app import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_VIDEO_SECONDS, create_app

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_VIDEO_SECONDS", "create_app"]
