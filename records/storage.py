"""Where record bytes live: Django's default storage (S3 in production, local disk for
``make run``). Keys carry ids only, never file names.

``quarantine/<record id>`` holds what has not been scanned yet; a clean file is copied to
``records/<patient id>/<record id>`` (on S3 a server-side copy, on disk a hard link) and the
quarantined object deleted once the record's new state has committed.

On S3 every call goes through one low-level boto3 client per storage (boto3 clients are
thread-safe). django-storages keeps a boto3 session per thread, each loading the S3 service
model (~15 MB), and Django runs each request's sync code in a thread of its own: ten
concurrent direct uploads cost ~150 MB more with the per-thread sessions (bench/record_uploads.py).
"""

from __future__ import annotations

import os
import shutil
import threading
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError
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


_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def _s3_client() -> Any:
    current = storage()
    with _clients_lock:
        client = _clients.get(current)
        if client is None:
            client = _clients[current] = current.connection.meta.client
    return client


def _bucket() -> str:
    return str(storage().bucket_name)


def _sse() -> dict[str, str]:
    sse = storage().object_parameters.get("ServerSideEncryption")
    return {"ServerSideEncryption": sse} if sse else {}


def save(key: str, content: Any, content_type: str) -> None:
    """Store a file (a multipart upload on S3, a rename of the temporary file on disk)."""
    if is_s3():  # a managed transfer: multipart above 8 MB, streamed from the file
        content.seek(0)
        _s3_client().upload_fileobj(
            content,
            _bucket(),
            _s3_key(key),
            ExtraArgs={"ContentType": content_type, **_sse()},
        )
        return
    wrapped = content if isinstance(content, File) else File(content)
    wrapped.content_type = content_type  # type: ignore[attr-defined]
    saved = storage().save(key, wrapped)
    if saved != key:  # keys are unique ids: a renamed key would be a bug, not a collision
        storage().delete(saved)
        raise RuntimeError("storage did not keep the key it was given")


def delete(key: str) -> None:
    if is_s3():
        _s3_client().delete_object(Bucket=_bucket(), Key=_s3_key(key))
        return
    storage().delete(key)


def _head(key: str) -> dict[str, Any] | None:
    try:
        return dict(_s3_client().head_object(Bucket=_bucket(), Key=_s3_key(key)))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise


def served_as_attachment(key: str) -> bool:
    """Whether the S3 object is stored with a ``Content-Disposition`` (promoted since the
    links stopped naming files: :func:`copy_scanned`)."""
    head = _head(key)
    return head is None or bool(head.get("ContentDisposition"))


def exists(key: str) -> bool:
    if is_s3():
        return _head(key) is not None
    return bool(storage().exists(key))


def size(key: str) -> int:
    if is_s3():
        head = _head(key)
        if head is None:
            raise FileNotFoundError(key)
        return int(head["ContentLength"])
    return int(storage().size(key))


def read_head(key: str, length: int) -> bytes:
    if is_s3():
        body = _s3_client().get_object(
            Bucket=_bucket(), Key=_s3_key(key), Range=f"bytes=0-{length - 1}"
        )["Body"]
        return bytes(body.read())
    with storage().open(key, "rb") as fh:
        return bytes(fh.read(length))


def open_stream(key: str) -> IO[bytes]:
    """A readable stream of the object that never holds it whole in memory."""
    if is_s3():
        obj = _s3_client().get_object(Bucket=_bucket(), Key=_s3_key(key))
        return obj["Body"]  # type: ignore[no-any-return]
    return open(storage().path(key), "rb")  # noqa: SIM115 - the caller closes it


def open_versioned(key: str) -> tuple[IO[bytes], str | None]:
    """A stream of the object and its version (the S3 ETag), so that a later copy can insist
    on the very bytes that were read (see :func:`copy_scanned`)."""
    if is_s3():
        obj = _s3_client().get_object(Bucket=_bucket(), Key=_s3_key(key))
        return obj["Body"], str(obj["ETag"])
    return open_stream(key), None


