"""The test project's URLs and the recipes' (docs/recipes.rst, tests/test_recipes.py)."""

from pathlib import Path

from django.contrib.auth.models import User
from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django.views.static import serve

from . import recipes
from .urls import urlpatterns as base

#: Where .ci/setup puts htmx and its SSE extension (from the npm registry), served at /static/js/.
JS_DIR = Path(__file__).resolve().parents[2] / ".cache" / "js"


@csrf_exempt
@require_POST
def create_user(request):
    """Not part of the recipes: creates a user in the server process, for tests/test_recipes.py."""
    User.objects.create_user(request.POST["username"])
    return JsonResponse({"users": User.objects.count()})


# recipes: urls
urlpatterns = [
    # 1. htmx
    path("recipes/htmx/", recipes.notifications_page),
    path("recipes/notifications/", recipes.NotificationStream.as_view(), name="notification-stream"),
    path("recipes/notify/", recipes.notify, name="notify"),
    # 2. A progress bar
    path("recipes/import/", recipes.import_page),
    path("recipes/import/events/", recipes.ImportJob.as_view(), name="import-events"),
    # 3. A live dashboard
    path("recipes/dashboard/", recipes.dashboard_page),
    path("recipes/dashboard/events/", recipes.DashboardStream.as_view(), name="dashboard-events"),
    # end: urls
    path("recipes/users/", create_user),
    # What a project's static files would be (daphne serves none): only for these tests.
    re_path(r"^static/js/(?P<path>.+)$", serve, {"document_root": JS_DIR}),
    *base,
]
