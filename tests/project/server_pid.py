"""Tells which server process answered, so that tests can see their clients spread over processes."""

import os


def server_pid_middleware(get_response):
    def middleware(request):
        response = get_response(request)
        response["X-Server-Pid"] = str(os.getpid())
        return response

    return middleware
