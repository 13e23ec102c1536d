"""Rate limiting for async views.

django-ratelimit's decorator is synchronous: on an `async def` view it returns an
unawaited coroutine (a 500). This wrapper calls its core `is_ratelimited` instead and
answers 429 with `Retry-After` and our JSON error body (API.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

import django_ratelimit
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import _split_rate, is_ratelimited

from .http import json_error

RATE_LIMITED_MESSAGE = "Too many requests. Please wait a moment and try again."

AsyncView = Callable[..., Awaitable[HttpResponse]]


def client_key(group: str, request: HttpRequest) -> str:
    """Return the caller's address (from RATELIMIT_IP_META_KEY behind a proxy)."""
    meta_key = getattr(settings, "RATELIMIT_IP_META_KEY", None)
    if meta_key and request.META.get(meta_key):
        return request.META[meta_key].split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "unknown")


async def limit_response(
    request: HttpRequest, *, group: str, rate_setting: str
) -> HttpResponse | None:
    """Count this request against `group`; return the 429 answer when it is over the limit."""
    rate = getattr(settings, rate_setting)
    limited = await sync_to_async(is_ratelimited)(
        request=request,
        group=group,
        key=client_key,
        rate=rate,
        method=django_ratelimit.ALL,  # the tuple; the string "ALL" never limits
        increment=True,
    )
    if not limited:
        return None
    _, period = _split_rate(rate)
    retry_after = max(1, int(period - (time.time() % period)))
    response = json_error("rate_limited", RATE_LIMITED_MESSAGE, 429, {"retry_after": retry_after})
    response["Retry-After"] = str(retry_after)
    return response


def async_ratelimit(*, group: str, rate_setting: str) -> Callable[[AsyncView], AsyncView]:
    """Limit an async view to the rate named by a setting (e.g. CHAT_RATE_LIMIT="30/m")."""

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limited = await limit_response(request, group=group, rate_setting=rate_setting)
            if limited is not None:
                return limited
            return await view(request, *args, **kwargs)

        return wrapped

    return decorator
