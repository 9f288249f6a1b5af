"""Run the web app under uvicorn on a socket bound here first, so that a taken port or a bad
host is a one-line error and the printed URL carries the real port (``--port 0`` picks one)."""

from __future__ import annotations

import ipaddress
import socket
import webbrowser
from typing import Callable

import click
import uvicorn

from ..errors import EnhanceEdgeError
from .app import create_app
from .service import UpscaleService

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]
# Connections beyond the upscale queue, for the page, its static files and /api/models.
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


def serve(service: UpscaleService, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False,
          echo: Callable[..., None] = click.echo) -> None:
    """Serve the page and API until interrupted. ``echo(text, err=bool)`` reports to the user."""
    service.catalog.describe()  # opens the bundled models now: a broken install fails here, not per request
    loopback = is_loopback(host)
    if not loopback:
        echo(f"warning: listening on {host}, so other machines on the network can use this upscaler "
             "(there is no login); use --host 127.0.0.1 to keep it on this computer", err=True)
    sock = bind(host, port)
    url = page_url(host, sock.getsockname()[1])
    allowed_hosts = sorted(set(LOOPBACK_NAMES + [host])) if loopback else None
    app = create_app(service, allowed_hosts=allowed_hosts)
    config = uvicorn.Config(app, log_level="info", server_header=False,
                            limit_concurrency=service.limits.max_waiting + 1 + SPARE_CONNECTIONS)
    echo(f"enhance-edge is serving on {url}  (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(url)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C, then re-raises it
        pass
    finally:
        sock.close()
    echo("enhance-edge stopped")
