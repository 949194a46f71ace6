"""The URLs of ``settings_streams_plain`` and ``settings_streams_bare``: the same paths as
``streams_urls``, served by plain Django."""

from django.urls import path

from . import plain_views, streams_plain_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("streams/room/<str:name>/", streams_plain_views.room),
    path("streams/publish/", streams_plain_views.publish),
    path("streams/fast/", streams_plain_views.fast),
    path("streams/fast-sleep0/", streams_plain_views.fast_sleep0),
    path("streams/first/", streams_plain_views.first),
    path("streams/stats/", streams_plain_views.stats),
]
