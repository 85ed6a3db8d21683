"""Clients that connect and send nothing, or trickle their bytes, cannot starve the receiver.

Under `workbench serve --workers 2` an attacker holds 50 idle connections, 10 that trickle their
headers and 10 that trickle a body; meanwhile `/healthz` and a valid row are answered, the
idle ones are hung up on, and a body that takes too long is answered 408 and not stored."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tests.receiver.conftest import Served, auth, lead, receiver_config, write_config

URL = "/sources/clay/development"
# How long the test waits for an answer: far longer than the receiver needs, far shorter than
# the minute sync workers kept every request waiting behind two idle connections.
PATIENCE = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("slow")
    config = write_config(base / "clay.json", receiver_config())
    served = Served(
        config, f"sqlite:///{base / 'events.sqlite'}", log=base / "serve.log", args=("--body-timeout", "2")
    )
    yield served
    served.stop()


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=PATIENCE)


def _head(length: int) -> bytes:
    return (
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth()['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


class Attacker:
    """Idle and trickling connections, kept trickling by a thread until stopped."""

    def __init__(self, server, idle=50, header_tricklers=10, body_tricklers=10):
        self.idle = [_connect(server) for _ in range(idle)]
        self.tricklers = [(_connect(server), _head(100)) for _ in range(header_tricklers)]
        for _ in range(body_tricklers):
            sock = _connect(server)
            sock.sendall(_head(10_000))
            self.tricklers.append((sock, b"{" * 10_000))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        position = 0
        while not self.stopping.wait(0.3):
            for sock, data in self.tricklers:
                try:
                    sock.send(data[position : position + 1])
                except OSError:
                    pass  # hung up on
            position += 1

    def close(self):
        self.stopping.set()
        self.thread.join()
        for sock in self.idle + [s for s, _ in self.tricklers]:
            sock.close()


def test_idle_and_trickling_clients_do_not_hold_up_others(server):
    attacker = Attacker(server)
    try:
        timings = []
        for _ in range(3):
            started = time.monotonic()
            health = requests.get(server.url + "/healthz", timeout=PATIENCE)
            middle = time.monotonic()
            row = server.post(
                URL, lead(email="busy@acme.com"), {**auth(), "Content-Type": "application/json"}
            )
            timings.append((middle - started, time.monotonic() - middle))
            assert health.status_code == 200
            assert row.status_code == 200 and row.json()["status"] == "processed", row.text
    finally:
        attacker.close()
    print(
        "with 50 idle and 20 trickling connections: /healthz "
        + ", ".join(f"{h * 1000:.0f}" for h, _ in timings)
        + " ms; a row "
        + ", ".join(f"{r * 1000:.0f}" for _, r in timings)
        + " ms"
    )


def test_a_client_that_sends_nothing_is_hung_up_on(server):
    sock = _connect(server)
    with sock:
        assert sock.recv(1) == b""  # closed by the receiver, with no answer


def test_a_client_that_trickles_its_headers_is_hung_up_on(server):
    sock = _connect(server)
    with sock:
        closed = False
        for byte in _head(2):
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "the receiver kept waiting for headers sent a byte every half second"


def test_a_body_that_takes_too_long_is_answered_408_and_not_stored(server):
    before = sum(server.get(f"{URL}/status").json()["counts"].values())
    body = json.dumps(lead(email="slow@acme.com")).encode()
    sock = _connect(server)
    with sock:
        sock.sendall(_head(len(body)))
        answer = b""
        for byte in body:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.3)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(PATIENCE)
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    reply = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert reply["status"] == "timeout" and "did not arrive within 2 s" in reply["error"]
    assert sum(server.get(f"{URL}/status").json()["counts"].values()) == before
