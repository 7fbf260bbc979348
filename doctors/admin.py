from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ForeignKey, ProtectedError, QuerySet
from django.forms import BaseInlineFormSet, ModelChoiceField, MultipleHiddenInput
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import Role, User
from accounts.services import user_hold
from audit.services import client_ip, record
from core.errors import ApplicationError
from doctors import services
from doctors.errors import ClinicInUse
from doctors.models import Clinic, DoctorProfile, Specialty, Verification


class InvalidatesDirectory(admin.ModelAdmin):
    """What the admin site changes shows in the public directory at once, as the API's
    changes do: its cached pages are invalidated (after commit)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.directory_changed()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        services.directory_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        services.directory_changed()


def _audit(
    request: HttpRequest, *, action: str, target_type: str, target_id: Any, data: Any
) -> None:
    record(
        action=action,
        actor_id=request.user.pk,
        actor_role=getattr(request.user, "role", ""),
        target_type=target_type,
        target_id=str(target_id),
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        data=data,
    )


@admin.register(Specialty)
class SpecialtyAdmin(InvalidatesDirectory):
    """Specialties name the directory's filters: each change and deletion is audited
    (``specialty.created``, ``specialty.changed``, ``specialty.deleted``; the code as
    ``slug``, since the trail redacts keys that look like secrets)."""

    list_display = ("code", "name_en", "name_ar")
    search_fields = ("code", "name_en", "name_ar")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if change and not form.changed_data:
            return  # saved as it was
        specialty = form.instance
        _audit(
            request,
            action="specialty.changed" if change else "specialty.created",
            target_type="specialty",
            target_id=specialty.pk,
            data={"slug": specialty.code, "fields": sorted(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_queryset(request, Specialty.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            specialties = list(queryset.select_for_update().order_by("pk"))
            for specialty in specialties:
                _audit(
                    request,
                    action="specialty.deleted",
                    target_type="specialty",
                    target_id=specialty.pk,
                    data={
                        "slug": specialty.code,
                        "name_en": specialty.name_en,
                        "name_ar": specialty.name_ar,
                        "doctors": specialty.doctors.count(),
                    },
                )
            super().delete_queryset(
                request, Specialty.objects.filter(pk__in=[s.pk for s in specialties])
            )


class PostsBackWhatItShowed(forms.ModelForm):
    """Each field posts back, hidden, the value the page showed: only what the admin changed
    on the page is a change, and a field the doctor changed since the page was rendered is
    not set back to what the page showed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            return
        for name, field in self.fields.items():
            if field.disabled or field.widget.is_hidden:
                continue
            # A post without the hidden value (not from the page) is compared with the row;
            # but a page showing no choice of a multiple one posts no hidden value either.
            shown = self.add_initial_prefix(name)
            multiple = issubclass(field.hidden_widget, MultipleHiddenInput)
            field.show_hidden_initial = not self.is_bound or shown in self.data or multiple


_ERASED = _("This account was erased at its owner's request: it cannot be changed.")


def _refuse_if_erased(user: User) -> None:
    """Hold the doctor's account until the save commits (an erasure locks its row; the
    admin's change page is one transaction): a page read before an erasure and posted after
    it does not write the erased texts back."""
    _active, erased = user_hold(user)
    if erased:
        raise ValidationError(_ERASED, code="account_erased")


class DoctorProfileForm(PostsBackWhatItShowed):
    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if not self.instance._state.adding and self.has_changed():
            _refuse_if_erased(self.instance.user)
        return cleaned


class ClinicFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        changed = any(form.has_changed() for form in self.forms) or self.deleted_forms
        if changed and self.instance.pk is not None:
            _refuse_if_erased(self.instance.user)


def _changed_columns(form: forms.ModelForm) -> list[str]:
    """The model's own columns among what the form changed (not its many-to-many fields,
    which ``save_m2m`` sets)."""
    columns = {f.name for f in form._meta.model._meta.concrete_fields}
    return [name for name in form.changed_data if name in columns]


class ClinicInline(admin.TabularInline):
    """Clinics are added and moved by their doctors (the API geocodes them and indexes their
    location); here only a name can be corrected."""

    model = Clinic
    form = PostsBackWhatItShowed
    formset = ClinicFormSet
    extra = 0
    fields = ("name", "address", "city", "country", "latitude", "longitude", "time_zone")
    readonly_fields = ("address", "city", "country", "latitude", "longitude", "time_zone")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DecisionForm(ActionForm):
    """The action bar's form, with the reason a rejection is told with."""

    reason = forms.CharField(
        required=False, max_length=1000, label=_("Reason (told to the doctor; needed to reject)")
    )


