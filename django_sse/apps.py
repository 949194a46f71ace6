"""App configuration: registers the system checks, the shutdown handler, revocation at logout and,
with ``prometheus_client`` installed, the metrics."""

import importlib.util

from django.apps import AppConfig, apps


class DjangoSSEConfig(AppConfig):
    """The ``django_sse`` app."""

    name = "django_sse"
    verbose_name = "Server-Sent Events"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .delivery.shutdown import install

        install()
        if importlib.util.find_spec("prometheus_client") is not None:
            from .metrics import register

            register()  # served by the project's metrics endpoint (django-prometheus), if it has one
        if apps.is_installed("django.contrib.auth"):
            from django.contrib.auth.signals import user_logged_out

            from .revocation import revoke_session_on_logout

            user_logged_out.connect(revoke_session_on_logout, dispatch_uid="django_sse.revoke_on_logout")
