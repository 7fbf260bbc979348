"""The virus scanner: clamd over its socket, files streamed with INSTREAM.

The ``clamd`` package sends 1 KiB chunks with ``socket.send`` (which may send less than it
was given); :class:`_Instream` sends 64 KiB chunks with ``sendall``. While clamd reads the
stream, its SHA-256 and size are computed, so a file is read once.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import IO, Any

import clamd
from django.conf import settings

from records.filetypes import HEAD_BYTES

CHUNK = 64 * 1024


class ScannerUnavailable(Exception):
    """No scanner configured, or it could not be reached or answered nonsense."""


class ScanTooLarge(Exception):
    """clamd refused the file: it is longer than its ``StreamMaxLength``. Asking again gets
    the same answer: the file can never be scanned."""


SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded. ERROR"


class _Instream:
    clamd_socket: Any

    def instream(self, buff: IO[bytes]) -> dict[str, tuple[str, str | None]]:
        try:
            self._init_socket()  # type: ignore[attr-defined]
            self._send_command("INSTREAM")  # type: ignore[attr-defined]
            try:
                while chunk := buff.read(CHUNK):
                    self.clamd_socket.sendall(struct.pack("!L", len(chunk)) + chunk)
                self.clamd_socket.sendall(struct.pack("!L", 0))
            except (BrokenPipeError, ConnectionResetError):
                # Past its StreamMaxLength clamd answers and closes the socket while we send:
                # its answer says whether that was the reason.
                if self._reply_or_none() == SIZE_LIMIT_REPLY:
                    raise ScanTooLarge(SIZE_LIMIT_REPLY) from None
                raise
            result = self._recv_response()  # type: ignore[attr-defined]
            if result == SIZE_LIMIT_REPLY:
                raise ScanTooLarge(result)
            filename, reason, status = self._parse_response(result)  # type: ignore[attr-defined]
            return {filename: (status, reason)}
        finally:
            self._close_socket()  # type: ignore[attr-defined]

    def _reply_or_none(self) -> str | None:
        try:
            return str(self._recv_response())  # type: ignore[attr-defined]
        except clamd.ClamdError:
            return None


class _UnixClient(_Instream, clamd.ClamdUnixSocket):
    pass


class _NetworkClient(_Instream, clamd.ClamdNetworkSocket):
    pass


def configured() -> bool:
    return bool(settings.CLAMD_SOCKET or settings.CLAMD_HOST)


def clamd_client() -> Any:
    if settings.CLAMD_SOCKET:
        return _UnixClient(path=settings.CLAMD_SOCKET, timeout=settings.CLAMD_TIMEOUT)
    return _NetworkClient(
        host=settings.CLAMD_HOST, port=settings.CLAMD_PORT, timeout=settings.CLAMD_TIMEOUT
    )


class _HashingReader:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def read(self, n: int = -1) -> bytes:
        data = bytes(self.stream.read(n))
        self.digest.update(data)
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        return data


@dataclass(frozen=True)
class Verdict:
    infected: bool
    signature: str
    sha256: str
    size: int
    head: bytes  # the first bytes, to check the type of what was scanned


def scan(stream: IO[bytes]) -> Verdict:
    """Stream ``stream`` to clamd. Raises :class:`ScannerUnavailable` when there is no
    answer to trust: the caller keeps the file quarantined and tries again later; and
    :class:`ScanTooLarge` when clamd will never take the file."""
    if not configured():
        raise ScannerUnavailable("no scanner configured")
    reader = _HashingReader(stream)
    try:
        result = clamd_client().instream(reader)
    except (clamd.ClamdError, OSError) as exc:
        raise ScannerUnavailable(type(exc).__name__) from exc
    status, signature = next(iter(result.values()))
    if status not in {"OK", "FOUND"}:
        raise ScannerUnavailable(f"clamd answered {status}")
    return Verdict(
        infected=status == "FOUND",
        signature=(signature or "") if status == "FOUND" else "",
        sha256=reader.digest.hexdigest(),
        size=reader.size,
        head=reader.head,
    )
