"""ASGI entry point: `uvicorn ragsite.asgi:application` (one worker; see docs/architecture.md)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

application = get_asgi_application()
