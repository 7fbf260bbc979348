from __future__ import annotations

from django.conf import settings
from django.db import models

from core.fields import EncryptedJSONField


class IdempotencyRecord(models.Model):
    """The first answer to an unsafe request sent with an ``Idempotency-Key``, kept 24 h.
    The answer is encrypted: it can carry protected health information (a booking's reason)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True)
    body = EncryptedJSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
