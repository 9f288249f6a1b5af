"""Fixtures for the web app: an API client on the bundled model, a live `enhance-edge serve`.

The web extra and the browser are optional installs: where one is missing these tests skip
with the install line, except under CI (CI=true), which must have installed them and fails.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BROWSER_INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
# Root in a container: no sandbox, no GPU, and no traffic of Chromium's own to the outside.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1600"]
WEB_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
               "httpx2": "httpx2"}


def skip_or_fail(reason: str) -> None:
    """Skip with the reason on a developer's machine; fail in CI, where it must not happen."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def web_extra() -> None:
    missing = [package for module, package in WEB_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        skip_or_fail(f"the web tests need {', '.join(missing)}: pip install -e \".[web,test]\"")


@pytest.fixture
def make_client():
    """make_client(limits=None) -> a started TestClient on a fresh app and service."""
    from starlette.testclient import TestClient

    from enhance_edge.apps.web.app import create_app
    from enhance_edge.apps.web.service import UpscaleService

    clients = []

    def make(limits=None, **client_options):
        client = TestClient(create_app(UpscaleService(limits)), **client_options)
        clients.append(client.__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def read_line(stream, timeout: float) -> str:
    """One line from a subprocess pipe, or '' after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline()


class LiveServer:
    """`enhance-edge serve --port 0` in a subprocess, as a person starts it."""

    def __init__(self, log: Path):
        self.log = log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from enhance_edge.apps.cli import main; main()", "serve", "--port", "0"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.first_line = read_line(self.process.stdout, timeout=60)
        # "enhance-edge is serving on http://127.0.0.1:PORT/  (Ctrl-C to stop)"
        words = self.first_line.split()
        self.url = words[4] if len(words) > 4 else None

    def stop(self) -> int:
        """Ctrl-C, as in a terminal; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path / "serve-stderr.log")
    try:
        assert server.url is not None and server.url.startswith("http://127.0.0.1:"), \
            (server.first_line, server.log.read_text())
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium driven by Selenium through Debian's chromedriver."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    missing = [name for name, found in (("selenium", importlib.util.find_spec("selenium")), ("chromium", chromium),
                                        ("chromedriver", chromedriver)) if found is None]
    if missing:
        skip_or_fail(f"no headless browser ({', '.join(missing)} missing): {BROWSER_INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Gate:
    """Holds every upscale until opened, and records how many ran at once and in all."""

    def __init__(self, monkeypatch):
        from enhance_edge.core.upscaler import Upscaler

        self.open = threading.Event()
        self.entered = threading.Event()  # an upscale has started
        self.running = self.most_at_once = self.started = 0
        self._lock = threading.Lock()
        original = Upscaler.upscale

        def held_upscale(upscaler, image, **options):
            with self._lock:
                self.running += 1
                self.started += 1
                self.most_at_once = max(self.most_at_once, self.running)
            self.entered.set()
            try:
                assert self.open.wait(30), "the test never opened the gate"
                return original(upscaler, image, **options)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(Upscaler, "upscale", held_upscale)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate(monkeypatch)
    yield gate
    gate.open.set()  # a failed test must not leave worker threads held


def multipart(fields: dict[str, str], image: bytes, name: str = "face.png") -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload of ``image`` and text ``fields``."""
    boundary = "enhance-edge-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
             for key, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class LoopbackServer:
    """The real server (uvicorn with GuardedH11Protocol) in a thread on 127.0.0.1, and raw
    sockets to it, for what a test client cannot do: stall, vanish, half-send."""

    def __init__(self, service, http_limits):
        from enhance_edge.apps.web.server import LOOPBACK_NAMES, bind, make_server

        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.service = service
        self.server = make_server(service, LOOPBACK_NAMES, http_limits)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "the server did not start"
        self.sockets: list[socket.socket] = []

    def connect(self, timeout: float = 30) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.sockets.append(sock)
        return sock

    def head(self, method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 *(f"{key}: {value}" for key, value in (headers or {}).items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def upload_bytes(self, image: bytes, **fields) -> bytes:
        body, content_type = multipart(fields, image)
        return self.head("POST", "/api/upscale", {"Content-Type": content_type,
                                                  "Content-Length": str(len(body))}) + body

    @staticmethod
    def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of one response (read to its Content-Length)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before a whole response: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {key.lower(): value.strip() for key, _, value in (line.partition(":") for line in header_lines)}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(status_line.split()[1]), headers, body

    @staticmethod
    def closed_by_server(sock: socket.socket, within: float) -> bool:
        """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
        sock.settimeout(within)
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass
        return True

    def stop(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def loopback_server():
    """loopback_server(service=None, http_limits=None) -> a started LoopbackServer."""
    from enhance_edge.apps.web.service import UpscaleService

    servers = []

    def start(service=None, http_limits=None):
        servers.append(LoopbackServer(service or UpscaleService(), http_limits))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
