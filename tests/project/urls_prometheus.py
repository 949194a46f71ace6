"""The test project's URLs, django-prometheus's /metrics and django-sse's own metrics view."""

from django.urls import include, path

from django_sse.metrics import metrics_view

from .urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("", include("django_prometheus.urls")),  # /metrics, as projects route it
    path("sse-metrics/", metrics_view),
    *project_urlpatterns,
]
