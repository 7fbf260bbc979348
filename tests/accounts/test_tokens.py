"""Sign-up, e-mail verification, login, refresh with rotation, logout, and token refusal."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core import mail

from accounts.adapter import login_digest
from audit.models import AuditEvent
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db


def test_patient_signs_up_verifies_logs_in_refreshes_and_logs_out(api):
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "Nour@Example.com", "password": PASSWORD, "first_name": "Nour"},
    )
    assert r.status_code == 401  # a pending flow: verify the e-mail
    assert {"id": "verify_email", "is_pending": True} in r.json()["data"]["flows"]
    session_token = r.json()["meta"]["session_token"]
    assert len(mail.outbox) == 1

    r = post(
        api, f"{AUTH}/auth/email/verify", {"key": last_code()}, **{"X-Session-Token": session_token}
    )
    assert r.status_code == 200
    assert r.json()["meta"]["access_token"]

    tokens = login(api, "nour@example.com")
    me = api.get("/api/v1/me", headers=bearer(tokens["access"]))
    assert me.status_code == 200
    assert me.json()["email"] == "nour@example.com"
    assert me.json()["role"] == "patient"
    assert me.json()["first_name"] == "Nour"

    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    assert r.status_code == 200
    rotated = r.json()["data"]
    assert rotated["refresh_token"] != tokens["refresh"]
    assert api.get("/api/v1/me", headers=bearer(rotated["access_token"])).status_code == 200

    r = api.delete(f"{AUTH}/auth/session", headers=bearer(rotated["access_token"]))
    assert r.status_code == 401  # logged out
    assert (
        post(api, f"{AUTH}/tokens/refresh", {"refresh_token": rotated["refresh_token"]}).status_code
        == 400
    )
    assert api.get("/api/v1/me", headers=bearer(rotated["access_token"])).status_code == 401
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("auth.login") >= 2
    assert "auth.logout" in actions


def test_reuse_of_a_rotated_refresh_token_is_refused_audited_and_revokes_the_session(api):
    user = make_user()
    tokens = login(api, user.email)
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    fresh = r.json()["data"]
    replay = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    assert replay.status_code == 400
    event = AuditEvent.objects.get(action="auth.refresh_reuse")
    assert str(event.actor_id) == str(user.id)
    # The whole session is treated as stolen: the newest tokens die too.
    assert (
        post(api, f"{AUTH}/tokens/refresh", {"refresh_token": fresh["refresh_token"]}).status_code
        == 400
    )
    assert api.get("/api/v1/me", headers=bearer(fresh["access_token"])).status_code == 401


def test_failed_login_is_audited_without_the_password(api):
    user = make_user()
    r = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": "wrong-password-1"})
    assert r.status_code == 400
    event = AuditEvent.objects.get(action="auth.login_failed")
    # The trail outlives an erasure: the account, and no address, password or phone.
    assert (event.target_type, event.target_id) == ("user", str(user.pk))
    assert event.data == {"method": "password", "login_digest": login_digest(str(user.email))}
    assert str(user.email) not in str(event.data) and "wrong-password-1" not in str(event.data)


def test_failed_login_of_no_account_keeps_a_digest_not_the_address(api):
    tried = "Someone.Else@Example.com"
    for _ in range(2):
        post(api, f"{AUTH}/auth/login", {"email": tried, "password": "wrong-password-1"})
    events = list(AuditEvent.objects.filter(action="auth.login_failed"))
    assert len(events) == 2
    assert all(e.target_id == "" and tried.lower() not in str(e.data).lower() for e in events)
    # The same login, however written, gives the same digest: attempts stay linked.
    assert {e.data["login_digest"] for e in events} == {login_digest(tried.lower())}


def test_wrong_password_answers_in_arabic(api):
    user = make_user()
    r = api.post(
        f"{AUTH}/auth/login",
        {"email": user.email, "password": "nope-nope-1"},
        content_type="application/json",
        headers={"Accept-Language": "ar"},
    )
    assert r.status_code == 400
    message = r.json()["errors"][0]["message"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in message)


def _forge(payload: dict, key=None) -> str:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, key, algorithm="RS256")


def _real_key():
    return serialization.load_pem_private_key(
        settings.HEADLESS_JWT_PRIVATE_KEY.encode(), password=None
    )


@pytest.mark.parametrize(
    "case", ["expired", "tampered", "wrong_key", "garbage", "refresh_as_access", "none_alg"]
)
def test_bad_tokens_get_401_in_the_envelope(api, case):
    user = make_user()
    tokens = login(api, user.email)
    good = jwt.decode(tokens["access"], options={"verify_signature": False})
    if case == "expired":
        token = _forge(
            {**good, "iat": int(time.time()) - 900, "exp": int(time.time()) - 600}, _real_key()
        )
    elif case == "tampered":
        head, body, sig = tokens["access"].split(".")
        other = jwt.utils.base64url_encode(
            jwt.utils.force_bytes('{"sub": "someone-else"}')
        ).decode()
        token = f"{head}.{other}.{sig}"
    elif case == "wrong_key":
        token = _forge(good)
    elif case == "garbage":
        token = "not.a.jwt"
    elif case == "refresh_as_access":
        token = tokens["refresh"]
    else:
        token = jwt.encode(good, None, algorithm="none")  # type: ignore[arg-type]
    r = api.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.unauthenticated"
    assert api.get("/api/v1/me").status_code == 401  # and no token at all


def test_access_token_carries_the_role(api):
    user = make_user(role="doctor")
    claims = jwt.decode(login(api, user.email)["access"], options={"verify_signature": False})
    assert claims["role"] == "doctor"
    assert claims["sub"] == str(user.id)


def test_password_change_revokes_other_sessions(api):
    user = make_user()
    first = login(api, user.email)
    second = login(api, user.email)
    r = post(
        api,
        f"{AUTH}/account/password/change",
        {"current_password": PASSWORD, "new_password": "Another-Strong-pw-77"},
        **bearer(second["access"]),
    )
    assert (
        r.status_code == 401
    )  # the changing session is logged out too (ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE)
    assert api.get("/api/v1/me", headers=bearer(first["access"])).status_code == 401
    assert (
        post(api, f"{AUTH}/tokens/refresh", {"refresh_token": first["refresh"]}).status_code == 400
    )
    assert AuditEvent.objects.filter(
        action="auth.password_changed", target_id=str(user.id)
    ).exists()
    login(api, user.email, "Another-Strong-pw-77")


def test_whoami_needs_no_database_query_and_deactivation_still_applies_at_once(
    api, django_assert_num_queries
):
    user = make_user(role="doctor")
    headers = bearer(login(api, user.email)["access"])
    assert api.get("/api/v1/whoami", headers=headers).json() == {
        "id": str(user.id),
        "role": "doctor",
    }
    with django_assert_num_queries(0):
        assert api.get("/api/v1/whoami", headers=headers).status_code == 200
    user.is_active = False
    user.save()
    assert api.get("/api/v1/whoami", headers=headers).status_code == 401


def test_a_request_that_rebuilds_the_snapshot_reads_the_user_row_once(api):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.tokens_validation import snapshot_key

    user = make_user()
    headers = bearer(login(api, user.email)["access"])

    def user_reads() -> int:
        with CaptureQueriesContext(connection) as queries:
            r = api.get("/api/v1/me", headers=headers)  # uses the full user row
        assert r.status_code == 200 and r.json()["email"] == user.email
        return sum('FROM "accounts_user"' in q["sql"] for q in queries.captured_queries)

    cache.delete(snapshot_key(user.pk))
    assert user_reads() == 1  # the snapshot's rebuild and the view share one read
    assert cache.get(snapshot_key(user.pk)) is not None
    assert user_reads() == 1  # snapshot cached: the lazy user reads the row itself


def test_the_lazy_user_is_the_row_the_orm_reads(api):
    from django.core.cache import cache

    from accounts.models import User
    from accounts.tokens_validation import snapshot_key, validate_access_token

    user = make_user(first_name="Layla", last_name="Hassan")
    token = login(api, user.email)["access"]
    for rebuilt in (True, False):  # the snapshot rebuilt (the row shared), then cached
        if rebuilt:
            cache.delete(snapshot_key(user.pk))
        found = validate_access_token(token)
        assert found is not None
        lazy, snap = found
        assert snap.id == str(user.pk) and snap.role == user.role
        assert lazy.full_name == "Layla Hassan"  # loads it
        orm = User.objects.get(pk=user.pk)
        assert {k: v for k, v in vars(lazy._wrapped).items() if k != "_state"} == {
            k: v for k, v in vars(orm).items() if k != "_state"
        }


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_with_one_token_both_work_and_raise_no_alarm(monkeypatch):
    """A client that sends its refresh token twice at once (two requests racing, each having
    read the session before either rotated it) gets two new pairs that both work: neither
    is later taken for a replay, which would end the session and be audited."""
    import threading

    from allauth.headless.tokens.strategies.jwt import internal
    from django.db import connection
    from django.test import Client

    user = make_user()
    tokens = login(Client(), user.email)
    both_read = threading.Barrier(2)
    real = internal.validate_refresh_token

    def read_then_wait(token):
        found = real(token)
        if threading.current_thread() is not threading.main_thread():
            both_read.wait(timeout=10)
        return found

    monkeypatch.setattr(internal, "validate_refresh_token", read_then_wait)
    answers = []

    def refresh():
        try:
            answers.append(
                post(Client(), f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.setattr(internal, "validate_refresh_token", real)

    assert [a.status_code for a in answers] == [200, 200]
    new = [a.json()["data"]["refresh_token"] for a in answers]
    assert len(set(new)) == 2
    later = [post(Client(), f"{AUTH}/tokens/refresh", {"refresh_token": t}) for t in new]
    assert [r.status_code for r in later] == [200, 200]
    assert not AuditEvent.objects.filter(action="auth.refresh_reuse").exists()
    # A token rotated out before its request came is still a replay.
    replay = post(Client(), f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    assert replay.status_code == 400
    assert AuditEvent.objects.filter(action="auth.refresh_reuse").count() == 1
