"""The HTTP side of the test server: bytes in, a :class:`~.state.Reply` out, bytes back."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .state import Reply

Respond = Callable[[str, str, dict[str, str], bytes], Reply]


def handler_for(respond: Respond) -> type[BaseHTTPRequestHandler]:
    """A request handler class that answers every method through ``respond``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect
        server_version = "GitHub.com"
        sys_version = ""
        wbufsize = 1 << 16  # one send per answer: no Nagle / delayed-ACK stalls

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = respond(self.command, self.path, headers, raw)
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the server's recorded requests instead."""

    return Handler
