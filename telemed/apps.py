from django.apps import AppConfig


class TelemedConfig(AppConfig):
    """The composition root, installed as an app for its management commands (``seed_demo``)."""

    name = "telemed"
    verbose_name = "Telemed"

    def ready(self) -> None:
        """Wire the domain apps together where none may import the other."""
        from accounts import services as accounts_services
        from bookings import selectors as bookings_selectors
        from doctors import selectors as doctors_selectors
        from realtime import presence as realtime_presence
        from realtime import services as realtime_services

        doctors_selectors.AVAILABILITY = bookings_selectors.first_free_slots
        # Presence is shared by those in care together (bookings' one rule).
        realtime_presence.AUDIENCE = bookings_selectors.care_partner_ids

        accounts_services.ACCESS_REVOKED_HOOKS[:] = [
            lambda user_id: realtime_services.close_user_sockets(user_id=user_id),
        ]
