"""The recipes of docs/recipes.rst, exactly as the page shows them: it includes this file.

tests/test_recipes.py runs each one in a real daphne and a real headless Chromium
(tests/project/settings_recipes.py, tests/project/urls_recipes.py). The templates are in
tests/project/templates/recipes/.
"""

import time

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from django_sse import Event, EventStreamView, publish

# 1. htmx's SSE extension: the server sends HTML, htmx swaps it in.


class NotificationStream(EventStreamView):
    channels = ["notifications"]


def notifications_page(request):
    return render(request, "recipes/notifications.html")


@require_POST
def notify(request):
    # A template escapes the text: what is published goes into the page as HTML.
    html = render_to_string("recipes/notification.html", {"text": request.POST["text"]})
    publish("notifications", html, event="notification")  # event= is the page's sse-swap name
    return HttpResponse(status=204)


# 2. A progress bar for a long job, with a sync generator.


class ImportJob(EventStreamView):
    def stream(self, request):
        rows = range(1, 21)
        total = 0
        for done, row in enumerate(rows, start=1):
            total += import_row(row)
            yield Event(event="progress", data={"percent": done * 100 // len(rows)})
        yield Event(event="done", data={"rows": len(rows), "total": total})


def import_row(row):
    time.sleep(0.05)  # the work: parsing a line, a query, a call to another service...
    return row * row


def import_page(request):
    return render(request, "recipes/import.html")


# 3. A live dashboard fed by publish() from a signal.


def dashboard_summary():
    newest = User.objects.order_by("-date_joined", "-pk").first()
    return {"users": User.objects.count(), "newest": newest.username if newest else None}


def publish_dashboard():
    publish("dashboard", dashboard_summary(), event="summary")


@receiver(post_save, sender=User, dispatch_uid="recipes.dashboard")
def user_saved(sender, instance, created, **kwargs):
    if created:  # post_save also fires on every update: each login saves last_login
        # After the commit: the summary counts only committed users, as a fresh page's does.
        transaction.on_commit(publish_dashboard)


class DashboardStream(EventStreamView):
    channels = ["dashboard"]

    def initial_events(self, request):
        yield Event(event="summary", data=dashboard_summary())


def dashboard_page(request):
    return render(request, "recipes/dashboard.html")
