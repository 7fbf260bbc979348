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


def test_the_migrations_move_stored_fees_and_name_stored_cities(tmp_path):
    """Fees were all stored in hundredths, and clinics had no city names (on SQLite, in a
    process of its own)."""
    from tests.procs import run_on_sqlite

    run_on_sqlite(
        """
from django.core.management import call_command
call_command("migrate", "doctors", "0002", verbosity=0)
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from accounts.models import Role
from tests.factories import make_user
# The profile as it was at 0002 (today's model has columns added since)
state = MigrationExecutor(connection).loader.project_state(("doctors", "0002_directory_entry"))
Profile = state.apps.get_model("doctors", "DoctorProfile")
fees = {"KWD": 1225, "JPY": 300000, "EGP": 25050}  # 12.25 KWD, 3000 JPY, 250.50 EGP
ids = {
    c: Profile.objects.create(user_id=make_user(role=Role.DOCTOR).pk, currency=c, fee_minor=m).pk
    for c, m in fees.items()
}
from doctors.models import DoctorProfile
call_command("migrate", "doctors", verbosity=0)
from core import money
shown = {c: money.amount(DoctorProfile.objects.get(pk=i).fee_minor, c) for c, i in ids.items()}
assert shown == {"KWD": "12.250", "JPY": "3000", "EGP": "250.50"}, shown
# and the clinics stored before their city's names were kept get them
import uuid
from django.db import connection
from doctors.geocoding import names_key
call_command("migrate", "doctors", "0003", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO doctors_clinic (id, doctor_id, name, address, city, country, latitude,"
        " longitude, time_zone, h3_r3, h3_r5, h3_r7) VALUES (%s, %s, 'C', '1 St', 'القاهرة',"
        " 'EG', 30.04, 31.23, 'Africa/Cairo', 1, 2, 3)",
        [uuid.uuid4().hex, ids["EGP"].hex],
    )
call_command("migrate", "doctors", verbosity=0)
from doctors.models import Clinic
assert Clinic.objects.get().city_names == names_key(["Cairo", "القاهرة"])
print("sqlite ok")
""",
        tmp_path,
    )
