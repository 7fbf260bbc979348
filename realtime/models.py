from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An event a user can see, stored first and pushed second (so nothing is lost: a client
    that missed the push reads it here). Title and body are rendered at creation in the
    recipient's language. The id is monotonically increasing, per user too."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-id"], name="notification_user_idx")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"
