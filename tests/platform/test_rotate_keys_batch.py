"""``rotate_field_keys``: a batch size below 1 is refused, and what it reports re-encrypted is
what it wrote."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings

import core.management.commands.rotate_field_keys as rotate
from core import crypto
from tests.platform.test_crypto import KEY_A, KEY_B, KEY_NEW, raw_note
from tests.testapp.models import Specimen

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("size", ["0", "-1"])
def test_a_batch_size_below_one_is_refused(size, capsys):
    old = Specimen.objects.create(note="note")
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_NEW},{KEY_A},{KEY_B}"):
        with pytest.raises(CommandError, match="--batch-size"):
            call_command("rotate_field_keys", "--batch-size", size)
        assert "re-encrypted" not in capsys.readouterr().out
        assert crypto.key_id_of(raw_note(old.pk)) == "test1"  # nothing pretended done
        call_command("rotate_field_keys", "--batch-size", "1")
        assert crypto.key_id_of(raw_note(old.pk)) == "k2026"


def test_a_row_deleted_meanwhile_is_not_counted(monkeypatch, capsys):
    kept = [Specimen.objects.create(note=f"note {i}") for i in range(2)]
    gone = Specimen.objects.create(note="deleted before its batch")

    class Racing:
        """Each batch's transaction starts after another transaction deleted a row."""

        @staticmethod
        def atomic(*args: Any, **kwargs: Any) -> Any:
            Specimen.objects.filter(pk=gone.pk).delete()
            return transaction.atomic(*args, **kwargs)

    monkeypatch.setattr(rotate, "transaction", Racing)
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{KEY_NEW},{KEY_A},{KEY_B}"):
        call_command("rotate_field_keys", "--batch-size", "2")
    out = capsys.readouterr().out
    assert "testapp_specimen.note: 2 re-encrypted" in out
    assert "done: 2 values" in out
    assert [crypto.key_id_of(raw_note(s.pk)) for s in kept] == ["k2026", "k2026"]


def test_a_key_id_with_like_wildcards_passes_over_no_value(capsys):
    """Values under "kx2" are not taken for values under the current "k_2" ("_" matches any
    letter in LIKE): they are re-encrypted too, before "kx2" can be dropped."""
    secret = KEY_A.partition(":")[2]
    new = KEY_NEW.partition(":")[2]
    with override_settings(FIELD_ENCRYPTION_KEYS=f"kx2:{secret}"):
        old = Specimen.objects.create(note="under kx2")
    with override_settings(FIELD_ENCRYPTION_KEYS=f"k_2:{new},kx2:{secret}"):
        call_command("rotate_field_keys")
        assert crypto.key_id_of(raw_note(old.pk)) == "k_2"
        assert Specimen.objects.get(pk=old.pk).note == "under kx2"
    assert "testapp_specimen.note: 1 re-encrypted" in capsys.readouterr().out
