"""The allow-list of file types, recognised by their first bytes, never by their name."""

from __future__ import annotations

import codecs

# How many leading bytes :func:`sniff` needs to decide.
HEAD_BYTES = 4096

_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (128, b"DICM", "application/dicom"),
]
_TEXT_CONTROLS = {9, 10, 12, 13}


def _is_text(head: bytes) -> bool:
    if any(b < 32 and b not in _TEXT_CONTROLS or b == 127 for b in head):
        return False
    try:
        # Not final: a multi-byte character may be cut at the end of the head.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes) -> str | None:
    """The content type of a file starting with ``head``, or ``None`` if not allowed."""
    for offset, magic, content_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head and _is_text(head[:HEAD_BYTES]):
        return "text/plain"
    return None


# The file-name extensions each type is saved under; the first is added to a name that has
# none of them ("report.html" of a text file downloads as "report.html.txt": opened from
# the downloads folder, the name decides what runs it).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/tiff": (".tif", ".tiff"),
    "application/dicom": (".dcm", ".dicom"),
    "image/webp": (".webp",),
    "text/plain": (".txt",),  # not .csv: a spreadsheet would run its formulas
}


def download_name(file_name: str, content_type: str) -> str:
    """``file_name`` with an extension that says what the file is."""
    allowed = EXTENSIONS.get(content_type, ())
    if not allowed or file_name.lower().endswith(allowed):
        return file_name
    return file_name + allowed[0]
