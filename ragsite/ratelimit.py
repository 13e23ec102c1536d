"""Client addresses behind proxies, and rate limits for async views.

One place decides who the client is: `ClientAddressMiddleware` sets `request.client_ip`
from the socket peer, or, behind `TRUSTED_PROXY_HOPS` reverse proxies, from the entry
that many hops from the right of `X-Forwarded-For`. Entries to the left of it are
written by the client and never change its budget. Every limit (these rate limits, the
LLM token budget of `ragsite.budget`, django-axes' admin lockout) keys on it.

django-ratelimit's decorator is synchronous: on an `async def` view it returns an
unawaited coroutine (a 500). `async_ratelimit` calls its core `get_usage` instead
and answers 429 with `Retry-After` and our JSON error body (API.md).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable

import django_ratelimit
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from .http import json_error

RATE_LIMITED_MESSAGE = "Too many requests. Please wait a moment and try again."
UNKNOWN_CLIENT = "unknown"
# What django-axes records for a client address that is not an IP address.
UNPARSABLE_CLIENT_IP = "0.0.0.0"  # noqa: S104 - a stored value, never bound to

AsyncView = Callable[..., Awaitable[HttpResponse]]


def client_ip_from(meta: dict, *, hops: int) -> str:
    """Return the client address of a request's META, trusting `hops` proxies.

    With 0 hops it is the socket peer (`REMOTE_ADDR`) and `X-Forwarded-For` is ignored.
    Each trusted proxy appends the address it saw, so the client is the entry `hops`
    from the right; when there are fewer entries, the request met fewer proxies and the
    left-most entry (appended by the first proxy it met) is the client.
    """
    peer = meta.get("REMOTE_ADDR") or UNKNOWN_CLIENT
    if hops <= 0:
        return peer
    entries = [e.strip() for e in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    if not entries:
        return peer
    return _without_port(entries[-hops] if len(entries) >= hops else entries[0])


def _without_port(entry: str) -> str:
    """Drop a port some proxies append ("203.0.113.7:5123", "[2001:db8::1]:443")."""
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


def client_ip(request: HttpRequest) -> str:
    """Return the request's client address (set by ClientAddressMiddleware, else computed)."""
    known = getattr(request, "client_ip", None)
    if known:
        return known
    return client_ip_from(request.META, hops=settings.TRUSTED_PROXY_HOPS)


def axes_client_ip(request: HttpRequest) -> str:
    """The client address for django-axes' lockouts, always a valid IP address.

    axes stores it in a GenericIPAddressField (PostgreSQL's `inet`), which refuses
    "unknown" (a request without REMOTE_ADDR, e.g. the test client's force_login) and
    whatever a client wrote into X-Forwarded-For: those count as 0.0.0.0.
    """
    address = client_ip(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return UNPARSABLE_CLIENT_IP


def client_key(group: str, request: HttpRequest) -> str:
    """Return the key limits count under: the client address, IPv6 by its /64 network.

    An IPv6 subscriber usually holds a whole /64 and can pick a new address per request.
    """
    address = client_ip(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class ClientAddressMiddleware:
    """Set `request.client_ip` once per request (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        request.client_ip = client_ip_from(request.META, hops=settings.TRUSTED_PROXY_HOPS)
        return self.get_response(request)  # async: a coroutine the handler awaits


def too_many_requests(
    *,
    retry_after: float,
    code: str = "rate_limited",
    message: str = RATE_LIMITED_MESSAGE,
    details: dict | None = None,
) -> HttpResponse:
    """Return a 429 JSON error with a `Retry-After` header (whole seconds, at least 1)."""
    retry_after = max(1, int(retry_after))
    response = json_error(code, message, 429, {**(details or {}), "retry_after": retry_after})
    response["Retry-After"] = str(retry_after)
    return response


def _cache_in_process() -> bool:
    """True when the rate-limit counters live in this process's memory (LocMemCache)."""
    return isinstance(caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")], LocMemCache)


async def ratelimit_check(
    request: HttpRequest, *, group: str, rate_setting: str
) -> HttpResponse | None:
    """Count this request against the rate named by a setting; a 429 when it is over.

    With the process's own memory cache (one process, the embedded default) the count
    is a dict update: done on the loop, no thread hop. A shared cache (Redis) is network
    I/O: done in a worker thread, not the single thread of thread-sensitive calls.
    """
    count = functools.partial(
        get_usage,
        request=request,
        group=group,
        key=client_key,
        rate=getattr(settings, rate_setting),
        method=django_ratelimit.ALL,  # the tuple; the string "ALL" never limits
        increment=True,
    )
    usage = count() if _cache_in_process() else await sync_to_async(count, thread_sensitive=False)()
    if usage is None or not usage["should_limit"]:
        return None
    # The window's end is jittered per key by django-ratelimit; time_left is until then.
    return too_many_requests(retry_after=usage["time_left"])


def async_ratelimit(*, group: str, rate_setting: str) -> Callable[[AsyncView], AsyncView]:
    """Limit an async view to the rate named by a setting (e.g. CHAT_RATE_LIMIT="30/m")."""

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limited = await ratelimit_check(request, group=group, rate_setting=rate_setting)
            if limited is not None:
                return limited
            return await view(request, *args, **kwargs)

        return wrapped

    return decorator
