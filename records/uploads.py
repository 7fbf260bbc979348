"""The upload handler of ``POST /api/v1/records``: the file goes straight to a temporary
file on disk while its SHA-256, size and first bytes are taken, and is cut off with 413 as
soon as it passes ``RECORDS_MAX_UPLOAD_BYTES``."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from records.errors import FileTooLarge, InvalidUpload
from records.filetypes import HEAD_BYTES

FILE_FIELD = "file"


class RecordUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = int(settings.RECORDS_MAX_UPLOAD_BYTES)
        self.received = 0
        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.seen_file = False

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        if field_name != FILE_FIELD or self.seen_file:
            raise InvalidUpload()
        self.seen_file = True
        super().new_file(field_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()
            raise FileTooLarge()
        self.digest.update(raw_data)
        if len(self.head) < HEAD_BYTES:
            self.head += raw_data[: HEAD_BYTES - len(self.head)]
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> Any:
        uploaded: Any = super().file_complete(file_size)
        uploaded.sha256 = self.digest.hexdigest()
        uploaded.head = bytes(self.head)
        return uploaded
