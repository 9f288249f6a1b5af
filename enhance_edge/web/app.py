"""The Starlette application: the page, its static files and a small HTTP API.

    GET  /                    the upscaling page
    GET  /api/models          bundled models, precisions and the server's limits (JSON)
    POST /api/upscale         multipart: image (file), model, precision, job -> the upscaled image
    GET  /api/progress/{job}  where the upscale sent with that job id is (JSON)

Errors are JSON ``{"error": "<the CLI's one-line message>"}`` with 400 (malformed request),
413 (over the upload size limit), 422 (not a readable image, over the pixel limit, unknown
model or precision), 503 (queue full) or 500 (a server-side fault, which never stops the server).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import python_multipart  # noqa: F401  Starlette needs it for uploads but imports it only on first use
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import EnhanceEdgeError, ImageError
from .service import BadRequest, MiB, ServerBusy, UploadTooLarge, UpscaleService

STATIC = Path(__file__).parent / "static"
# Multipart boundaries, part headers and the model/precision fields on top of the image itself.
FORM_OVERHEAD_BYTES = 64 * 1024
log = logging.getLogger("enhance_edge.web")

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


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_of(error: EnhanceEdgeError) -> int:
    """The HTTP status for a library error: the client's fault is 4xx, the server's 500."""
    if isinstance(error, UploadTooLarge):
        return 413
    if isinstance(error, (ImageError, BadRequest)):
        return 422
    if isinstance(error, ServerBusy):
        return 503
    return 500


def limit_body(receive: Receive, limit: int, error: str) -> Receive:
    """A receive channel that raises UploadTooLarge(error) once the body passes ``limit``
    bytes, for uploads without a Content-Length (chunked) or with a false one."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise UploadTooLarge(error)
        return message

    return limited


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
    limited = Request(request.scope, limit_body(request.receive, body_limit, too_large))
    try:
        async with limited.form(max_files=1, max_fields=4) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "send the image as a multipart/form-data file field named 'image'")
            # With one file allowed and that file the image, the other fields are text.
            result = await run_in_threadpool(service.upscale_upload, upload.file, upload.filename,
                                             form.get("model"), form.get("precision"), form.get("job"))
    except EnhanceEdgeError as exc:
        headers = {"retry-after": "2"} if isinstance(exc, ServerBusy) else None
        return error_response(status_of(exc), str(exc), headers)
    except HTTPException:
        raise
    except Exception:  # a bug or an exhausted machine must cost one request, never the server
        log.exception("upscale request failed")
        return error_response(500, "internal error while upscaling; the server log has the details")
    width, height = result.output_size
    return Response(result.data, media_type=result.media_type, headers={
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


def create_app(service: UpscaleService | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The web app. ``allowed_hosts`` (Host header names) guards a loopback-only server
    against DNS rebinding; None accepts any Host."""
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/models", list_models),
            Route("/api/upscale", upscale, methods=["POST"]),
            Route("/api/progress/{job}", job_progress),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: http_error},
    )
    app.state.service = service or UpscaleService()
    return app
