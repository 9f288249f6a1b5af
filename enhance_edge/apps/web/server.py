"""Run the web app under uvicorn on a socket bound here first, so that a taken port or a bad
host is a one-line error and the printed URL carries the real port (``--port 0`` picks one).

uvicorn's own limits count idle connections and have no deadline for a request's headers, so
a few clients that open connections and send half a request would lock everyone else out;
GuardedH11Protocol adds the deadline and a connection limit that such clients cannot fill, and
a limit of its own on uploads being received, so that slow uploads cannot fill the connections
the page and its reads need.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import ipaddress
import json
import socket
import webbrowser
from typing import Callable

import click
import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from ...errors import EnhanceEdgeError
from ...io.fileio import terminate_as_interrupt
from .app import DROPPED_REASON, HttpLimits, create_app, log
from .service import UpscaleService

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]
# A connection that has waited this long for a request's headers may be closed to make room
# (a client that means to send one does so in milliseconds; a new connection is never evicted).
EVICTABLE_AFTER_SECONDS = 1.0
# How long a refused connection is still read (and what comes discarded) before it is closed:
# closing with unread data resets it, and the client may lose the answer.
LINGER_SECONDS = 2.0
# Connections beyond those of uploads (being received, and in the upscale queue), for the page,
# its static files and /api/models.
SPARE_CONNECTIONS = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise EnhanceEdgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise EnhanceEdgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def page_url(host: str, port: int) -> str:
    """The URL to open: a wildcard bind is reached through loopback on this machine."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def json_response_bytes(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A whole HTTP/1.1 error response, JSON as the app's, that closes the connection: for
    answers given outside any request (h11 can only answer a request it has parsed)."""
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with what its options lack, so that stalled clients cannot lock
    others out: each request's headers must arrive within ``limits.header_timeout`` seconds
    (408), and past ``max_connections`` open connections the one that has waited longest for
    a request's headers is closed to make room (503 only when every connection is busy with a
    request). At most ``max_bodies`` request bodies (uploads) are received at once: past that,
    the slowest upload under ``limits.upload_min_rate`` is dropped to make room (408), or the new
    one is refused (503), so that uploads, however slow, leave the other connections to reads.
    Its own errors are JSON like the app's."""

    def __init__(self, config, server_state, app_state, _loop=None, *, limits: HttpLimits, max_connections: int,
                 max_bodies: int):
        super().__init__(config, server_state, app_state, _loop)
        self.limits, self.max_connections, self.max_bodies = limits, max_connections, max_bodies
        self.idle_since: float = 0.0
        self.header_timer: asyncio.TimerHandle | None = None
        self.refused = False
        self.body_since: float | None = None  # when the body of the request being received began
        self.body_bytes = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._expect_headers()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:  # a refused client's request is read and dropped (LINGER_SECONDS)
            return
        if self.body_since is not None:
            self.body_bytes += len(data)
        super().data_received(data)
        if self.body_since is None and self.receiving_body():
            self.body_since = self.loop.time()
            self._admit_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._expect_headers()  # of the connection's next request

    def _expect_headers(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.idle_since = self.loop.time()
        self.body_since, self.body_bytes = None, 0
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_overdue)

    def awaiting_headers(self) -> bool:
        """Between requests, or partway through a request's headers: nothing to lose by closing it."""
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing() and not self.refused

    def receiving_body(self) -> bool:
        """Whether a request's body is arriving: an upload that holds one of ``max_bodies``."""
        return self.conn.their_state is h11.SEND_BODY and not self.refused and not self.transport.is_closing()

    def body_seconds(self, now: float) -> float:
        """How long the body being received has been arriving."""
        return 0.0 if self.body_since is None else now - self.body_since

    def body_rate(self, now: float) -> float:
        """Bytes a second the body being received has come at."""
        return self.body_bytes / max(self.body_seconds(now), 1e-3)

    def _admit_body(self) -> None:
        """Keep the bodies being received to ``max_bodies``: drop the slowest that has had
        EVICTABLE_AFTER_SECONDS to show its rate and is under the rate asked for, or else this one."""
        bodies = [other for other in self.connections if other is not self and isinstance(other, GuardedH11Protocol)
                  and other.receiving_body()]
        if len(bodies) < self.max_bodies:
            return
        now, rate = self.loop.time(), self.limits.upload_min_rate
        slow = [other for other in bodies
                if other.body_seconds(now) >= EVICTABLE_AFTER_SECONDS and other.body_rate(now) < rate]
        if not slow:
            self._drop_request(503, f"the server is receiving as many uploads as it takes at once "
                                    f"({self.max_bodies}); try again shortly", (("retry-after", "2"),))
            return
        victim = min(slow, key=lambda other: other.body_rate(now))
        victim._drop_request(408, f"upload too slow: {victim.body_bytes:,} bytes in {victim.body_seconds(now):.0f} s; "
                                  f"dropped to make room for another, as this server receives at most "
                                  f"{self.max_bodies} uploads at once and asks for {rate / 1024:g} KiB/s")

    def _drop_request(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """_refuse a request the app has begun to handle: its app sees the client gone, and
        its answer is discarded."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.scope["state"][DROPPED_REASON] = f"dropped the upload ({status}): {message}"
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._refuse(status, message, headers)

    def _headers_overdue(self) -> None:
        if not self.awaiting_headers():
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it is cut off
            self._refuse(408, f"request headers not received within {self.limits.header_timeout:g} s")
        else:
            self.transport.close()

    def _make_room(self) -> None:
        evictable_since = self.loop.time() - min(EVICTABLE_AFTER_SECONDS, self.limits.header_timeout / 2)
        idle = [other for other in self.connections if other is not self and isinstance(other, GuardedH11Protocol)
                and other.awaiting_headers() and other.idle_since <= evictable_since]
        if idle:
            min(idle, key=lambda other: other.idle_since).transport.close()
        else:
            self._refuse(503, f"the server has {self.max_connections} connections busy, the most it serves at "
                              f"once; try again shortly", (("retry-after", "2"),))

    def _refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer ``status`` and end the connection: no more reading of requests, our side shut
        at once, the socket closed when the client closes its side or after LINGER_SECONDS."""
        self.refused = True
        self.connections.discard(self)  # lingering, it no longer counts against the limit
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.transport.write(json_response_bytes(status, message, headers))
        try:
            self.transport.write_eof()
        except OSError:  # the client has gone already
            self.transport.close()
            return
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"malformed HTTP request ({msg.rstrip('.')})")


