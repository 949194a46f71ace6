"""App configuration: registers the system checks."""

from django.apps import AppConfig


class DjangoSSEConfig(AppConfig):
    """The ``django_sse`` app."""

    name = "django_sse"
    verbose_name = "Server-Sent Events"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .shutdown import install

        install()
