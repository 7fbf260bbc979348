"""core.money: minor units by the currency's decimals (ISO 4217)."""

from decimal import Decimal

import pytest

from core import money


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "shown"),
    [
        ("250.50", "EGP", 25050, "250.50"),
        ("12.250", "KWD", 12250, "12.250"),
        ("3000", "JPY", 3000, "3000"),
        ("0", "BHD", 0, "0.000"),
    ],
)
def test_minor_units_follow_the_currency(amount, currency, minor, shown):
    assert money.to_minor(Decimal(amount), currency) == minor
    assert money.amount(minor, currency) == shown


@pytest.mark.parametrize(
    ("amount", "currency"), [("1.5", "JPY"), ("1.001", "EGP"), ("1.0001", "OMR")]
)
def test_more_decimals_than_the_currency_has_is_refused(amount, currency):
    with pytest.raises(ValueError):
        money.to_minor(Decimal(amount), currency)


def test_the_currency_list():
    assert {"EGP", "SAR", "AED", "KWD", "USD", "EUR", "JPY"} <= money.CURRENCIES
    assert not {"XXX", "XAU", "ZZZ", "usd"} & money.CURRENCIES


def test_the_migration_moves_stored_fees_to_their_currencys_minor_units(tmp_path):
    """Fees were all stored in hundredths (on SQLite, in a process of its own)."""
    from tests.procs import run_on_sqlite

    run_on_sqlite(
        """
from django.core.management import call_command
call_command("migrate", "doctors", "0002", verbosity=0)
from doctors.models import DoctorProfile
from tests.doctors.factories import doctor
fees = {"KWD": 1225, "JPY": 300000, "EGP": 25050}  # 12.25 KWD, 3000 JPY, 250.50 EGP
ids = {c: doctor(currency=c, fee_minor=m).pk for c, m in fees.items()}
call_command("migrate", "doctors", verbosity=0)
from core import money
shown = {c: money.amount(DoctorProfile.objects.get(pk=i).fee_minor, c) for c, i in ids.items()}
assert shown == {"KWD": "12.250", "JPY": "3000", "EGP": "250.50"}, shown
print("sqlite ok")
""",
        tmp_path,
    )
