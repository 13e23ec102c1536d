"""WhiteNoise on the async request path.

`whitenoise.middleware.WhiteNoiseMiddleware` is sync-only. One sync middleware in an
ASGI stack makes Django adapt every request around it: the middleware runs in the single
thread of thread-sensitive calls and the rest of the chain is called back on the loop
through `async_to_sync`, two thread hops per request, every request queued behind the
others in that one thread (measured: ~25 % of the server's time under 50 chat streams).
This subclass does the same lookup on the loop: a static file is an in-memory dict hit
(or, with autorefresh in development, a stat) and is served as WhiteNoise serves it;
anything else goes straight on down the async chain.
"""

from __future__ import annotations

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files, without taking requests off the event loop."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)
