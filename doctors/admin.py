from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.errors import ApplicationError
from doctors import services
from doctors.models import Clinic, DoctorProfile, Specialty, Verification


@admin.register(Specialty)
class SpecialtyAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "name_ar")
    search_fields = ("code", "name_en", "name_ar")


class ClinicInline(admin.TabularInline):
    model = Clinic
    extra = 0
    fields = ("name", "address", "city", "country", "latitude", "longitude", "time_zone")
    readonly_fields = ("latitude", "longitude", "time_zone")


@admin.register(DoctorProfile)
class DoctorProfileAdmin(admin.ModelAdmin):
    """Verification from the admin site goes through the same audited service as the API."""

    list_display = ("user", "designation", "verification", "verified_at", "rating_count")
    list_filter = ("verification", "specialties")
    search_fields = ("user__email", "user__first_name", "user__last_name")
    readonly_fields = (
        "verification",
        "verification_reason",
        "verified_at",
        "rating_sum",
        "rating_count",
    )
    inlines = [ClinicInline]
    actions = ["verify", "reject"]

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[DoctorProfile], decision: str
    ) -> None:
        done = 0
        for profile in queryset:
            try:
                services.doctor_verify(
                    actor=request.user,  # type: ignore[arg-type]
                    doctor_id=profile.pk,
                    decision=decision,
                    reason="Decided on the admin site",
                )
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{profile}: {exc.detail}", messages.ERROR)
        self.message_user(request, f"{done} doctor(s) {decision}.", messages.SUCCESS)

    @admin.action(description="Verify the selected doctors", permissions=["change"])
    def verify(self, request: HttpRequest, queryset: QuerySet[DoctorProfile]) -> None:
        self._decide(request, queryset, Verification.VERIFIED)

    @admin.action(description="Reject the selected doctors", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[DoctorProfile]) -> None:
        self._decide(request, queryset, Verification.REJECTED)
