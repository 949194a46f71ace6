from django.urls import path

from . import plain_views, scaling_views

urlpatterns = [
    path("ping/", plain_views.ping),
    path("scaling/feed/", scaling_views.Feed.as_view()),
    path("scaling/stats/", scaling_views.stats),
]
