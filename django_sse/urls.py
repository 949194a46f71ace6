"""URLs of django-sse: the diagnostic stream that ``manage.py sse_check`` reads.

Include them under a path of your choice::

    path("sse/", include("django_sse.urls")),  # the diagnostic stream at /sse/diagnostics/
"""

from django.urls import path

from .diagnostics import DiagnosticStreamView

app_name = "django_sse"

urlpatterns = [
    path("diagnostics/", DiagnosticStreamView.as_view(), name="diagnostics"),
]