@admin.register(DoctorProfile)
class DoctorProfileAdmin(InvalidatesDirectory):
    """Verification from the admin site goes through the same audited service as the API.
    A profile stays with its account: the account is picked (by id, among doctors) only when
    the profile is added. It is never deleted here (a rejection unlists a doctor), and its
    fee is the doctor's own (a currency changed alone would change the price), and so is its
    time zone (the zone of hours without a clinic: changed by the doctor, whose hours are
    checked against it, ``bookings.services.hours_zone_check``)."""

    list_display = ("user", "designation", "verification", "verified_at", "rating_count")
    raw_id_fields = ("user",)
    list_filter = ("verification", "specialties")
    search_fields = ("user__email", "user__first_name", "user__last_name")
    readonly_fields = (
        "verification",
        "verification_reason",
        "verified_at",
        "rating_sum",
        "rating_count",
        "fee_minor",
        "currency",
    )
    form = DoctorProfileForm
    inlines = [ClinicInline]
    actions = ["verify", "reject"]
    action_form = DecisionForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "user", "time_zone") if obj is not None else fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "user":
            kwargs["queryset"] = User.objects.filter(role=Role.DOCTOR)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Only the fields changed on the page are written: a whole-row save would set back
        what changed since the profile was read (a rejection, which relists the doctor;
        ratings added meanwhile; the doctor's own edits)."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        # The profile before its clinics and their index entries (the page's formsets and
        # specialties, saved next in the same transaction), in the order the API's services
        # take them: a doctor's clinic edit meanwhile waits, instead of deadlocking.
        DoctorProfile.objects.select_for_update(no_key=True).filter(pk=obj.pk).first()
        columns = _changed_columns(form)
        if columns:
            obj.save(update_fields=[*columns, "updated_at"])

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Clinics, as their profile: only what changed on the page is written (a doctor's
        move of a clinic meanwhile, geocoded and indexed, stays)."""
        formset.save(commit=False)
        for clinic, fields in formset.changed_objects:
            clinic.save(update_fields=fields)
        formset.removed_ids = []  # for the audit (a deleted row's pk is None)
        for clinic in formset.deleted_objects:
            pk = str(clinic.pk)
            try:
                clinic.delete()
            except ProtectedError:  # booked after the page was checked, before it was saved
                self.message_user(request, f"{clinic}: {ClinicInUse.message}", messages.ERROR)
            else:
                formset.removed_ids.append(pk)
        formset.save_m2m()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Audited, as the API's changes of a profile are."""
        super().save_related(request, form, formsets, change)
        data: dict[str, Any] = {"fields": sorted(form.changed_data)}
        for formset in formsets:
            if formset.model is Clinic:
                changed = sorted(str(clinic.pk) for clinic, _ in formset.changed_objects)
                deleted = sorted(getattr(formset, "removed_ids", []))
                data |= {"clinics_changed": changed} if changed else {}
                data |= {"clinics_deleted": deleted} if deleted else {}
        if change and data == {"fields": []}:
            return  # saved as it was
        record(
            action="doctor.updated_by_admin" if change else "doctor.created_by_admin",
            actor_id=request.user.pk,
            actor_role=getattr(request.user, "role", ""),
            target_type="doctor",
            target_id=str(form.instance.pk),
            data=data,
        )

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[DoctorProfile], decision: str
    ) -> None:
        done = 0
        reason = request.POST.get("reason", "")
        for profile in queryset:
            try:
                services.doctor_verify(
                    actor=request.user,  # type: ignore[arg-type]
                    doctor_id=profile.pk,
                    decision=decision,
                    reason=reason,
                )
                done += 1
            except ApplicationError as exc:
                why = "; ".join(str(v) for v in exc.fields.values()) or str(exc.detail)
                self.message_user(request, f"{profile}: {why}", messages.ERROR)
        text = (
            ngettext("%(count)d doctor verified.", "%(count)d doctors verified.", done)
            if decision == Verification.VERIFIED
            else ngettext("%(count)d doctor rejected.", "%(count)d doctors rejected.", done)
        )
        self.message_user(request, text % {"count": done}, messages.SUCCESS)

    @admin.action(description=_("Verify the selected doctors"), permissions=["change"])
    def verify(self, request: HttpRequest, queryset: QuerySet[DoctorProfile]) -> None:
        self._decide(request, queryset, Verification.VERIFIED)

    @admin.action(description=_("Reject the selected doctors"), permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[DoctorProfile]) -> None:
        self._decide(request, queryset, Verification.REJECTED)
