"""EventStreamMiddleware in a chain with GZipMiddleware, in sync and async mode."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.middleware.gzip import GZipMiddleware
from django.test import RequestFactory

from django_sse import EventStreamResponse
from django_sse.middleware import EventStreamMiddleware


def sse_request():
    return RequestFactory().get("/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")


def plain_stream(request):
    return StreamingHttpResponse(iter([b"data: a\n\n", b"data: b\n\n"]), content_type="text/event-stream")


def our_stream(request):
    return EventStreamResponse(["a", "b"], retry=None)


def html_page(request):
    return HttpResponse("<p>" + "x" * 1000 + "</p>")


def chain(view, *, asynchronous=False):
    """GZip above us, as Django's docs place it: GZip sees the response after us."""
    if asynchronous:
        sync_view = view

        async def view(request):
            return sync_view(request)

    return GZipMiddleware(EventStreamMiddleware(view))


def run(handler, request):
    return asyncio.run(handler(request)) if iscoroutinefunction(handler) else handler(request)


def body(response):
    return b"".join(response)


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("view", [plain_stream, our_stream])
def test_event_streams_are_never_compressed(view, asynchronous):
    response = run(chain(view, asynchronous=asynchronous), sse_request())
    assert not response.has_header("Content-Encoding")
    assert b"data: a\n\n" in body(response)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_other_responses_are_still_compressed(asynchronous):
    response = run(chain(html_page, asynchronous=asynchronous), sse_request())
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content).startswith(b"<p>xxx")


def test_hand_built_stream_is_adopted_with_headers_and_a_first_chunk():
    response = run(chain(plain_stream), sse_request())
    assert isinstance(response, EventStreamResponse)
    assert response["X-Accel-Buffering"] == "no"
    assert response["Cache-Control"] == "no-cache"
    assert body(response) == b":\n\ndata: a\n\ndata: b\n\n"


def test_content_type_with_parameters_is_recognised():
    def view(request):
        return StreamingHttpResponse(iter([b"data: a\n\n"]), content_type="text/event-stream; charset=utf-8")

    assert isinstance(run(chain(view), sse_request()), EventStreamResponse)


def test_middleware_matches_the_chain_mode():
    async def async_view(request):
        return html_page(request)

    assert iscoroutinefunction(EventStreamMiddleware(async_view))
    assert not iscoroutinefunction(EventStreamMiddleware(html_page))
    assert EventStreamMiddleware.sync_capable and EventStreamMiddleware.async_capable


def test_wrong_order_compresses_which_is_why_the_check_exists():
    # GZip below us handles the response first; nothing can undo that (see checks E004).
    response = EventStreamMiddleware(GZipMiddleware(plain_stream))(sse_request())  # type: ignore[arg-type]
    assert isinstance(response, HttpResponseBase)
    assert response["Content-Encoding"] == "gzip"
