import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from fkdverify.data import loaders


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No dataset from the machine: empty HOME, no cache or mirror overrides, no Debian
    folder, no proxy for the local test server. Tests set FKD_DATA_DIR where they need it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "FKD_DATA_DIR",
        "FKD_CACHE_DIR",
        "FKD_MIRROR",
        "FKD_MIRROR_MNIST",
        "FKD_MIRROR_FASHION_MNIST",
        "FKD_MIRROR_CIFAR10",
        "FKD_DOWNLOAD_TIMEOUT",
    ):
        monkeypatch.delenv(var, raising=False)  # fmt: skip
    monkeypatch.setattr(loaders, "DEBIAN_DIR", tmp_path / "no-debian-datasets")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hangs up early
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``mirror.root``; ``mirror.requests`` lists
    the paths asked for."""
    root = tmp_path / "srv"
    root.mkdir()
    requests: list[str] = []

    class Handler(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    srv = _Server(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{srv.server_port}",
                              requests=requests)  # fmt: skip
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
