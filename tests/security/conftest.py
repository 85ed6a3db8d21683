"""The receiver as an outsider meets it: `workbench serve` on loopback, real sockets."""

from __future__ import annotations

import socket

import pytest

from tests.receiver.conftest import Served, receiver_config, write_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A two-worker `workbench serve` on a fresh SQLite store, writing its access log."""
    base = tmp_path_factory.mktemp("security")
    config = write_config(base / "clay.json", receiver_config())
    served = Served(
        config,
        f"sqlite:///{base / 'events.sqlite'}",
        log=base / "serve.log",
        args=("--access-log", str(base / "access.log")),
    )
    served.base, served.config_path = base, config
    yield served
    served.stop()


def raw_request(url: str, data: bytes, timeout: float = 30) -> bytes:
    """Send `data` as it is on a new connection, half-close it and read the whole answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def pytest_terminal_summary(terminalreporter):
    """The fuzzing run says how many cases it tried."""
    from .test_fuzzing import summary

    line = summary()
    if line:
        terminalreporter.write_line(line)
