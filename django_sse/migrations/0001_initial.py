from typing import Any

import django.utils.timezone
from django.db import migrations, models


def create_lock_row(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_sse", "PublishLock").objects.using(schema_editor.connection.alias).create(id=1)


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="StoredEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("channel", models.CharField(max_length=80)),
                ("event", models.CharField(blank=True, max_length=200, null=True)),
                ("data", models.TextField(blank=True, null=True)),
                ("created", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "stored event",
                "indexes": [models.Index(fields=["channel", "id"], name="django_sse_channel_id")],
            },
        ),
        migrations.CreateModel(
            name="PublishLock",
            fields=[("id", models.PositiveSmallIntegerField(primary_key=True, serialize=False))],
        ),
        migrations.RunPython(create_lock_row, migrations.RunPython.noop),
    ]
