"""The Starlette application: the page, its static files and a small HTTP API.

    GET  /                    the upscaling page
    GET  /api/models          bundled models, precisions, quality, strength control and the server's limits (JSON)
    POST /api/upscale         multipart: image (file), model, precision, strength, job -> the upscaled image
    GET  /api/progress/{job}  where the upscale sent with that job id is (JSON)

Every error is JSON ``{"error": "<the CLI's one-line message>"}``: 400 (malformed request, or
a Host this server does not answer to), 403 (a POST from another web page), 408 (an upload
sent too slowly), 413 (over the upload size limit), 422 (not a readable image, over the pixel
limit, unknown model or precision, a strength that is not auto or 0..1, or a number for a model
without the strength input), 503 (queue full) or 500 (a server-side fault, which never
stops the server). Errors answered before the body is read close the connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio

import python_multipart  # noqa: F401  Starlette needs it for uploads but imports it only on first use
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import __version__
from ...errors import EnhanceEdgeError, ImageError
from .service import BadRequest, ClientGone, MiB, ServerBusy, UploadStalled, UploadTooLarge, UpscaleService

STATIC = Path(__file__).parent / "static"
# Multipart boundaries, part headers and the model/precision/strength/job fields on top of the image itself.
FORM_OVERHEAD_BYTES = 64 * 1024
log = logging.getLogger("enhance_edge.apps.web")
# Methods that change nothing: browsers send them cross-site freely (links, images), so they carry no guard.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of requests a browser makes for this server's own page, or that a person typed.
OWN_SITE = frozenset({"same-origin", "none"})
# Errors that may come before the request's body is read: the connection closes after them
# rather than read an upload that is refused anyway.
CLOSES_CONNECTION = frozenset({400, 403, 408, 413})
# Where in a request's scope["state"] the server (server.py) says why it dropped the request
# while the app read it: the app then sees only the client gone.
DROPPED_REASON = "enhance_edge.dropped"


@dataclass(frozen=True)
class HttpLimits:
    """Time limits that keep stalled or vanished clients from holding the server.

    ``header_timeout``: seconds a connection may take to send a request's headers.
    ``upload_grace`` and ``upload_min_rate``: an upload may take ``upload_grace`` seconds for
    anything, and must arrive at ``upload_min_rate`` bytes a second on average after that (408).
    """

    header_timeout: float = 10.0
    upload_grace: float = 10.0
    upload_min_rate: float = 32 * 1024

    def __post_init__(self):
        for name in ("header_timeout", "upload_grace", "upload_min_rate"):
            if not getattr(self, name) > 0:
                raise EnhanceEdgeError(f"{name} must be > 0, got {getattr(self, name)}")

# Everything the page needs comes from this server; uploads become blob: URLs in the page.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """Add SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    if status in CLOSES_CONNECTION:
        headers = {**(headers or {}), "connection": "close"}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port: "localhost:8000" -> "localhost", "[::1]:8000" -> "[::1]"."""
    if host_header.startswith("["):
        return host_header.partition("]")[0] + "]"
    return host_header.partition(":")[0]


def foreign_origin(method: str, headers: Headers, scheme: str) -> str | None:
    """Why a request comes from another web page than this server's own, or None.

    Browsers name the page a request comes from (Origin, Sec-Fetch-Site), so any site the
    user visits could otherwise make the user's browser POST uploads here; requests without
    those headers (curl, scripts) come from no web page and pass."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in OWN_SITE:
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    own = f"{scheme}://{headers.get('host', '')}"
    if origin is not None and origin.lower() != own.lower():
        return f"Origin {origin!r} is not this server ({own!r})"
    return None


