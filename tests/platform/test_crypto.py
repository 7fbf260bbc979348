import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from core import crypto
from tests.testapp.models import Specimen

KEY_A = "test1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY_B = "test0:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA="
KEY_NEW = "k2026:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


def raw_note(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT note FROM testapp_specimen WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_round_trip_and_fresh_nonce():
    a = crypto.encrypt("blood type O-", context="x.y")
    b = crypto.encrypt("blood type O-", context="x.y")
    assert a != b
    assert crypto.decrypt(a, context="x.y") == "blood type O-"
    assert crypto.key_id_of(a) == "test1"


def test_tampered_value_is_refused():
    token = crypto.encrypt("diabetes", context="x.y")
    prefix, kid, body = token.split(":")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(f"{prefix}:{kid}:{flipped}", context="x.y")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token[:-4], context="x.y")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt("plain text", context="x.y")


def test_value_moved_to_another_column_is_refused():
    token = crypto.encrypt("HIV positive", context="records.record.title")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, context="chat.message.text")


def test_unknown_key_id_is_refused():
    token = crypto.encrypt("x", context="c")
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_NEW), pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, context="c")


@pytest.mark.parametrize("spec", ["", "nokey", "a:notbase64!!", "a:AAAA", f"{KEY_A},{KEY_A}"])
def test_bad_key_configuration_is_refused(spec):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        crypto.KeyRing.parse(spec)


@pytest.mark.django_db
def test_raw_column_holds_no_plain_text():
    s = Specimen.objects.create(note="patient reports chest pain")
    raw = raw_note(s.pk)
    assert raw.startswith("enc1:test1:")
    assert "chest" not in raw
    assert Specimen.objects.get(pk=s.pk).note == "patient reports chest pain"


@pytest.mark.django_db
def test_tampered_row_is_refused_on_read():
    s = Specimen.objects.create(note="allergic to penicillin")
    forged = crypto.encrypt("no allergies", context="testapp.specimen.label")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_specimen SET note = %s WHERE id = %s", [forged, s.pk])
    with pytest.raises(crypto.DecryptionError):
        Specimen.objects.get(pk=s.pk)


@pytest.mark.django_db
def test_null_stays_null():
    s = Specimen.objects.create(note=None)
    assert raw_note(s.pk) is None
    assert Specimen.objects.filter(note__isnull=True).count() == 1


@pytest.mark.django_db
def test_rotation_re_encrypts_under_the_new_key():
    old = [Specimen.objects.create(note=f"note {i}") for i in range(3)]
    Specimen.objects.create(note=None)
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_NEW},{KEY_A},{KEY_B}"):
        # Old values still read under the new ring, before rotation.
        assert Specimen.objects.get(pk=old[0].pk).note == "note 0"
        call_command("rotate_field_keys")
        for i, s in enumerate(old):
            assert crypto.key_id_of(raw_note(s.pk)) == "k2026"
            assert Specimen.objects.get(pk=s.pk).note == f"note {i}"
    # The old key alone can no longer read the rotated values.
    with override_settings(FIELD_ENCRYPTION_KEYS=KEY_A), pytest.raises(crypto.DecryptionError):
        Specimen.objects.get(pk=old[0].pk)


def test_new_key_entry_is_valid(capsys):
    call_command("rotate_field_keys", "--new-key", "k9")
    crypto.KeyRing.parse(capsys.readouterr().out.strip())
