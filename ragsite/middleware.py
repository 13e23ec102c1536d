"""Django's own middleware, with their hooks run on the event loop when they do no I/O.

Under ASGI, `django.utils.deprecation.MiddlewareMixin` runs every `process_request` and
`process_response` through `sync_to_async(thread_sensitive=True)`: two thread hops per
middleware per request, queued on the request's one sync thread. With the eight
middlewares of a Django project that is sixteen hops for a chat request whose hooks
only read headers and set a few more (measured: the largest share of the server's
Python time under 50 chat streams, after the answer itself).

The hooks of these middlewares are pure (they read the request and the settings, and
set headers) or lazy (the session and the user are loaded only when something reads
them), so the classes below call them directly on the loop. Two keep a thread for the
case that does touch the database: the session middleware when the session was read or
changed (it saves it), and the messages middleware when messages were added or shown
(they may be stored in the session). The admin, which uses both, therefore works as
before; an API request never leaves the loop.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse
from django.middleware import clickjacking, common, csrf, security


class OnLoopMixin:
    """Run a MiddlewareMixin's hooks on the event loop (async requests only)."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request: HttpRequest) -> bool:
        """True when `process_response` may do blocking I/O for this request."""
        return False


class SecurityMiddleware(OnLoopMixin, security.SecurityMiddleware):
    """Django's SecurityMiddleware (headers, HTTPS redirect), on the loop."""


class CommonMiddleware(OnLoopMixin, common.CommonMiddleware):
    """Django's CommonMiddleware (user agents, slashes, Content-Length), on the loop."""


class XFrameOptionsMiddleware(OnLoopMixin, clickjacking.XFrameOptionsMiddleware):
    """Django's X-Frame-Options header, on the loop."""


class CsrfViewMiddleware(OnLoopMixin, csrf.CsrfViewMiddleware):
    """Django's CSRF check, on the loop: the token lives in a cookie (CSRF_USE_SESSIONS
    is off), so reading and comparing it is pure."""

    async def process_view(self, request, callback, callback_args, callback_kwargs):
        """The sync check itself (a coroutine, so Django does not send it to a thread)."""
        return super().process_view(request, callback, callback_args, callback_kwargs)


class SessionMiddleware(OnLoopMixin, sessions.SessionMiddleware):
    """Django's sessions: the lazy session is attached on the loop; saving one that was
    read or changed goes to a thread, as Django does it."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (
            session.accessed or session.modified or settings.SESSION_SAVE_EVERY_REQUEST
        )


class AuthenticationMiddleware(OnLoopMixin, auth.AuthenticationMiddleware):
    """Django's `request.user`, attached lazily on the loop (loaded only when read)."""


class MessageMiddleware(OnLoopMixin, messages.MessageMiddleware):
    """Django's messages: storing messages that were added or shown (maybe into the
    session) goes to a thread; a request without any stays on the loop."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)
