"""Phone numbers stored in other scripts' decimal digits, rewritten in ASCII digits.

allauth's E.164 check took any script's digits after an ASCII first one (``+2٠١٠...``), and
each spelling was stored as typed: a number of its own. Numbers are now read in ASCII digits
wherever allauth takes one (``accounts.middleware``), so such an account could no longer
sign in with its number, and another account could verify the ASCII spelling of it.
``User.phone`` is the only phone column of this app (allauth keeps numbers where the
adapter says: there).

Every such row is rewritten in ASCII digits. The rule for its verified flag: a number
verified by one account is never handed to another.

- Another account holds the ASCII spelling verified: it keeps it (that is what signs in
  with it today), and the rewritten row is no longer verified.
- Two or more accounts verified other spellings of one number, and none the ASCII one: none
  of them gets it (which of them holds the line now cannot be told); none stays verified.
- Otherwise the row keeps its flag: the only verified spelling of a number is that number.

A row that loses its flag is rewritten all the same, not left in its spelling: verified
again in that spelling it would be a second verified owner of the number, whereas in ASCII
the unique constraint on verified numbers refuses that while the other account holds it; and
a code sent to it reaches the number itself. Its owner signs in another way (an e-mail
address, Google) or, for an account with none, through support. The migration cannot be
undone (the spellings typed are not kept): going back leaves the numbers in ASCII, which
the code before read as well.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Any

from django.db import migrations


def _ascii_digits(text: str) -> str:
    # A copy of the rule in accounts.middleware, as it was when this was written.
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def phones_in_ascii_digits(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("accounts", "User")
    spellings: dict[str, list[Any]] = defaultdict(list)  # ASCII number -> rows spelling it
    for user in User.objects.filter(phone__regex=r"[^+0-9]").only("phone", "phone_verified"):
        number = _ascii_digits(user.phone)
        if number != user.phone:
            spellings[number].append(user)
    held = set(
        User.objects.filter(phone__in=list(spellings), phone_verified=True).values_list(
            "phone", flat=True
        )
    )
    for number, users in spellings.items():
        verified = [user for user in users if user.phone_verified]
        keeps = number not in held and len(verified) == 1
        for user in users:
            User.objects.filter(pk=user.pk).update(
                phone=number, phone_verified=user.phone_verified and keeps
            )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_verified_phone_unique_session_epoch"),
    ]

    operations = [
        migrations.RunPython(phones_in_ascii_digits, migrations.RunPython.noop),
    ]
