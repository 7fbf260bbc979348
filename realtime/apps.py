from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime import selectors, unread

        unread.COUNTERS.setdefault("notifications", selectors.unread_notifications)
