"""The project served through a Channels ProtocolTypeRouter, with a consumer beside Django's views."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django_asgi_app = get_asgi_application()

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.http import AsyncHttpConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402


class PingConsumer(AsyncHttpConsumer):
    """Uses the thread that thread-sensitive calls share outside a request context."""

    async def handle(self, body):
        value = await database_sync_to_async(lambda: "consumer-pong")()
        await self.send_response(200, value.encode(), headers=[(b"Content-Type", b"text/plain")])


application = ProtocolTypeRouter(
    {"http": URLRouter([path("consumer/", PingConsumer.as_asgi()), re_path(r"", django_asgi_app)])}  # type: ignore[arg-type]
)
