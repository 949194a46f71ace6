"""The built package, as a user gets it: the sdist and wheel build, their metadata passes
``twine check``, and the wheel, installed by its distribution name into a fresh venv outside the
checkout, serves a stream on daphne to a project of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.servers import ROOT, free_port, stop_process
from tests.sse_client import wait_for

DISTRIBUTION = "django-sse-events"

pytestmark = pytest.mark.xdist_group("package")

SETTINGS = """
SECRET_KEY = "smoke"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "smoke.urls"
INSTALLED_APPS = ["daphne", "django.contrib.contenttypes", "django.contrib.auth", "django_sse"]
MIDDLEWARE = ["django_sse.middleware.EventStreamMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "smoke.sqlite3"}}
ASGI_APPLICATION = "smoke.asgi.application"
USE_TZ = True
"""

URLS = """
from django.urls import path
from django_sse import EventStreamView


class News(EventStreamView):
    channels = ["news"]


urlpatterns = [path("news/", News.as_view())]
"""

ASGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smoke.settings")
from django.core.asgi import get_asgi_application
application = get_asgi_application()
"""


def run(command: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The sdist first, then the wheel from it: what the sdist lacks, the wheel lacks too.
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    return out


def test_sdist_and_wheel_have_the_distribution_name_and_valid_metadata(dist: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    assert sdist.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=dist)
    names = zipfile.ZipFile(wheel).namelist()
    assert "django_sse/py.typed" in names
    assert any(n.startswith("django_sse/migrations/0001") for n in names)
    assert any(n.startswith("django_sse/management/commands/") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "example_project/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Name: {DISTRIBUTION}\n" in text


def test_the_installed_wheel_serves_a_stream_on_daphne(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    assert any(dist.glob("*.whl")), "no wheel was built"
    # By its name, from the built wheel: pip resolves the dependencies from the registry.
    run([str(python), "-m", "pip", "install", "-q", "--find-links", str(dist), DISTRIBUTION], cwd=tmp_path)
    shown = run([str(python), "-m", "pip", "show", DISTRIBUTION], cwd=tmp_path).stdout
    assert "Location: " + str(venv) in shown.replace("\\", "/")

    project = tmp_path / "project"
    (project / "smoke").mkdir(parents=True)
    for name, text in {"__init__.py": "", "settings.py": SETTINGS, "urls.py": URLS, "asgi.py": ASGI}.items():
        (project / "smoke" / name).write_text(textwrap.dedent(text))
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "smoke.settings", "PYTHONPATH": str(project)}
    django_admin = [str(python), "-m", "django"]
    # The package comes from the venv, not from the checkout.
    where = run([str(python), "-c", "import django_sse; print(django_sse.__file__)"], cwd=project, env=env)
    assert where.stdout.startswith(str(venv)), where.stdout
    checked = run([*django_admin, "check"], cwd=project, env=env)  # exits non-zero on an error
    assert "django_sse.E" not in checked.stdout + checked.stderr
    run([*django_admin, "migrate", "--no-input", "-v", "0"], cwd=project, env=env)

    port = free_port()
    daphne = subprocess.Popen(
        [str(venv / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port), "smoke.asgi:application"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sock = _connect(port)
        with sock:
            sock.sendall(b"GET /news/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            head = _read_until(sock, b"id: ")  # the stream's position: it is subscribed
            assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
            publish = "from django_sse import publish; print(publish('news', {'hello': 'wheel'}).id)"
            event_id = run(
                [*django_admin, "shell", "-v", "0", "-c", publish], cwd=project, env=env
            ).stdout.split()[-1]
            body = _read_until(sock, b'{"hello": "wheel"}')
            assert f"id: {event_id}\n".encode() in body
    finally:
        stop_process(daphne)


def _connect(port: int) -> socket.socket:
    """A connection to daphne once it listens (waiting on the port, bounded by 30 s)."""

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    assert wait_for(listening, timeout=30), f"daphne did not listen on 127.0.0.1:{port} within 30 s"
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_until(sock: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    """Bytes from the socket up to and including the line with ``marker`` (bounded by size and timeout)."""
    data = b""
    while marker not in data or not data.split(marker, 1)[1].count(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, f"the stream ended before {marker!r}: {data!r}"
        data += chunk
        assert len(data) < limit, data
    return data
