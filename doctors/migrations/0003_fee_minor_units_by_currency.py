"""Fees are kept in the minor units of their own currency (core.money): until now every fee
was stored in hundredths, so the fees in currencies with three decimals (KWD, BHD, OMR, JOD,
IQD, LYD, TND) gain a digit and those without decimals (JPY, XOF...) lose two."""

from django.db import migrations
from django.db.models import F

THREE = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
NONE = ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
        "VUV", "XAF", "XOF", "XPF"]  # fmt: skip


def forwards(apps, schema_editor):
    profiles = apps.get_model("doctors", "DoctorProfile").objects
    profiles.filter(currency__in=THREE).update(fee_minor=F("fee_minor") * 10)
    for profile in profiles.filter(currency__in=NONE).only("pk", "fee_minor"):
        profiles.filter(pk=profile.pk).update(fee_minor=profile.fee_minor // 100)


def backwards(apps, schema_editor):
    profiles = apps.get_model("doctors", "DoctorProfile").objects
    for profile in profiles.filter(currency__in=THREE).only("pk", "fee_minor"):
        profiles.filter(pk=profile.pk).update(fee_minor=profile.fee_minor // 10)
    profiles.filter(currency__in=NONE).update(fee_minor=F("fee_minor") * 100)


class Migration(migrations.Migration):
    dependencies = [
        ("doctors", "0002_directory_entry"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
