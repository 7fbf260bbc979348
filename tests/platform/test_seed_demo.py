import pytest
from django.core.management import call_command

from telemed.management.commands.seed_demo import DEMO_ACCOUNTS
from tests.factories import login

pytestmark = pytest.mark.django_db


def test_demo_accounts_can_log_in_and_seeding_twice_is_harmless(api, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for spec in DEMO_ACCOUNTS:
        assert spec["email"] in out
        tokens = login(api, spec["email"], spec["password"])
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access']}"}).json()
        assert me["role"] == spec["role"]
