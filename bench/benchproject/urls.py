from django.urls import path

from . import views

urlpatterns = [
    path("ping/", views.ping),
    path("sse/sync/", views.SyncStream.as_view()),
    path("sse/async/", views.AsyncStream.as_view()),
    path("plain/sync/", views.plain_sync),
    path("plain/async/", views.plain_async),
]
