"""Money (DESIGN: amounts as decimal strings with an ISO 4217 currency in the API, integer
minor units in the database): which currencies exist and how many decimals each has.

Kuwaiti, Bahraini, Omani, Jordanian, Iraqi, Libyan and Tunisian amounts have three decimals,
yen and CFA francs none: an amount is never read as hundredths blindly.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from django.db.models import BigIntegerField, Case, F, Q, When

# The decimals of the currencies whose minor unit is not a hundredth (ISO 4217).
_NO_DECIMALS = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split())
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

# The active ISO 4217 currencies a fee can be in (no funds, metals or test codes).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()
)


def decimals(currency: str) -> int:
    return 0 if currency in _NO_DECIMALS else 3 if currency in _THREE_DECIMALS else 2


def to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` in minor units; ValueError if it has more decimals than the currency."""
    minor = amount.scaleb(decimals(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} amounts have {decimals(currency)} decimals at most")
    return int(minor)


def amount(minor: int, currency: str) -> str:
    """The decimal string of ``minor`` units of ``currency`` ("250.50", "12.250", "3000")."""
    places = decimals(currency)
    return f"{Decimal(minor).scaleb(-places):.{places}f}"


def compare(amount_field: str, currency_field: str, lookup: str, value: Decimal | int) -> Q:
    """Rows whose amount (``amount_field``, minor units of the row's ``currency_field``) is
    ``lookup`` (``gte`` or ``lte``) ``value``, read in each row's own currency: one condition
    per number of decimals."""
    value = Decimal(str(value))
    rounding = ROUND_CEILING if lookup == "gte" else ROUND_FLOOR
    odd = _NO_DECIMALS | _THREE_DECIMALS
    found = ~Q(**{f"{currency_field}__in": odd}) & Q(
        **{f"{amount_field}__{lookup}": _minor(value, 2, rounding)}
    )
    for places, codes in ((0, _NO_DECIMALS), (3, _THREE_DECIMALS)):
        found |= Q(**{f"{currency_field}__in": codes}) & Q(
            **{f"{amount_field}__{lookup}": _minor(value, places, rounding)}
        )
    return found


def sort_key(amount_field: str, currency_field: str) -> Any:
    """An integer expression of the amount (``amount_field``, minor units of the row's
    ``currency_field``) in thousandths of a unit of its own currency, for ordering rows by
    amount as ``compare`` reads it (12.250 KWD after 5.00 EGP, though 12250 minor units
    against 500). Integers, so that SQLite does not divide them as integers."""
    return Case(
        When(**{f"{currency_field}__in": _NO_DECIMALS}, then=F(amount_field) * 1000),
        When(**{f"{currency_field}__in": _THREE_DECIMALS}, then=F(amount_field)),
        default=F(amount_field) * 10,
        output_field=BigIntegerField(),
    )


def _minor(value: Decimal, places: int, rounding: str) -> int:
    return int(value.scaleb(places).to_integral_value(rounding=rounding))