class RequestGuard:
    """Refuse, in JSON and before the app reads anything, a Host header not in
    ``allowed_hosts`` (400: DNS rebinding against a loopback server; None accepts any) and a
    state-changing request from another web page (403, see foreign_origin)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str] | None = None):
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else {name.lower() for name in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            refusal = None
            if self.allowed_hosts is not None and host_name(host).lower() not in self.allowed_hosts:
                refusal = error_response(400, f"Host {host!r} is not a name this server answers to "
                                              f"({', '.join(sorted(self.allowed_hosts))})")
            elif (reason := foreign_origin(scope["method"], headers, scope["scheme"])) is not None:
                refusal = error_response(403, f"refused a request from another web page: {reason}; only the "
                                              f"enhance-edge page itself, and clients that send no Origin "
                                              f"(curl, scripts), may use this server")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def status_of(error: EnhanceEdgeError) -> int:
    """The HTTP status for a library error: the client's fault is 4xx, the server's 500."""
    if isinstance(error, UploadTooLarge):
        return 413
    if isinstance(error, (ImageError, BadRequest)):
        return 422
    if isinstance(error, ServerBusy):
        return 503
    if isinstance(error, UploadStalled):
        return 408
    if isinstance(error, ClientGone):
        return 499  # nginx's "client closed request": only the log sees it
    return 500


def guarded_body(receive: Receive, limit: int, too_large: str, limits: HttpLimits) -> Receive:
    """A receive channel that raises UploadTooLarge(too_large) once the body passes ``limit``
    bytes (uploads without a Content-Length, chunked, or with a false one), and UploadStalled
    when the body arrives slower than ``limits`` allow."""
    received = 0
    start = time.monotonic()

    async def guarded() -> Message:
        nonlocal received
        deadline = start + limits.upload_grace + received / limits.upload_min_rate
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                message = await receive()
        except TimeoutError:
            raise UploadStalled(f"upload too slow: {received:,} bytes in {time.monotonic() - start:.0f} s; this "
                                f"server asks for {limits.upload_min_rate / 1024:g} KiB/s after the first "
                                f"{limits.upload_grace:g} s") from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise UploadTooLarge(too_large)
        return message

    return guarded


async def until_disconnected(receive: Receive) -> None:
    """Return once the client has closed its connection (call it after the body is read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def client_name(request: Request) -> str:
    """host:port of the request's client, for the log."""
    return f"{request.client.host}:{request.client.port}" if request.client else "client"


def content_disposition(filename: str) -> str:
    """An attachment header that survives non-ASCII names (RFC 6266 / 5987)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def list_models(request: Request) -> Response:
    service: UpscaleService = request.app.state.service
    try:
        models = await run_in_threadpool(service.catalog.describe)
    except EnhanceEdgeError as exc:
        return error_response(status_of(exc), str(exc))
    limits = service.limits
    return JSONResponse({
        "version": __version__,
        "default_model": service.catalog.default_model,
        "models": models,
        "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                   "max_waiting": limits.max_waiting},
    })


async def upscale(request: Request) -> Response:
    service: UpscaleService = request.app.state.service
    body_limit = service.limits.max_upload_bytes + FORM_OVERHEAD_BYTES
    too_large = f"upload is over {service.limits.max_upload_bytes / MiB:g} MiB, the most this server accepts"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        return error_response(413, too_large)
    limited = Request(request.scope, guarded_body(request.receive, body_limit, too_large,
                                                  request.app.state.http_limits))
    try:
        async with limited.form(max_files=1, max_fields=5) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "send the image as a multipart/form-data file field named 'image'")
            # A client that leaves while its request waits or runs must not keep its place or the model.
            abandoned = threading.Event()
            watcher = asyncio.ensure_future(until_disconnected(request.receive))
            watcher.add_done_callback(lambda task: None if task.cancelled() else service.queue.abandon(abandoned))
            try:
                # With one file allowed and that file the image, the other fields are text (Starlette
                # types them str | UploadFile: hence the ignores).
                result = await run_in_threadpool(service.upscale_upload, upload.file, upload.filename,
                                                 form.get("model"), form.get("precision"),  # type: ignore[arg-type]
                                                 form.get("job"), abandoned, form.get("strength"))  # type: ignore[arg-type]
            finally:
                watcher.cancel()
    except ClientDisconnect:  # the client left during its upload, or server.py dropped it: no one to answer
        reason = request.scope.get("state", {}).get(DROPPED_REASON, "the client closed the connection during its "
                                                                    "upload")
        log.info("%s: %s", client_name(request), reason)
        return error_response(499, reason)
    except EnhanceEdgeError as exc:
        if isinstance(exc, ClientGone):  # no one to answer: one line for the log
            log.info("%s: %s", client_name(request), exc)
        headers = {"retry-after": "2"} if isinstance(exc, ServerBusy) else None
        return error_response(status_of(exc), str(exc), headers)
    except HTTPException:
        raise
    except Exception:  # a bug or an exhausted machine must cost one request, never the server
        log.exception("upscale request failed")
        return error_response(500, "internal error while upscaling; the server log has the details")
    width, height = result.output_size
    strength = {} if result.strength is None else {"x-enhance-edge-strength": str(result.strength)}
    return Response(result.data, media_type=result.media_type, headers={**strength,
        "content-disposition": content_disposition(result.filename),
        "cache-control": "no-store",
        "server-timing": f"queue;dur={result.wait_seconds * 1000:.1f}, upscale;dur={result.seconds * 1000:.1f}",
        "x-enhance-edge-model": result.model,
        "x-enhance-edge-precision": result.precision,
        "x-enhance-edge-input-size": "{}x{}".format(*result.input_size),
        "x-enhance-edge-output-size": f"{width}x{height}",
    })


async def job_progress(request: Request) -> Response:
    service: UpscaleService = request.app.state.service
    progress = service.progress(request.path_params["job"])
    if progress is None:
        return error_response(404, "no such job in progress (it has finished, or has not started)")
    return JSONResponse(progress, headers={"cache-control": "no-store"})


async def http_error(request: Request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """What a bug outside the upscale answers (Starlette's own is plain text); Starlette logs it."""
    return error_response(500, "internal error; the server log has the details")


def create_app(service: UpscaleService | None = None, allowed_hosts: list[str] | None = None,
               http_limits: HttpLimits | None = None) -> Starlette:
    """The web app. ``allowed_hosts`` (Host header names) guards a loopback-only server
    against DNS rebinding; None accepts any Host. ``http_limits``: how slowly uploads may come."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/models", list_models),
            Route("/api/upscale", upscale, methods=["POST"]),
            Route("/api/progress/{job}", job_progress),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders), Middleware(RequestGuard, allowed_hosts=allowed_hosts)],
        exception_handlers={HTTPException: http_error, Exception: server_error},  # type: ignore[dict-item]
    )
    app.state.service = service or UpscaleService()
    app.state.http_limits = http_limits or HttpLimits()
    return app
