from django.urls import include, path

from django_sse.diagnostics import DiagnosticStreamView

from . import views

#: The token of the diagnostic stream at /check/diagnostics/ (tests/test_sse_check.py).
CHECK_TOKEN = "tests-diagnostics-token"

urlpatterns = [
    path("sync/", views.SyncStream.as_view()),
    path("async/", views.AsyncStream.as_view()),
    path("sync/fast-heartbeat/", views.SyncStream.as_view(heartbeat=0.5)),
    path("async/fast-heartbeat/", views.AsyncStream.as_view(heartbeat=0.5)),
    path("plain/sync/", views.plain_sync),
    path("plain/async/", views.plain_async),
    path("ping/", views.ping),
    path("stats/", views.stats),
    path("channels/<str:names>/", views.Channels.as_view(retry=200)),
    path("workers/<str:names>/", views.WhoServes.as_view(retry=200)),
    path("mixed/<str:names>/", views.Mixed.as_view()),
    path("private/<str:names>/", views.Private.as_view()),
    path("members/<str:names>/", views.Members.as_view(retry=200)),
    path("login/<str:username>/", views.login_view),
    path("logout/", views.logout_view),
    path("deactivate/<str:username>/", views.deactivate_view),
    path("block-loop/", views.block_loop),
    path("failing/async/", views.Failing.as_view()),
    path("failing/sync/", views.FailingSync.as_view()),
    path("failing/snapshot/<str:names>/", views.FailingSnapshot.as_view()),
    path("async/heartbeat-0.1/", views.AsyncStream.as_view(heartbeat=0.1)),
    path("publish/<str:channel>/", views.publish_view),
    path("sse-stats/", views.sse_stats),
    path("browser/", views.browser_page),
    # The diagnostic stream as users include it (DEBUG, staff or DJANGO_SSE["DIAGNOSTICS_TOKEN"]) ...
    path("sse/", include("django_sse.urls")),
    # ... and with a token of its own, for the servers the tests run (DEBUG off, no users).
    path("check/diagnostics/", DiagnosticStreamView.as_view(token=CHECK_TOKEN)),
]
