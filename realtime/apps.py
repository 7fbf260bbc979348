from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import logging

        from core import invalidation
        from realtime import selectors, unread
        from realtime.tickets import PATH_LOGGERS, RedactTickets

        unread.COUNTERS.setdefault("notifications", selectors.unread_notifications)
        invalidation.OPS[unread.FORGET] = unread.forget
        for name in PATH_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactTickets) for f in logger.filters):
                logger.addFilter(RedactTickets())
