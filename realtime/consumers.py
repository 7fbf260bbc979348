"""The one socket, ``/ws/v1/``.

Authentication happens in :mod:`realtime.auth` before the consumer runs. A refused socket is
accepted and then closed with 4401/4403 so that clients can read the code (a browser cannot
see why an HTTP handshake was refused): 4403 also for an account that must change its password
first, as REST answers 403. A user's sockets past ``REALTIME_MAX_SOCKETS_PER_USER`` on one
server process are closed 4409. Client messages: ``resume``, ``presence.ping``, and whatever
the domain apps register in ``HANDLERS`` at the composition root (chat's ``chat.*``). Bad
input gets an ``error`` event and the socket stays open; a flood is rate-limited, then closed
4429. Errors and the handlers run in the socket's language: the handshake's
``Accept-Language`` (ar or en), else the user's saved one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.utils import translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from core.errors import ApplicationError, RateLimited, infrastructure_error
from core.languages import asked_language
from realtime import fanout, presence, selectors, watchdog
from realtime.errors import InvalidMessage, MalformedFrame, MessageTooLarge, SlowDown, UnknownType
from realtime.metrics import OPEN_SOCKETS, SOCKET_CLOSES, close_code_label
from realtime.models import EventCounter
from realtime.security import nested_deeper_than, socket_slot_free, socket_slot_take

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_SOCKETS = 4409
CLOSE_FLOOD = 4429
# Deepest nesting of arrays and objects in a client message: deeper is malformed (parsing,
# printing or validating a frame of 5,000 "[" recurses past Python's limit).
MAX_DEPTH = 32

# Socket message handlers of the domain apps, by message type, wired at the composition root:
# ``handler(*, user, content) -> reply event | None``, run in a thread (they use the database);
# an ApplicationError they raise becomes an ``error`` event.
HANDLERS: dict[str, Callable[..., dict[str, Any] | None]] = {}
# What else a ``resume`` replays, by name, wired at the composition root:
# ``resumer(*, user, content) -> events`` (run in a thread, before anything is replayed, so
# that it may refuse its part), sent after the stored events and before ``resume.done``
# (chat's missed messages and changes, by the last ``seq`` and ``rev`` seen per conversation).
RESUMERS: dict[str, Callable[..., list[dict[str, Any]]]] = {}


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _handler_threads() -> ThreadPoolExecutor | None:
    """The threads that run the registered handlers: ``SOCKET_THREADS`` of them, or with 0
    the event loop's default executor (``min(32, cores + 4)`` threads). Fewer threads mean
    fewer sends competing for the interpreter once a backlog forms (measured in
    ``bench/RESULTS.md``, chat, fifth session)."""
    threads = _setting("SOCKET_THREADS", 0)
    return _handler_pool(threads) if threads > 0 else None


@functools.cache
def _handler_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="socket")


def _socket_language(scope: dict[str, Any], user: Any) -> str:
    """The handshake's ``Accept-Language`` when it names a language we speak, else the
    user's saved one (the contract's rule, REST's too: ``core.languages``)."""
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            asked = asked_language(value.decode("latin1"))
            if asked:
                return asked
    return getattr(user, "language", None) or settings.LANGUAGE_CODE


def _resume_events(
    *, user_id: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], bool, int]:
    """The stored events after ``after`` (:func:`selectors.events_after`), and the user's
    highest event id, read first: an event that commits meanwhile has a higher id (a user's
    events commit in id order), so a resume never claims an id that is still to come. The
    id is the user's :class:`EventCounter`, not the newest stored row: retention deletes
    old rows, and a resume must not go back to 0 when all of them are gone."""
    highest = EventCounter.objects.filter(user_id=user_id).values_list("last", flat=True).first()
    events, more = selectors.events_after(user_id=user_id, after=after, limit=limit)
    return events, more, highest or 0


