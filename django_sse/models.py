"""History: every published event, stored with its id before it is fanned out."""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone

if not apps.is_installed("django_sse"):
    # Without this, Django's own RuntimeError about a model outside INSTALLED_APPS
    # names the model, not the fix.
    raise ImproperlyConfigured(
        'django-sse: add "django_sse" to INSTALLED_APPS; it stores the event history '
        "that publish() and reconnecting clients need."
    )


class StoredEvent(models.Model):
    """One published event. Its primary key is the event's ``id``, unique across channels."""

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=80)
    event = models.CharField(max_length=200, null=True, blank=True)
    data = models.TextField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["channel", "id"], name="django_sse_channel_id")]
        verbose_name = "stored event"

    def __str__(self) -> str:
        return f"{self.channel} #{self.id}"


class PublishLock(models.Model):
    """A single row that publishers lock (where the database can) so that ids commit in order."""

    id = models.PositiveSmallIntegerField(primary_key=True)