def make_server(service: UpscaleService, allowed_hosts: list[str] | None = None,
                http_limits: HttpLimits | None = None) -> uvicorn.Server:
    """The uvicorn server for the app, ready for ``run(sockets=[...])``."""
    http_limits = http_limits or HttpLimits()
    app = create_app(service, allowed_hosts=allowed_hosts, http_limits=http_limits)
    uploads = service.limits.max_waiting + 1  # as many bodies may arrive as the queue holds
    protocol = functools.partial(GuardedH11Protocol, limits=http_limits, max_bodies=uploads,
                                 max_connections=2 * uploads + SPARE_CONNECTIONS)
    # The app's own lines (a client gone, a failed request) in the log beside uvicorn's, as its are.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"][log.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # uvicorn calls `http` as the protocol's class (its annotation allows no partial)
    return uvicorn.Server(uvicorn.Config(app, http=protocol, log_level="info",  # type: ignore[arg-type]
                                         log_config=log_config, server_header=False))


def serve(service: UpscaleService, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False,
          echo: Callable[..., None] = click.echo, http_limits: HttpLimits | None = None) -> None:
    """Serve the page and API until interrupted (Ctrl-C or SIGTERM). ``echo(text, err=bool)``
    reports to the user."""
    service.catalog.describe()  # opens the bundled models now: a broken install fails here, not per request
    loopback = is_loopback(host)
    if not loopback:
        echo(f"warning: listening on {host}, so other machines on the network can use this upscaler "
             "(there is no login); use --host 127.0.0.1 to keep it on this computer", err=True)
    sock = bind(host, port)
    url = page_url(host, sock.getsockname()[1])
    allowed_hosts = sorted(set(LOOPBACK_NAMES + [host])) if loopback else None
    server = make_server(service, allowed_hosts, http_limits)
    try:
        # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again: here
        # both end as KeyboardInterrupt, so that either way the server says it stopped. From
        # before the URL is shown, which is when a supervisor may start sending signals.
        with terminate_as_interrupt():
            echo(f"enhance-edge is serving on {url}  (Ctrl-C to stop)")
            if open_browser:
                webbrowser.open(url)
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    echo("enhance-edge stopped")
