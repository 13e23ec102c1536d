"""CORS as django-cors-headers does it, except that the `null` origin (sandboxed
iframes, file:// pages, data: URLs) is never allowed unless CORS_ALLOWED_ORIGINS lists
it, not even by CORS_ALLOW_ALL_ORIGINS (whose `*` would otherwise cover it)."""

from __future__ import annotations

from corsheaders.conf import conf
from corsheaders.middleware import CorsMiddleware as BaseCorsMiddleware
from django.http import HttpRequest


class CorsMiddleware(BaseCorsMiddleware):
    """django-cors-headers' middleware that treats an unlisted `null` origin as foreign."""

    def is_enabled(self, request: HttpRequest) -> bool:
        """False for an unlisted `null` origin (no CORS headers, no preflight answer)."""
        if request.headers.get("origin") == "null" and "null" not in conf.CORS_ALLOWED_ORIGINS:
            return False
        return super().is_enabled(request)
