"""`enhance-edge serve`: the real server in a subprocess, its errors, and what it imports."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.apps.web.app import HttpLimits, log
from enhance_edge.apps.web.server import EVICTABLE_AFTER_SECONDS, is_loopback, page_url
from enhance_edge.apps.web.service import Limits, UpscaleService


def test_serve_prints_its_url_answers_and_stops_cleanly_on_ctrl_c(live_server):
    with urllib.request.urlopen(live_server.url + "api/models", timeout=30) as answer:
        assert json.load(answer)["default_model"] == "default"
    with urllib.request.urlopen(live_server.url, timeout=30) as answer:
        assert b"enhance-edge" in answer.read()
    assert live_server.stop() == 0


def test_a_taken_port_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.output == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_listening_beyond_this_computer_warns_first():
    # 192.0.2.1 is a documentation address no machine has: the warning comes, then binding fails.
    result = CliRunner().invoke(main, ["serve", "--host", "192.0.2.1", "--port", "0"])
    assert result.exit_code == 1
    first, second = result.output.splitlines()
    assert first.startswith("warning: listening on 192.0.2.1, so other machines on the network can use")
    assert second == "error: cannot listen on 192.0.2.1:0: Cannot assign requested address"


def test_loopback_hosts_and_page_urls():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("my-laptop")
    assert page_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/"
    assert page_url("::1", 8000) == "http://[::1]:8000/"


def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` raise ImportError
    monkeypatch.delitem(sys.modules, "enhance_edge.apps.web.server", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output == ('error: serve needs the \'web\' extra (uvicorn is not installed): '
                             'pip install "enhance-edge[web]"\n')


def test_the_runtime_does_not_import_the_web_framework_and_the_web_app_not_torch():
    code = ("import sys\n"
            "import enhance_edge, enhance_edge.apps.cli\n"
            "assert not {'starlette', 'uvicorn'} & set(sys.modules), 'web framework imported'\n"
            # as enhance_edge/apps/web/__init__.py says: limits (serve's defaults) at start, the rest for serve
            "assert 'enhance_edge.apps.web.limits' in sys.modules and not {'enhance_edge.apps.web.service', "
            "'enhance_edge.apps.web.app', 'enhance_edge.apps.web.server'} & set(sys.modules), 'web modules'\n"
            "import enhance_edge.apps.web.app, enhance_edge.apps.web.server\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the real server against stalled, oversized, malformed and vanishing clients --------------

def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((24, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_connections_that_send_half_their_headers_cannot_lock_others_out(loopback_server):
    server = loopback_server(http_limits=HttpLimits(header_timeout=60))
    stalled = []
    for _ in range(40):  # more than the connection limit (34 with the default queue)
        sock = server.connect()
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        stalled.append(sock)
    time.sleep(EVICTABLE_AFTER_SECONDS + 0.2)  # from now on they are the ones to go when room is needed
    for _ in range(3):
        sock = server.connect()
        sock.sendall(server.head("GET", "/api/models"))
        status, _, body = server.read_response(sock)
        assert status == 200, body
    assert sum(server.closed_by_server(sock, within=0.5) for sock in stalled) >= 40 - 34


def test_headers_that_do_not_arrive_in_time_get_408_and_the_connection_closes(loopback_server):
    server = loopback_server(http_limits=HttpLimits(header_timeout=0.5))
    partial, silent = server.connect(), server.connect()
    partial.sendall(b"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    status, headers, body = server.read_response(partial)
    assert (status, json.loads(body)) == (408, {"error": "request headers not received within 0.5 s"})
    assert headers["connection"] == "close" and server.closed_by_server(partial, within=5)
    assert server.closed_by_server(silent, within=5)  # a connection that never sent anything just closes


def test_an_upload_declared_too_large_is_answered_and_closed_without_reading_it(loopback_server):
    server = loopback_server()
    sock = server.connect()
    sock.sendall(server.head("POST", "/api/upscale", {"Content-Type": "multipart/form-data; boundary=x",
                                                      "Content-Length": str(100 * 2**20)}) + b"\0" * 65536)
    status, headers, body = server.read_response(sock)
    assert status == 413 and json.loads(body)["error"].startswith("upload is over 25 MiB")
    assert server.closed_by_server(sock, within=5)  # without the other 99.9 MiB being sent


def test_a_new_connection_past_the_limit_gets_a_json_503_when_none_can_make_room(loopback_server):
    server = loopback_server(http_limits=HttpLimits(header_timeout=60))
    held = [server.connect() for _ in range(34)]  # the limit, all too new to be closed for room
    for sock in held:
        sock.sendall(b"GET / HTTP/1.1\r\n")
    refused = server.connect()
    refused.sendall(server.head("GET", "/api/models"))  # read and dropped: the answer is not lost to a reset
    status, headers, body = server.read_response(refused)
    assert (status, headers["retry-after"]) == (503, "2")
    assert json.loads(body)["error"].startswith("the server has 34 connections busy")


def test_a_malformed_request_gets_a_json_400(loopback_server):
    server = loopback_server()
    sock = server.connect()
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, headers, body = server.read_response(sock)
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith("malformed HTTP request")


def test_an_upload_that_trickles_in_is_cut_off_with_408(loopback_server):
    server = loopback_server(http_limits=HttpLimits(upload_grace=0.5, upload_min_rate=1024))
    request = server.upload_bytes(tiny_png())
    sock = server.connect()
    sock.sendall(request[:len(request) - 100])  # the rest never comes
    status, headers, body = server.read_response(sock)
    assert status == 408 and json.loads(body)["error"].startswith("upload too slow: ")
    assert server.closed_by_server(sock, within=5)


def test_past_the_uploads_it_takes_the_slowest_makes_room_or_the_new_one_is_refused(loopback_server):
    server = loopback_server(UpscaleService(Limits(max_waiting=0)))  # one upload arriving at a time
    request = server.upload_bytes(tiny_png())
    slow = server.connect()
    slow.sendall(request[:300])  # the headers and the start of the body, then nothing
    time.sleep(EVICTABLE_AFTER_SECONDS + 0.2)  # time enough to show its rate
    newer = server.connect()
    newer.sendall(request[:300])
    status, _, body = server.read_response(slow)
    assert status == 408 and "dropped to make room for another, as this server receives at most 1 uploads" \
        in json.loads(body)["error"]
    newest = server.connect()
    newest.sendall(request[:300])  # `newer` is too new to be dropped for it
    status, headers, body = server.read_response(newest)
    assert (status, headers["retry-after"]) == (503, "2")
    assert json.loads(body)["error"].startswith("the server is receiving as many uploads as it takes at once (1)")
    newer.sendall(request[300:])
    assert server.read_response(newer)[0] == 200


def test_a_client_that_leaves_during_its_upload_is_one_line_in_the_log(loopback_server, caplog):
    server = loopback_server()
    log.addHandler(caplog.handler)  # the app's log has uvicorn's handler, not the root's: caplog's is added
    try:
        sock = server.connect()
        sock.sendall(server.upload_bytes(tiny_png())[:300])
        port = sock.getsockname()[1]
        sock.close()
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        log.removeHandler(caplog.handler)
    assert [(record.getMessage(), record.exc_info) for record in caplog.records] == [
        (f"127.0.0.1:{port}: the client closed the connection during its upload", None)]


def test_a_client_that_leaves_while_waiting_frees_its_place_and_is_never_upscaled(loopback_server, gate):
    server = loopback_server()
    first, second = server.connect(), server.connect()
    first.sendall(server.upload_bytes(tiny_png(), job="first"))
    assert gate.entered.wait(30)
    second.sendall(server.upload_bytes(tiny_png(), job="second"))
    assert server.service.queue.wait_until_size(2, timeout=30)
    second.close()
    assert server.service.queue.wait_until_size(1, timeout=30)  # while the first still holds the model
    gate.open.set()
    status, _, _ = server.read_response(first)
    assert status == 200 and gate.started == 1


def test_sigterm_stops_the_server_as_ctrl_c_does(live_server):
    live_server.process.send_signal(signal.SIGTERM)
    assert live_server.process.wait(timeout=30) == 0
    assert live_server.process.stdout.read() == "enhance-edge stopped\n"
