"""`enhance-edge serve`: the real server in a subprocess, its errors, and what it imports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

from click.testing import CliRunner

from enhance_edge.cli import main
from enhance_edge.web.server import is_loopback, page_url


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
    monkeypatch.delitem(sys.modules, "enhance_edge.web.server", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output == ('error: serve needs the \'web\' extra (uvicorn is not installed): '
                             'pip install "enhance-edge[web]"\n')


def test_the_runtime_does_not_import_the_web_framework_and_the_web_app_not_torch():
    code = ("import sys\n"
            "import enhance_edge, enhance_edge.cli\n"
            "assert not {'starlette', 'uvicorn'} & set(sys.modules), 'web framework imported'\n"
            # as enhance_edge/web/__init__.py says: service (serve's defaults) at start, app and server for serve
            "assert 'enhance_edge.web.service' in sys.modules and not {'enhance_edge.web.app', "
            "'enhance_edge.web.server'} & set(sys.modules), 'web modules'\n"
            "import enhance_edge.web.app, enhance_edge.web.server\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
