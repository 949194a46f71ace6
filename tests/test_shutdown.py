import signal

from django_sse.delivery import shutdown


def test_install_chains_the_previous_handler_once(monkeypatch):
    calls: list[int] = []
    closed: list[str] = []
    monkeypatch.setattr("django_sse.backends.close_backend", closed.append)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
        shutdown.install()
        shutdown.install()  # idempotent: one link in the chain
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
        assert calls == [signal.SIGTERM]
        assert closed == ["server shutting down"]
    finally:
        signal.signal(signal.SIGTERM, previous)
