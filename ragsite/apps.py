from django.apps import AppConfig


class RagsiteConfig(AppConfig):
    """The project itself: its `serve` command and its start-up wiring."""

    name = "ragsite"
    verbose_name = "ragsite"

    def ready(self) -> None:
        """Teach Django's deploy checks that our middleware are Django's (ragsite/checks.py)."""
        from . import checks

        checks.install()
