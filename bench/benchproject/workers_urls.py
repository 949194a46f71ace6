"""The URLs of ``settings_workers`` (bench/workers.py)."""

from django.urls import path

from . import plain_views, workers_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("workers/feed/", workers_views.Feed.as_view()),
    path("workers/stats/", workers_views.stats),
    path("workers/publish/", workers_views.publish),
]
