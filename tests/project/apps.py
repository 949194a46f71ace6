from django.apps import AppConfig


class TestProjectConfig(AppConfig):
    name = "tests.project"
    label = "test_project"

    def ready(self) -> None:
        from . import views  # noqa: F401  (connects the request signal counters before the first request)
