"""The URLs of ``settings_streams`` (django-sse)."""

from django.urls import path

from . import plain_views, streams_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("streams/room/<str:name>/", streams_views.Room.as_view()),
    path("streams/publish/", streams_views.publish),
    path("streams/fast/", streams_views.Fast.as_view()),
    path("streams/first/", streams_views.First.as_view()),
    path("streams/stats/", streams_views.stats),
]
