"""The URLs of ``settings_soak`` (bench/soak.py)."""

from django.urls import path

from . import plain_views, soak_views, streams_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("soak/room/<str:name>/", streams_views.Room.as_view()),
    path("soak/publisher/", soak_views.publisher),
    path("soak/stats/", soak_views.stats),
]
