"""The URLs of ``settings_plain``: without django-sse installed, only the plain streams."""

from django.urls import path

from . import plain_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("plain/sync/", plain_views.plain_sync),
    path("plain/async/", plain_views.plain_async),
]