def copy_scanned(
    source: str,
    target: str,
    *,
    version: str | None = None,
    file_name: str = "",
    content_type: str = "",
) -> None:
    """Copy an object from quarantine to its clean place, leaving the source: the caller
    deletes it once the record's new state has committed, so a rollback finds the file where
    its row says it is. With ``version`` (an ETag) S3 copies only if the object is still that
    version: a file replaced after its scan (a presigned POST stays usable until it expires)
    is not promoted, and the copy fails. On S3 the copy is stored with the headers it is
    served with (its type, and ``file_name`` as an attachment): a presigned link then names
    no file (the name is health data, and a URL ends up in logs and histories). On disk a
    hard link (a copy where links fail), replacing whatever an earlier attempt left there."""
    if is_s3():
        bucket = _bucket()
        condition = {"CopySourceIfMatch": version} if version else {}
        _s3_client().copy_object(
            Bucket=bucket,
            Key=_s3_key(target),
            CopySource={"Bucket": bucket, "Key": _s3_key(source)},
            MetadataDirective="REPLACE",
            ContentType=content_type or "application/octet-stream",
            ContentDisposition=disposition(file_name) if file_name else "attachment",
            **condition,
            **_sse(),
        )
        return
    src, dst = Path(storage().path(source)), Path(storage().path(target))
    _make_dirs(dst.parent)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.unlink(missing_ok=True)
    mode = storage().file_permissions_mode
    try:
        os.link(src, tmp)
    except FileNotFoundError:
        raise
    except OSError:  # a file system without hard links: a copy, never readable by others
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with open(src, "rb") as reader, os.fdopen(os.open(tmp, flags, 0o600), "wb") as writer:
            shutil.copyfileobj(reader, writer, CHUNK)
    if mode is not None:  # a link shares its source's mode: one stored before it was set too
        os.chmod(tmp, mode)
    os.replace(tmp, dst)


def _make_dirs(path: Path) -> None:
    """``path`` and its missing parents, each with the storage's directory mode (the
    settings' ``directory_permissions_mode``: 0o700, only the server's account may enter),
    whatever the process's umask."""
    mode = storage().directory_permissions_mode
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:  # made meanwhile by another upload
            continue
        if mode is not None:
            os.chmod(directory, mode)


LIST_PAGE = 1000  # S3's most keys per listing request


def list_objects(
    folder: str, *, after: str = "", limit: int
) -> tuple[list[tuple[str, datetime]], str]:
    """Up to ``limit`` objects under ``folder`` ("quarantine", "records") whose keys sort
    after ``after``, in key order, each with the time it was last written; and where the next
    call goes on (``after``), or "" once the listing is done. On S3 pages of the bucket
    listing; on disk a walk with ``listdir`` (only the page's files are looked at), an object's
    time the later of its modification and status change: a hard link (a promotion on disk)
    keeps its source's modification time, not its status change time."""
    if limit < 1:
        raise ValueError("limit must be positive")
    if is_s3():
        return _s3_list(folder, after, limit)
    keys = sorted(key for key in _local_keys(folder) if key > after)
    page, more = keys[:limit], len(keys) > limit
    found = []
    for key in page:
        try:
            stat = os.stat(storage().path(key))
        except FileNotFoundError:  # deleted since the listing
            continue
        found.append((key, datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), tz=UTC)))
    return found, (page[-1] if more else "")


def _local_keys(folder: str) -> list[str]:
    try:
        directories, files = storage().listdir(folder)
    except FileNotFoundError:
        return []
    keys = [f"{folder}/{name}" for name in files]
    for directory in directories:
        keys += _local_keys(f"{folder}/{directory}")
    return keys


def _s3_list(folder: str, after: str, limit: int) -> tuple[list[tuple[str, datetime]], str]:
    client, base = _s3_client(), _s3_key(folder).rstrip("/") + "/"
    start = _s3_key(after) if after else ""
    found: list[tuple[str, datetime]] = []
    while len(found) < limit:
        request: dict[str, Any] = {
            "Bucket": _bucket(),
            "Prefix": base,
            "MaxKeys": min(LIST_PAGE, limit - len(found)),
        }
        if start:
            request["StartAfter"] = start
        page = client.list_objects_v2(**request)
        for entry in page.get("Contents", ()):
            start = entry["Key"]
            found.append((f"{folder}/{start[len(base) :]}", entry["LastModified"]))
        if not page.get("IsTruncated") or not page.get("Contents"):
            return found, ""
    return found, found[-1][0]


def disposition(file_name: str) -> str:
    return content_disposition_header(as_attachment=True, filename=file_name) or "attachment"


def presigned_get(key: str, *, content_type: str, ttl: int) -> str:
    """A link to the object for ``ttl`` seconds. It names no file: the object is served with
    the ``Content-Disposition`` stored on it when it was promoted (:func:`copy_scanned`)."""
    return str(
        _s3_client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": _bucket(),
                "Key": _s3_key(key),
                "ResponseContentType": content_type,
                "ResponseCacheControl": "private, no-store",  # health data: no cache keeps it
            },
            ExpiresIn=ttl,
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
            Bucket=_bucket(),
            Key=_s3_key(key),
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=ttl,
        )
    )
