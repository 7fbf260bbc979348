"""Where record bytes live: Django's default storage (S3 in production, local disk for
``make run``). Keys carry ids only, never file names.

``quarantine/<record id>`` holds what has not been scanned yet; a clean file is moved to
``records/<patient id>/<record id>``. On S3 a move is a server-side copy; on disk a rename.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.utils.http import content_disposition_header

CHUNK = 256 * 1024


def storage() -> Any:
    return storages["default"]


def is_s3() -> bool:
    return settings.STORAGE_BACKEND == "s3"


def quarantine_key(record_id: Any) -> str:
    return f"quarantine/{record_id}"


def clean_key(patient_id: Any, record_id: Any) -> str:
    return f"records/{patient_id}/{record_id}"


def _s3_key(key: str) -> str:
    return storage()._normalize_name(key)  # type: ignore[no-any-return]


def _s3_client() -> Any:
    return storage().connection.meta.client


def _sse() -> dict[str, str]:
    sse = storage().object_parameters.get("ServerSideEncryption")
    return {"ServerSideEncryption": sse} if sse else {}


def save(key: str, content: Any, content_type: str) -> None:
    """Store a file (a multipart upload on S3, a rename of the temporary file on disk)."""
    wrapped = content if isinstance(content, File) else File(content)
    wrapped.content_type = content_type  # type: ignore[attr-defined]
    saved = storage().save(key, wrapped)
    if saved != key:  # keys are unique ids: a renamed key would be a bug, not a collision
        storage().delete(saved)
        raise RuntimeError("storage did not keep the key it was given")


def delete(key: str) -> None:
    storage().delete(key)


def exists(key: str) -> bool:
    return bool(storage().exists(key))


def size(key: str) -> int:
    return int(storage().size(key))


def read_head(key: str, length: int) -> bytes:
    if is_s3():
        body = _s3_client().get_object(
            Bucket=storage().bucket_name, Key=_s3_key(key), Range=f"bytes=0-{length - 1}"
        )["Body"]
        return bytes(body.read())
    with storage().open(key, "rb") as fh:
        return bytes(fh.read(length))


def open_stream(key: str) -> IO[bytes]:
    """A readable stream of the object that never holds it whole in memory."""
    if is_s3():
        obj = _s3_client().get_object(Bucket=storage().bucket_name, Key=_s3_key(key))
        return obj["Body"]  # type: ignore[no-any-return]
    return open(storage().path(key), "rb")  # noqa: SIM115 - the caller closes it


def iter_chunks(key: str) -> Iterator[bytes]:
    with open_stream(key) as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def promote(source: str, target: str) -> None:
    """Move an object from quarantine to its clean place."""
    if is_s3():
        bucket = storage().bucket_name
        _s3_client().copy_object(
            Bucket=bucket,
            Key=_s3_key(target),
            CopySource={"Bucket": bucket, "Key": _s3_key(source)},
            MetadataDirective="COPY",
            **_sse(),
        )
        storage().delete(source)
        return
    src, dst = Path(storage().path(source)), Path(storage().path(target))
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def disposition(file_name: str) -> str:
    return content_disposition_header(as_attachment=True, filename=file_name) or "attachment"


def presigned_get(key: str, *, file_name: str, content_type: str, ttl: int) -> str:
    return str(
        storage().url(
            key,
            parameters={
                "ResponseContentDisposition": disposition(file_name),
                "ResponseContentType": content_type,
            },
            expire=ttl,
        )
    )


def presigned_post(key: str, *, max_bytes: int, ttl: int) -> dict[str, Any]:
    """A POST form straight to the bucket for one key, capped at ``max_bytes`` by the
    policy (S3 refuses larger bodies), encrypted at rest."""
    sse = _sse().get("ServerSideEncryption")
    fields = {"x-amz-server-side-encryption": sse} if sse else {}
    conditions: list[Any] = [["content-length-range", 1, max_bytes]]
    conditions += [{name: value} for name, value in fields.items()]
    return dict(
        _s3_client().generate_presigned_post(
            Bucket=storage().bucket_name,
            Key=_s3_key(key),
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=ttl,
        )
    )
