"""Hostile HTTP servers on loopback, and database faults, for tests and bench/isolation.py:
real sockets, a real SQLite lock, a really full disk; no mocks.

Each can listen on its own loopback address (127.0.0.N), as separate sites would: the
monitor's politeness is per host, and these stand for other people's broken servers.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path


class _Listener:
    def __init__(self, host: str = "127.0.0.1"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.connections = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/feed") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._held.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _read_request(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        with self._lock:
            for conn in self._held:
                try:
                    conn.close()
                except OSError:
                    pass


class DripServer(_Listener):
    """Answers 200 with a large Content-Length, then sends one byte every `every` seconds:
    no single read ever times out, so only a total deadline ends the fetch."""

    def __init__(self, host: str = "127.0.0.1", every: float = 1.0):
        self.every = every
        super().__init__(host)

    def serve(self, conn: socket.socket) -> None:
        self._read_request(conn)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 1000000\r\n\r\n")
            for byte in iter(lambda: b"<", None):
                if self._stop.is_set():
                    return
                conn.sendall(byte)
                time.sleep(self.every)
        except OSError:
            return


class SilentServer(_Listener):
    """Accepts the connection, reads the request, and never answers."""

    def serve(self, conn: socket.socket) -> None:
        self._read_request(conn)
        self._stop.wait()


def loopback(n: int) -> str:
    """The n-th extra loopback address (127.0.1.n): one per hostile site."""
    return f"127.0.1.{n}"


class LockedDatabase:
    """Another connection holding SQLite's write lock, as a backup tool or a stuck CLI would."""

    def __init__(self, db: Path):
        self.db = db

    def __enter__(self):
        self.conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc):
        self.conn.execute("ROLLBACK")
        self.conn.close()


class FullDisk:
    """The database's file system filled to the last byte for the duration (use it on a small
    tmpfs: `mount -t tmpfs -o size=64m tmpfs DIR`, which needs root)."""

    def __init__(self, db: Path):
        self.filler = db.parent / "filler"

    def __enter__(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            for size in (1 << 20, 4096, 1):  # to the last byte
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        self.filler.unlink()