def _access_holds(scope: dict[str, Any], user: Any, *, again: bool = False) -> bool:
    """Whether the socket's credential still admits ``user`` as the handshake saw them, from
    a fresh look at the user's auth snapshot (dropped by every save of the user): active,
    no password to change, the same role, and the session not ended (a logout, a password
    change or a deactivation, which raises the session epoch, changes the hash sessions are
    checked against; for staff, the second factor's device not removed). On connecting, a
    bearer token is validated again whole; later (``again``) its session is checked, as a
    ticket's is: the socket outlives the access token's few minutes, not its session."""
    from accounts.tokens_validation import user_snapshot, validate_access_token
    from realtime.auth import _bearer, _session_holds, _ticket

    snap = user_snapshot(str(user.pk))
    if (
        snap is None
        or not snap.is_active
        or snap.must_change_password
        or snap.role != getattr(user, "role", snap.role)
        or not constant_time_compare(snap.session_auth_hash, user.get_session_auth_hash())
    ):
        return False
    token = _bearer(scope)
    if not again and _ticket(scope) is None and token:
        return validate_access_token(token) is not None
    session_key = scope.get("session_key")
    return not session_key or _session_holds(session_key, user)


def _admission(scope: dict[str, Any], user: Any) -> int | None:
    """On connecting, once the socket has joined: ``None`` if the credential no longer admits
    the user (:func:`_access_holds`), else the user's last event id now, from which a gap in
    the pushes that follow is seen (:meth:`GatewayConsumer.event_push`)."""
    if not _access_holds(scope, user):
        return None
    last = EventCounter.objects.filter(user_id=user.pk).values_list("last", flat=True).first()
    return last or 0


def _unexpected(exc: Exception) -> ApplicationError:
    """The error event for a handler's failure other than ours, as REST answers it
    (:func:`core.errors.infrastructure_error`: a deadlock rolled back, try again; Redis away,
    try again shortly); anything else is logged whole and is a server error."""
    answer = infrastructure_error(exc)
    if answer is not None:
        logger.warning("socket message failed (%s)", type(exc).__name__)
        return answer
    logger.error("socket message failed", exc_info=exc, extra={"error_type": type(exc).__name__})
    return ApplicationError()


class ClientGone(StopConsumer):
    """A send found the client gone (Uvicorn's ``ClientDisconnected``, an ``OSError``; a
    reset connection), or came after this socket's close: the end of the consumer, not an
    error. Its cleanup runs as the consumer ends (:meth:`GatewayConsumer.__call__`)."""


# The cleanups of ending consumers, held until done (asyncio holds tasks weakly): one goes on
# though its consumer's task is cancelled.
_cleanups: set[asyncio.Task[None]] = set()


