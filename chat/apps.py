from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Reader-facing chat: conversations, messages, feedback, search and the SSE view."""

    name = "chat"
    verbose_name = "Reader chat"
