from django.apps import AppConfig


class TelemedConfig(AppConfig):
    """The composition root, installed as an app for its management commands (``seed_demo``)."""

    name = "telemed"
    verbose_name = "Telemed"

    def ready(self) -> None:
        """Wire the domain apps together where none may import the other."""
        from accounts import selectors as accounts_selectors
        from accounts import services as accounts_services
        from accounts import tasks as accounts_tasks
        from audit import tasks as audit_tasks
        from bookings import erasure as bookings_erasure
        from bookings import export as bookings_export
        from bookings import selectors as bookings_selectors
        from bookings import services as bookings_services
        from bookings import tasks as bookings_tasks
        from chat import consumers as chat_consumers
        from chat import export as chat_export
        from chat import selectors as chat_selectors
        from chat import services as chat_services
        from core import reclaim as core_reclaim
        from core import tasks as core_tasks
        from doctors import export as doctors_export
        from doctors import selectors as doctors_selectors
        from doctors import services as doctors_services
        from realtime import consumers as realtime_consumers
        from realtime import deliveries as realtime_deliveries
        from realtime import presence as realtime_presence
        from realtime import selectors as realtime_selectors
        from realtime import services as realtime_services
        from realtime import unread as realtime_unread
        from records import selectors as records_selectors
        from records import services as records_services
        from records import tasks as records_tasks

        doctors_selectors.AVAILABILITY = bookings_selectors.first_free_slots
        doctors_services.HOURS_ZONE_CHECK = bookings_services.hours_zone_check
        chat_services.ATTACHABLE = records_selectors.attachable
        # Chat's socket messages and its unread counter, served by the generic gateway.
        realtime_consumers.HANDLERS.update(chat_consumers.HANDLERS)
        realtime_consumers.RESUMERS.update(chat_consumers.RESUMERS)
        realtime_unread.COUNTERS["chat"] = chat_selectors.unread_total
        # Presence is shared by those in care together (bookings' one rule).
        realtime_presence.AUDIENCE = bookings_selectors.care_partner_ids
        # One start-up command starts every app's housekeeping loop.
        core_tasks.HOUSEKEEPING_LOOPS[:] = [
            bookings_tasks.housekeeping,
            records_tasks.records_housekeeping,
            realtime_deliveries.deliveries_housekeeping,
            core_reclaim.tasks_reclaim,
        ]
        # Tasks that check under a lock whether their work is still to do: a worker that
        # died in one of them is made up for by running it again.
        core_reclaim.RERUNNABLE.update(
            {
                records_tasks.scan_record.module_path,
                records_tasks.quarantine_sweep.module_path,
                realtime_deliveries.send_deliveries.module_path,
                accounts_tasks.erased_sessions_delete.module_path,  # deleting twice is harmless
                audit_tasks.mirror_event.module_path,  # an upsert: one document however often
            }
        )
        # What a task given up for good was for: a scan leaves no record pending.
        core_reclaim.GIVEN_UP[records_tasks.scan_record.module_path] = (
            records_tasks.scan_record_given_up
        )

        accounts_services.ACCESS_REVOKED_HOOKS[:] = [
            lambda user_id: realtime_services.close_user_sockets(user_id=user_id),
        ]
        # Erasure and the personal-data export reach every app's rows about a person.
        accounts_services.ERASURE_HOOKS[:] = [
            doctors_services.account_erased,
            bookings_erasure.account_erased,
            realtime_services.account_erased,
            chat_services.account_erased,
            records_services.account_erased,
        ]
        accounts_services.ADMIN_LOG_OWNED[:] = [doctors_services.admin_log_owned]
        accounts_selectors.EXPORT_SECTIONS.clear()
        accounts_selectors.EXPORT_SECTIONS.update(
            {  # the document's keys, in this order
                "doctor": bookings_export.doctor_section,
                "bookings": bookings_export.bookings_section,
                "chat": chat_export.chat_section,
                "records": records_selectors.export_section,
                "realtime": realtime_selectors.export_section,
            }
        )
        accounts_selectors.ACCESS_LOG_TARGETS[:] = [
            doctors_export.audit_targets,
            bookings_export.audit_targets,
            chat_export.audit_targets,
            records_selectors.export_audit_targets,
        ]