class _Bucket:
    """Token bucket: ``rate`` messages a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class GatewayConsumer(AsyncJsonWebsocketConsumer):
    authenticated = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' own, without the channel of the layer that it opens for each consumer
        (a Redis subscription per socket): what reaches this socket from elsewhere comes
        through this process's registry (:mod:`realtime.fanout`) into ``inbox``, read in
        turn with the client's frames."""
        self.scope = scope
        self.channel_layer = None
        self.device = uuid.uuid4().hex  # this socket, in presence
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.base_send = self._sending(send)
        self.has_slot = False  # counted in REALTIME_MAX_SOCKETS_PER_USER
        self.closing = False  # told to close by session.close
        self.close_code: int | None = None  # the code of the close this server sent
        try:
            await await_many_dispatch([receive, self.inbox.get], self.dispatch)
        except StopConsumer:  # a disconnection handled, or a send that found the client gone
            pass
        finally:
            if self.has_slot:  # first: leaving may be cancelled midway
                self.has_slot = False
                socket_slot_free(self.user_id)
            try:
                if self.authenticated:
                    # Ended without its disconnection handled (a send found the client gone, a
                    # handler failed, the task was cancelled): its cleanup runs now, to its end
                    # even if this task is cancelled meanwhile.
                    code = self.close_code if self.close_code is not None else 1006
                    cleanup = asyncio.ensure_future(self.disconnect(code))
                    _cleanups.add(cleanup)
                    cleanup.add_done_callback(_cleanups.discard)
                    await asyncio.shield(cleanup)
            finally:
                await fanout.leave(self)  # also when a handler failed

    def _sending(self, send: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        """The server's ``send``, where a send that cannot reach the client raises
        :class:`ClientGone` (see there) and a close is remembered."""

        async def sending(message: dict[str, Any]) -> None:
            closed = self.close_code is not None
            if message["type"] == "websocket.close" and not closed:
                self.close_code = int(message.get("code", 1000))
            try:
                await send(message)
            except OSError as exc:  # Uvicorn's ClientDisconnected, a connection reset
                raise ClientGone() from exc
            except RuntimeError as exc:
                if not closed:
                    raise  # not a send after this socket's close: a fault of ours
                raise ClientGone() from exc  # Uvicorn: "... after sending 'websocket.close'"

        return sending

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_active or getattr(user, "must_change_password", False):
            # An account that must change its password first gets 403 over REST too.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.user_id = str(user.pk)
        if not socket_slot_take(self.user_id):
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.has_slot = True
        self.language = _socket_language(self.scope, user)
        self.bucket = _Bucket(
            _setting("REALTIME_MESSAGES_PER_SECOND", 10), _setting("REALTIME_MESSAGE_BURST", 30)
        )
        self.strikes = 0
        # Stored events sent live since connecting, and the last one a resume replayed: what
        # a resume (or a push queued behind it) must not send twice.
        self.live_sent: deque[int] = deque(maxlen=_setting("REALTIME_RESUME_LIMIT", 500))
        self.replayed_upto = 0
        # Every event of the user up to ``high`` was sent here or came before the socket: a
        # push above ``high + 1`` shows that one in between was lost (``event_push``). Set
        # before the socket can receive pushes, from the admission below.
        self.high = 0
        self.checked_at = time.monotonic()  # when the credential was last checked
        self.checking: asyncio.Task[bool] | None = None
        await fanout.join(self)
        # Checked again now that a close of the user's sockets would find this one: a
        # deactivation or logout whose close went out between the handshake's check and the
        # join found nothing to close, and is seen here instead.
        last = await database_sync_to_async(_admission)(self.scope, user)
        if last is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.high = max(self.high, last)
        self.checked_at = time.monotonic()
        self.authenticated = True
        OPEN_SOCKETS.inc()
        watchdog.watch()
        _start_presence_sweep()
        await self.presence_beat()

    async def disconnect(self, code: int) -> None:
        if not self.authenticated:
            return
        self.authenticated = False
        OPEN_SOCKETS.dec()
        SOCKET_CLOSES.labels(close_code_label(code)).inc()
        await fanout.leave(self)
        try:
            went_offline = await sync_to_async(presence.leave, thread_sensitive=False)(
                user_id=self.user_id, device=self.device
            )
            if went_offline:
                await self.presence_tell(online=False)
        except Exception as exc:  # Redis is gone: presence runs out by its TTL
            logger.warning("presence leave failed (%s)", type(exc).__name__)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' own ``dispatch`` first closes stale database connections through a hop to
        its one sync thread (``aclose_old_connections``), for every message: a fan-out to 500
        sockets queued 500 hops on that thread (bench/RESULTS.md, real-time gateway). This
        consumer reaches the database only through ``database_sync_to_async``, which closes
        stale connections itself, so a pushed event costs no thread hop."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- events from the registry (realtime.fanout) ---------------------------------------

    async def event_push(self, push: dict[str, Any]) -> None:
        """An event for this user (``realtime.services.publish_on_commit``), already JSON,
        forwarded as is. A user's stored events have consecutive ids and commit in id order,
        but their pushes travel apart (each from its transaction's thread, after commit) and
        one can be lost (Redis away at that moment, a process killed between the commit and
        its push): an event above the next id expected is sent after those in between, read
        from the database, and a push that comes after them is dropped."""
        if self.closing or not self.authenticated:
            return  # refused at its admission (closed 4403), still in the registry
        if self._access_check_due():
            self._check_access_soon()  # the push is not held up: the check runs beside it
        event_id = push["id"]
        if isinstance(event_id, int):
            if event_id <= self.replayed_upto or event_id in self.live_sent:
                return  # a resume, or the filling of a gap, already sent it
            if event_id > self.high + 1 and not await self._fill_gap(event_id):
                return
            self.live_sent.append(event_id)
            self.high = max(self.high, event_id)
        await self.send(text_data=push["text"])

    async def _fill_gap(self, event_id: int) -> bool:
        """Send the stored events between ``high`` and ``event_id``, in order; if there are
        more than a resume replays, close the socket (1012) for the client to resume."""
        events, more = await database_sync_to_async(selectors.events_after)(
            user_id=self.user_id, after=self.high, limit=_setting("REALTIME_RESUME_LIMIT", 500)
        )
        if more and events[-1]["id"] < event_id - 1:
            self.closing = True
            await self.close(code=fanout.CLOSE_SERVICE_RESTART)
            return False
        for body in events:
            if body["id"] >= event_id:
                break
            if body["id"] > self.replayed_upto and body["id"] not in self.live_sent:
                self.live_sent.append(body["id"])
                await self.send_json(body)
        return True

    # --- the credential, checked again while the socket is open ----------------------------

    def _access_check_due(self) -> bool:
        interval = float(getattr(settings, "REALTIME_ACCESS_CHECK_SECONDS", 60.0))
        return time.monotonic() - self.checked_at >= interval

    def _check_access_soon(self) -> None:
        if self.checking is None or self.checking.done():
            self.checking = asyncio.get_running_loop().create_task(self._check_access())

    async def _check_access(self) -> bool:
        """Whether the socket's credential still holds (:func:`_access_holds`); if not, the
        socket is closed 4403. The close that ends a user's access (``access_revoked``) is
        pushed once, after commit, and may be lost like any push: this is what holds then.
        A check that cannot be made (the database or Redis away) lets the socket be, until
        the next one."""
        self.checked_at = time.monotonic()
        check = database_sync_to_async(
            _access_holds, thread_sensitive=False, executor=_handler_threads()
        )
        try:
            holds = await check(self.scope, self.user, again=True)
        except Exception as exc:
            logger.warning("socket access not checked (%s)", type(exc).__name__)
            return True
        if not holds and self.authenticated and not self.closing:
            self.closing = True
            # Run beside the socket's messages too (``_check_access_soon``): a client gone
            # already ends the socket as its disconnection comes in.
            with contextlib.suppress(ClientGone):
                await self.close(code=CLOSE_FORBIDDEN)
        return holds

    async def session_close(self, event: dict[str, Any]) -> None:
        """The user's access changed (deactivation, deletion, logout, password change): end
        this socket now (a password change, which also logs out, asks twice)."""
        if self.closing:
            return
        self.closing = True  # frames already received are not handled (``receive``)
        await self.close(code=int(event.get("code", CLOSE_FORBIDDEN)))

    # --- client messages -----------------------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not self.authenticated or self.closing:
            return
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes >= _setting("REALTIME_FLOOD_CLOSE_AFTER", 50):
                await self.close(code=CLOSE_FLOOD)
            elif self.strikes == 1:
                await self.send_error(SlowDown())
            return
        self.strikes = 0
        raw = (
            text_data.encode("utf-8", "surrogatepass")
            if text_data is not None
            else (bytes_data or b"")
        )
        if len(raw) > _setting("REALTIME_MAX_MESSAGE_BYTES", 16384):
            await self.send_error(MessageTooLarge())
            return
        try:
            # Strict UTF-8 (json.loads would let an encoded lone surrogate through); a frame
            # of 5,000 "[" recurses past Python's limit: both are malformed, not fatal.
            content = json.loads(raw.decode())
        except (ValueError, RecursionError):
            await self.send_error(MalformedFrame())
            return
        brackets = raw.count(b"[") + raw.count(
            b"{"
        )  # bounds the nesting: most frames skip the walk
        if not isinstance(content, dict) or (
            brackets > MAX_DEPTH and nested_deeper_than(content, MAX_DEPTH)
        ):
            await self.send_error(MalformedFrame())
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type")
        # Errors build their fields with gettext, here and in the handlers' threads (which
        # run in a copy of this context, the active language included).
        if (kind == "resume" or self._access_check_due()) and not await self._check_access():
            return  # closed: the credential no longer holds
        with translation.override(self.language):
            try:
                if kind == "resume":
                    await self.resume(content)
                elif kind == "presence.ping":
                    await self.presence_beat()
                elif isinstance(kind, str) and kind in HANDLERS:
                    # Not thread-sensitive: by default every handler of the process would
                    # queue on one shared thread (a chat send is ~12 ms of SQL: ~86/s per
                    # process).
                    handler = database_sync_to_async(
                        HANDLERS[kind], thread_sensitive=False, executor=_handler_threads()
                    )
                    reply = await handler(user=self.user, content=content)
                    if reply is not None:
                        await self.send_json(reply)
                else:
                    raise UnknownType(fields={"type": str(kind or "")[:64]})
            except ClientGone:
                raise  # the end of the socket (``__call__``), not the handler's failure
            except ApplicationError as exc:
                await self.send_error(exc)
            except Exception as exc:  # the socket stays open: the client may try again
                await self.send_error(_unexpected(exc))

    async def resume(self, content: dict[str, Any]) -> None:
        """Replay, in order, the stored events after ``after``; then ``resume.done``. An
        ``after`` past the user's last event counts as that event: pushes still to come
        must not be taken for replayed."""
        after = content.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise InvalidMessage(fields={"after": _("Send a whole number, 0 or more.")})
        # The resumers first: one that refuses its part of the request (an error event) must
        # do so before anything is replayed, or the client would get events and no
        # ``resume.done``. Their events are still sent after the stored ones.
        extra = [
            await database_sync_to_async(resumer)(user=self.user, content=content)
            for resumer in RESUMERS.values()
        ]
        events, more, highest = await database_sync_to_async(_resume_events)(
            user_id=self.user_id, after=after, limit=_setting("REALTIME_RESUME_LIMIT", 500)
        )
        already = set(self.live_sent)
        last = min(after, highest)
        for body in events:
            last = body["id"]
            if last not in already:
                await self.send_json(body)
        self.replayed_upto = max(self.replayed_upto, last)
        self.high = max(self.high, last)
        for part in extra:
            for event in part:
                await self.send_json(event)
        await self.send_json({"type": "resume.done", "data": {"last": last, "more": more}})

    # --- presence ------------------------------------------------------------------------

    async def presence_beat(self) -> None:
        """Renew this socket's presence (on connecting and on ``presence.ping``), and tell the
        audience if the user just came online. Best effort, as everywhere presence is: with
        its Redis away the socket still opens and stays open, and the user looks offline
        until a heartbeat gets through (which tells the audience then)."""
        try:
            came_online = await sync_to_async(presence.heartbeat, thread_sensitive=False)(
                user_id=self.user_id, device=self.device
            )
            if came_online:
                await self.presence_tell(online=True)
        except Exception as exc:
            # The exception's type only: its text may name the user's key.
            logger.warning("presence heartbeat failed (%s)", type(exc).__name__)

    async def presence_tell(self, *, online: bool) -> None:
        await tell_presence(self.user_id, online=online)

    async def send_error(self, exc: ApplicationError) -> None:
        with translation.override(self.language):
            body = exc.envelope()
        if isinstance(exc, RateLimited):
            # A socket has no ``Retry-After`` header: the seconds to wait ride beside the
            # envelope.
            body["retry_after"] = max(1, int(exc.retry_after))
        await self.send_json({"type": "error", **body})


async def tell_presence(user_id: str, *, online: bool) -> None:
    """``presence.changed`` to those who may see this user's presence."""
    watchers = await database_sync_to_async(presence.audience)(user_id)
    event = {"type": "presence.changed", "data": {"user_id": user_id, "online": online}}
    await fanout.publish(fanout.event_batches([(watcher, event) for watcher in watchers]))


# Per event loop: its presence sweep (see ``_sweep_presence``).
_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _start_presence_sweep() -> None:
    loop = asyncio.get_running_loop()
    task = _sweeps.get(loop)
    if task is None or task.done():
        _sweeps[loop] = loop.create_task(_sweep_presence())


async def _sweep_presence() -> None:
    """Tell the audience of users whose last device ran out without closing (its process
    died, its client stopped pinging): ``presence.expired`` names each such user once, to
    whichever process asks first. Runs while this loop serves sockets."""
    interval = float(
        getattr(settings, "PRESENCE_SWEEP_SECONDS", 0) or max(1, presence.ttl_seconds() / 4)
    )
    while fanout.local_sockets():
        await asyncio.sleep(interval)
        try:
            gone = await sync_to_async(presence.expired, thread_sensitive=False)()
            for user_id in gone:
                await tell_presence(user_id, online=False)
        except Exception:  # Redis or the database away: the next round tries again
            logger.warning("presence sweep failed", exc_info=True)
