"""django_sse.admin: history in Django's admin, read-only, for staff with the view permission.

In a process of its own, on settings with the admin installed (tests/project/settings_admin.py):
Django's test client, logged in as a staff user, reads the admin pages.
"""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT, environment

SCRIPT = r"""
import django
django.setup()
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment

from django_sse import publish

setup_test_environment()
call_command("migrate", verbosity=0)
first = publish("news", {"headline": "rates fall"}, event="story")
second = publish("sport", {"score": "2-1"})
long = publish("news", "x" * 500)

staff = User.objects.create_user("staff", password="pw", is_staff=True)
staff.user_permissions.add(Permission.objects.get(codename="view_storedevent"))
client = Client()
client.force_login(staff)

def show(name, response):
    print(name, response.status_code, flush=True)
    return response.content.decode()

page = show("changelist", client.get("/admin/django_sse/storedevent/"))
print("lists all", all(f">{e.id}<" in page for e in (first, second, long)))
print("newest first", page.index(f">{long.id}<") < page.index(f">{first.id}<"))
print("preview cut", "x" * 79 + "\u2026" in page and "x" * 81 not in page)
page = show("search", client.get("/admin/django_sse/storedevent/", {"q": "rates"}))
print("search in data", f">{first.id}<" in page and f">{second.id}<" not in page)
page = show("by channel", client.get("/admin/django_sse/storedevent/", {"q": "sport"}))
print("search by channel", f">{second.id}<" in page and f">{first.id}<" not in page)
page = show("detail", client.get(f"/admin/django_sse/storedevent/{first.id}/change/"))
print("read-only", "rates fall" in page and 'name="data"' not in page and 'name="_save"' not in page)
show("add", client.get("/admin/django_sse/storedevent/add/"))
show("delete", client.get(f"/admin/django_sse/storedevent/{first.id}/delete/"))
client.post(f"/admin/django_sse/storedevent/{first.id}/change/", {"data": "forged"})
from django_sse.models import StoredEvent
print("unchanged", StoredEvent.objects.get(id=int(first.id)).data == '{"headline": "rates fall"}')

outsider = User.objects.create_user("outsider", password="pw", is_staff=True)
client.force_login(outsider)
show("without the view permission", client.get("/admin/django_sse/storedevent/"))
"""

EXPECTED = """changelist 200
lists all True
newest first True
preview cut True
search 200
search in data True
by channel 200
search by channel True
detail 200
read-only True
add 403
delete 403
unchanged True
without the view permission 403
"""


def test_staff_read_history_in_the_admin_and_cannot_change_it() -> None:
    env = {**environment("tests.project.settings_admin"), "SSE_TEST_DB": ":memory:"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED, result.stdout + result.stderr
