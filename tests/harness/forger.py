"""A fast loopback UDP DNS server for forgery tests, and an off-path forger inside it.

:class:`EchoServer` answers every query at once with one MX record (``10 good.example.``), built
from the query's bytes without dnspython, and records the source port of every query. An
optional ``hook`` runs before each reply: the forgery tests use it to spray forged replies
*from the server's own address and port* -- exactly what an off-path attacker spoofs -- to a
port of their choosing, with IDs of their choosing. :func:`spray` sends thousands of datagrams
in a few system calls (``sendmmsg`` through ctypes on Linux; ``sendto`` in a loop elsewhere).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading
from collections.abc import Callable, Sequence

__all__ = ["EchoServer", "HostileTcpServer", "mx_reply", "question_of", "spray"]

GOOD = "good.example."
EVIL = "evil.attacker.test."


def _name(text: str) -> bytes:
    out = b""
    for label in text.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def question_of(query: bytes) -> bytes:
    """The question section of a query (QNAME, QTYPE, QCLASS), as sent."""
    off = 12
    while query[off]:
        off += 1 + query[off]
    return query[12 : off + 5]


def mx_reply(qid: int, question: bytes, exchange: str) -> bytes:
    """A NOERROR reply with one MX record (TTL 300) for ``question``."""
    rdata = b"\x00\x0a" + _name(exchange)
    return (
        struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        + question
        + b"\xc0\x0c\x00\x0f\x00\x01"
        + struct.pack(">IH", 300, len(rdata))
        + rdata
    )


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_sendmmsg = getattr(_libc, "sendmmsg", None)


class _Batch:
    """Reusable sendmmsg arrays for ``count`` messages of ``length`` octets each."""

    def __init__(self, count: int, length: int) -> None:
        self.count, self.length = count, length
        self.buffer = ctypes.create_string_buffer(count * length)
        self.address = ctypes.create_string_buffer(16)
        self.iovecs = (_Iovec * count)()
        self.headers = (_Mmsghdr * count)()
        base = ctypes.addressof(self.buffer)
        name = ctypes.addressof(self.address)
        for i in range(count):
            self.iovecs[i].iov_base = base + i * length
            self.iovecs[i].iov_len = length
            hdr = self.headers[i].msg_hdr
            hdr.msg_name = name
            hdr.msg_namelen = 16
            hdr.msg_iov = ctypes.pointer(self.iovecs[i])
            hdr.msg_iovlen = 1


_batches: dict[tuple[int, int], _Batch] = {}
_batches_lock = threading.Lock()


def spray(sock: socket.socket, port: int, messages: Sequence[bytes]) -> int:
    """Send ``messages`` (all of one length) from ``sock`` to 127.0.0.1:``port``; returns how
    many went out (on loopback the kernel has queued them at the receiver when it returns)."""
    if not messages:
        return 0
    if _sendmmsg is None:  # pragma: no cover - not Linux
        for message in messages:
            sock.sendto(message, ("127.0.0.1", port))
        return len(messages)
    length = len(messages[0])
    assert all(len(m) == length for m in messages)
    with _batches_lock:
        batch = _batches.get((len(messages), length))
        if batch is None:
            batch = _batches[(len(messages), length)] = _Batch(len(messages), length)
        address = (
            struct.pack("=H", socket.AF_INET)
            + struct.pack(">H", port)
            + socket.inet_aton("127.0.0.1")
            + bytes(8)
        )
        ctypes.memmove(batch.address, address, 16)
        ctypes.memmove(batch.buffer, b"".join(messages), len(messages) * length)
        done = 0
        while done < batch.count:
            count = _sendmmsg(
                sock.fileno(),
                ctypes.byref(batch.headers, done * ctypes.sizeof(_Mmsghdr)),
                min(1024, batch.count - done),  # UIO_MAXIOV
                0,
            )
            if count <= 0:
                break  # (a full send buffer: the rest is dropped, as on a real network)
            done += count
        return done


#: A hook: (server, query bytes, source port of the query) -> None, run before the reply.
Hook = Callable[["EchoServer", bytes, int], None]


class EchoServer:
    """A UDP server on 127.0.0.1 answering every query with ``MX 10 good.example.`` at once
    (a name whose first label starts with ``drop`` is never answered).

    Attributes:
        ports: the source port of every query received, in order.
        names: the query names (lower case, trailing dot), in order.
    """

    def __init__(self, hook: Hook | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.hook = hook
        self.ports: list[int] = []
        self.names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="EchoServer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 17:
                continue
            question = question_of(data)
            self.ports.append(peer[1])
            self.names.append(_text(question))
            if question[1:5].lower() == b"drop":  # never answered
                continue
            if self.hook is not None:
                self.hook(self, data, peer[1])
            qid = data[0] << 8 | data[1]
            self.sock.sendto(mx_reply(qid, question, GOOD), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _text(question: bytes) -> str:
    labels, off = [], 0
    while question[off]:
        labels.append(question[off + 1 : off + 1 + question[off]].decode("ascii").lower())
        off += 1 + question[off]
    return ".".join(labels) + "."


class HostileTcpServer:
    """UDP: TC=1 for every query (so the client asks again over TCP). TCP: after reading the
    query, ``mode`` ``"flood"`` streams 65,535-octet messages with a wrong ID as fast as the
    client reads them; ``"trickle"`` sends a 65,535-octet length and then one octet every
    ``trickle_ms``. Either stops only when the client closes the connection or after
    ``safety`` octets / seconds (so a client that never stops does not hang the test).

    Attributes:
        connections: one ``[octets sent, closed by the client]`` per TCP connection.
    """

    def __init__(self, mode: str, *, safety_octets: int = 64 << 20, safety_s: float = 8.0) -> None:
        self.mode = mode
        self.safety_octets = safety_octets
        self.safety_s = safety_s
        self.trickle_ms = 20.0
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = int(self.udp.getsockname()[1])
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(8)
        self.udp.settimeout(0.05)
        self.tcp.settimeout(0.05)
        self.connections: list[list[object]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            question = question_of(data)
            reply = data[:2] + struct.pack(">HHHHH", 0x8380, 1, 0, 0, 0) + question
            self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record: list[object] = [0, False]
            self.connections.append(record)
            threading.Thread(target=self._stream, args=(conn, record), daemon=True).start()

    def _stream(self, conn: socket.socket, record: list[object]) -> None:
        import time

        started = time.monotonic()
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            conn.settimeout(1.0)
            try:
                size = struct.unpack(">H", conn.recv(2))[0]
                query = conn.recv(size)
                wrong = bytes([query[0] ^ 0xFF, query[1]])
                message = b"\xff\xff" + wrong + bytes(65533)
                if self.mode == "trickle":
                    conn.sendall(b"\xff\xff")
                    record[0] = 2
                while not self._stop.is_set():
                    if int(record[0]) >= self.safety_octets:  # type: ignore[call-overload]
                        return
                    if time.monotonic() - started > self.safety_s:
                        return
                    if self.mode == "flood":
                        conn.sendall(message)
                        record[0] = int(record[0]) + len(message)  # type: ignore[call-overload]
                    else:
                        conn.sendall(b"\x00")
                        record[0] = int(record[0]) + 1  # type: ignore[call-overload]
                        time.sleep(self.trickle_ms / 1000)
            except (BrokenPipeError, ConnectionResetError):
                record[1] = True  # the client closed first
            except (TimeoutError, OSError):
                return

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.udp.close()
        self.tcp.close()

    def __enter__(self) -> HostileTcpServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
