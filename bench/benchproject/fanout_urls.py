from django.urls import path

from . import fanout_views, plain_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("fanout/sse/", fanout_views.Feed.as_view()),
    path("fanout/plain/", fanout_views.plain_feed),
    path("fanout/start/", fanout_views.start),
    path("fanout/stats/", fanout_views.stats),
]
