"""The cross-origin test's views: a page on one origin reads streams of another (test_browser_cors.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from django_sse import EventStreamView
from django_sse.signing import sign_subscription


def origin_page(request: HttpRequest) -> HttpResponse:
    """A page that opens ``new EventSource(?src=, {withCredentials: ?credentials=1})``.

    It records what happens in ``window``: ``received`` (the ``seq`` of each message), ``opens``,
    ``resets``, ``errors`` and ``state`` (the ``readyState`` at the last error: 2 is CLOSED).
    """
    return HttpResponse(ORIGIN_PAGE, content_type="text/html")


ORIGIN_PAGE = """<!doctype html><title>origin</title><script>
window.received = []; window.opens = 0; window.errors = 0; window.state = null; window.resets = 0;
const params = new URLSearchParams(location.search);
const source = new EventSource(params.get("src"), {withCredentials: params.get("credentials") === "1"});
source.onopen = () => { window.opens += 1; };
source.onmessage = (e) => { window.received.push(JSON.parse(e.data).seq); };
source.addEventListener("reset", () => { window.resets += 1; });
source.onerror = () => { window.errors += 1; window.state = source.readyState; };
window.source = source;
</script>"""


def sign_view(request: HttpRequest) -> JsonResponse:
    """A token for ``?channels=a,b`` (``?expires_in=`` seconds, 60 by default), as the origin's own view
    would sign one for its page; for the logged-in user, if any."""
    user = request.user if request.user.is_authenticated else None
    token = sign_subscription(
        request.GET["channels"].split(","), expires_in=float(request.GET.get("expires_in", "60")), user=user
    )
    return JsonResponse({"token": token})


class MembersStream(EventStreamView):
    """The channels in the URL, for logged-in users only (the session cookie)."""

    retry = 200

    def get_channels(self, request, names):
        return names.split(",")

    def has_channel_permission(self, request, channel):
        return request.user.is_authenticated


class TokenStream(MembersStream):
    """The same, for a logged-in user or with a ``?token=`` that grants the channels."""

    subscription_token = "token"

    def has_channel_permission(self, request, channel):
        return request.subscription is not None or request.user.is_authenticated
