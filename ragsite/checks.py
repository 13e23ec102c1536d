"""Django's deploy checks, taught that ragsite's middleware are Django's own.

`ragsite/middleware.py` runs subclasses of Django's security, clickjacking, CSRF and
session middleware (their hooks stay on the event loop). Django's deploy checks find
those middleware by their dotted names in MIDDLEWARE (`_security_middleware()` and its
siblings), so with the subclasses they would report them missing (security.W001-W003)
and, worse, skip every check that depends on them (HSTS, SSL redirect, secure session
and CSRF cookies). The four helpers below answer the same question by class instead:
is that middleware, or a subclass of it, in MIDDLEWARE? Every deploy check then runs
as Django wrote it. (Django 5.2's private helpers; `tests/test_security.py` fails if a
Django upgrade renames them, because W001 would then appear.)
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks.security import base, csrf, sessions
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string


def middleware_in_use(middleware: type) -> bool:
    """True when MIDDLEWARE holds `middleware` or a subclass of it."""
    for path in settings.MIDDLEWARE:
        found = import_string(path)
        if isinstance(found, type) and issubclass(found, middleware):
            return True
    return False


def install() -> None:
    """Point Django's deploy checks at `middleware_in_use` (called once, at start-up)."""
    base._security_middleware = lambda: middleware_in_use(SecurityMiddleware)
    base._xframe_middleware = lambda: middleware_in_use(XFrameOptionsMiddleware)
    csrf._csrf_middleware = lambda: middleware_in_use(CsrfViewMiddleware)
    sessions._session_middleware = lambda: middleware_in_use(SessionMiddleware)
