"""Writes of the directory. Every change that alters what the public directory shows bumps
the directory's cache version, so cached search pages and profiles are never stale."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model, ProtectedError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import AccountErased
from accounts.models import Role, User
from accounts.permissions import require_permission, require_role
from accounts.services import ErasedPerson, user_hold, user_hold_active
from audit.services import record
from core import money
from core.errors import InvalidRequest
from core.invalidation import fresh_version, invalidate_on_commit
from doctors import geo, index
from doctors.errors import (
    ClinicBusy,
    ClinicInUse,
    ClinicNotFound,
    DoctorNotFound,
    InvalidLocation,
    InvalidPlace,
    PlaceNotFound,
)
from doctors.models import Clinic, DoctorProfile, Specialty, Verification, languages_column

# Hours live in bookings, which doctors may not import: the composition root plugs in the
# check that the doctor's hours still meet none of their others once their zone changes
# (``bookings.services.hours_zone_check``: the profile's zone, or a clinic's that moves).
HOURS_ZONE_CHECK: Callable[..., None] | None = None

CACHE_VERSION_KEY = "directory:version"


def directory_version() -> int:
    version = cache.get(CACHE_VERSION_KEY)
    if version is None:
        cache.add(CACHE_VERSION_KEY, fresh_version(), timeout=None)
        version = cache.get(CACHE_VERSION_KEY, 0)
    return int(version)


def directory_changed() -> None:
    """Invalidate every cached directory answer after the change commits (tried again
    later if Redis fails then: :mod:`core.invalidation`)."""
    invalidate_on_commit("bump", CACHE_VERSION_KEY)


def doctor_profile_ensure(*, user: User) -> DoctorProfile:
    """Doctors get their (pending) profile the first time they reach the directory."""
    require_role(user, Role.DOCTOR)
    profile, _ = DoctorProfile.objects.get_or_create(
        user=user, defaults={"time_zone": user.time_zone}
    )
    return profile


_PROFILE_FIELDS = {
    "designation",
    "bio_en",
    "bio_ar",
    "offers_in_person",
    "offers_video",
    "offers_chat",
    "years_experience",
    "time_zone",
}


def _set_fee(profile: DoctorProfile, fee: Decimal | None, currency: str | None) -> None:
    """The fee in minor units of its currency. A new currency without a new fee keeps the
    amount (250.50 EGP becomes 250.50 USD, not 25.050 KWD)."""
    currency = currency or profile.currency
    if currency not in money.CURRENCIES:
        raise InvalidRequest(fields={"currency": _("Unknown currency: use an ISO 4217 code.")})
    if fee is None:
        fee = Decimal(money.amount(profile.fee_minor, profile.currency))
    try:
        profile.fee_minor = money.to_minor(fee, currency)
    except ValueError as exc:
        raise InvalidRequest(
            fields={
                "fee": _("%(currency)s amounts have %(places)s decimals at most.")
                % {"currency": currency, "places": money.decimals(currency)}
            }
        ) from exc
    profile.currency = currency


@transaction.atomic
def doctor_profile_update(*, user: User, changes: dict[str, Any]) -> DoctorProfile:
    user_hold_active(user)  # not written back after an erasure of the account
    profile = doctor_profile_ensure(user=user)
    profile = DoctorProfile.objects.select_for_update().get(pk=profile.pk)
    zone = profile.time_zone
    for key in _PROFILE_FIELDS & changes.keys():
        setattr(profile, key, changes[key])
    if profile.time_zone != zone and HOURS_ZONE_CHECK is not None:
        HOURS_ZONE_CHECK(profile, field="time_zone")
    if "fee" in changes or "currency" in changes:
        _set_fee(profile, changes.get("fee"), changes.get("currency"))
    if "languages" in changes:
        profile.languages = languages_column(changes["languages"])
    if "specialties" in changes:
        found = list(Specialty.objects.filter(code__in=changes["specialties"]))
        missing = set(changes["specialties"]) - {s.code for s in found}
        if missing:
            from doctors.errors import UnknownSpecialty

            raise UnknownSpecialty(
                fields={
                    "specialties": _("These specialties do not exist: %(codes)s.")
                    % {"codes": ", ".join(sorted(missing))}
                }
            )
        profile.specialties.set(found)
    _ask_again(profile)
    profile.save()
    directory_changed()
    return profile


def _locate(
    *,
    user: User,
    address: str,
    city: str,
    latitude: float | None,
    longitude: float | None,
) -> dict:
    """Coordinates, city (and the names it goes by), country and time zone of a clinic:
    geocoded from its address (in its city, when known; Google's requests counted against
    the doctor's quota), or taken as given when the doctor pins the location (the time zone
    then from the nearest city; the city the doctor gave is kept). Half a pin is refused."""
    from doctors.geocoding import MAX_QUERY_LENGTH, city_key, geocode, google_quota, nearest_place

    if (latitude is None) != (longitude is None):
        missing = "latitude" if latitude is None else "longitude"
        raise InvalidLocation(fields={missing: _("Send the latitude and the longitude together.")})
    if latitude is not None and longitude is not None:
        place = nearest_place(latitude, longitude, language=user.language)
    else:
        query = f"{address}, {city}"
        # The city only narrows the search: an address too long to take it along goes alone.
        if not city or len(query) > MAX_QUERY_LENGTH:
            query = address
        try:
            place = geocode(
                query, language=user.language, quota=lambda: google_quota(f"user:{user.pk}")
            )
        except (InvalidPlace, PlaceNotFound) as exc:  # told on the field to correct
            raise type(exc)(fields={"address": str(type(exc).message)}) from exc
        latitude, longitude = place.latitude, place.longitude
    city = (city or place.city)[: Clinic._meta.get_field("city").max_length]
    return {
        "latitude": latitude,
        "longitude": longitude,
        "city": city,
        "city_names": city_key(city),
        "country": place.country,
        "time_zone": place.time_zone,
    }


def _index(clinic: Clinic) -> None:
    for resolution, cell in geo.cells_for(clinic.latitude, clinic.longitude).items():
        setattr(clinic, geo.column_for(resolution), cell)


def clinic_create(
    *,
    user: User,
    name: str,
    address: str,
    city: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
) -> Clinic:
    require_role(user, Role.DOCTOR)
    # Geocoded before the transaction: Google may take seconds, and nothing waits on them.
    located = _locate(user=user, address=address, city=city, latitude=latitude, longitude=longitude)
    with transaction.atomic():
        user_hold_active(user)  # not written back after an erasure of the account
        profile = doctor_profile_ensure(user=user)
        clinic = Clinic(doctor=profile, name=name, address=address, **located)
        _index(clinic)
        clinic.save()
        _ask_again(profile)
        directory_changed()
    return clinic


def _ask_again(profile: DoctorProfile | None) -> None:
    """A rejected doctor who corrects their profile or a clinic (often the reason for the
    rejection) asks to be looked at again."""
    if profile is not None and DoctorProfile.objects.filter(
        pk=profile.pk, verification=Verification.REJECTED
    ).update(verification=Verification.PENDING):
        profile.verification = Verification.PENDING


_MOVES = {"address", "city", "latitude", "longitude"}


def clinic_update(*, user: User, clinic_id: Any, changes: dict[str, Any]) -> Clinic:
    """Edit a clinic. A new address or pin is geocoded before the clinic is locked (Google
    may take seconds: bookings of the doctor must not wait on it), then applied under the
    lock if the address and city it was worked out from are still the clinic's; else it is
    worked out again."""
    for _attempt in range(3):
        seen = _own_clinic(user, clinic_id)
        # What the patch does not change stays: the clinic's city is the context of a new
        # address, and is kept when only the pin moves.
        context = {key: changes.get(key, getattr(seen, key)) for key in ("address", "city")}
        located = None
        # A client that sends the whole form back (to rename the clinic, say) moves nothing:
        # only a new address, city or pin is located again (a pin the doctor placed by hand
        # is not replaced by the geocoder's idea of the same address).
        if any(changes[key] != getattr(seen, key) for key in _MOVES & changes.keys()):
            located = _locate(
                user=user,
                **context,
                latitude=changes.get("latitude"),
                longitude=changes.get("longitude"),
            )
        with transaction.atomic():
            user_hold_active(user)  # not written back after an erasure of the account
            # The profile before the clinic, as clinic_delete takes them (and a profile
            # edit, whose index rebuild needs the clinic): in the other order a profile
            # edit meanwhile and this one each waited on the other (a deadlock).
            profile = DoctorProfile.objects.select_for_update(no_key=True).filter(user=user).first()
            clinic = _own_clinic(user, clinic_id, lock=True)
            if located is not None and (clinic.address, clinic.city) != (seen.address, seen.city):
                continue  # edited meanwhile: geocode in its new context
            if (
                located is not None
                and located["time_zone"] != clinic.time_zone
                and HOURS_ZONE_CHECK is not None
            ):
                field = next(
                    k for k in ("address", "city", "latitude", "longitude") if k in changes
                )
                HOURS_ZONE_CHECK(
                    profile, field=field, clinic_id=clinic.pk, zone=located["time_zone"]
                )
            for key in ("name", "address", "city") & changes.keys():
                setattr(clinic, key, changes[key])
            for key, value in (located or {}).items():
                setattr(clinic, key, value)
            if located is not None:
                _index(clinic)
            clinic.save()
            _ask_again(profile)
            directory_changed()
            return clinic
    raise ClinicBusy()


def _own_clinic(user: User, clinic_id: Any, *, lock: bool = False) -> Clinic:
    """The calling doctor's clinic; with ``lock``, the clinic's row alone is locked (not the
    doctor's profile or account that the filter joins: bookings take those)."""
    clinics = Clinic.objects.filter(id=clinic_id, doctor__user=user)
    if lock:
        clinics = clinics.select_for_update(of=("self",))
    clinic = clinics.first()
    if clinic is None:
        raise ClinicNotFound()
    return clinic


@transaction.atomic
def clinic_delete(*, user: User, clinic_id: Any) -> None:
    """Remove a clinic; not while it has upcoming appointments (their patients would lose
    the address)."""
    # The account, the profile, then the clinic: the order an erasure takes them in, and a
    # booking's (it holds the profile for share, then its appointment's key needs the
    # clinic). In one statement, the clinic was locked before the profile, and a booking
    # between the two deadlocked with it. The profile locked first, a booking at the clinic
    # is now before the check (and protects the clinic) or after it (and finds no slot).
    user_hold_active(user)
    profile = DoctorProfile.objects.select_for_update(no_key=True).filter(user=user).first()
    clinic = _own_clinic(user, clinic_id, lock=True)
    try:
        clinic.delete()
    except ProtectedError as exc:
        raise ClinicInUse() from exc
    _ask_again(profile)
    directory_changed()


@transaction.atomic
def doctor_verify(*, actor: User, doctor_id: Any, decision: str, reason: str = "") -> DoctorProfile:
    """An admin (or a helper with the permission) verifies or rejects a doctor. Audited; the
    doctor is told through the notification service (in-app, and by e-mail or SMS), in their
    language. A rejection needs its reason. Verifying a verified doctor changes nothing (no
    new date, no message). An erased doctor's account is neither (:class:`AccountErased`):
    no reason is stored about them, and no message goes to the erased account."""
    require_permission(actor, "doctors.change_doctorprofile")
    if decision not in (Verification.VERIFIED, Verification.REJECTED):
        raise InvalidRequest(fields={"decision": _("Decide verified or rejected.")})
    reason = reason.strip()
    if decision == Verification.REJECTED and not reason:
        raise InvalidRequest(fields={"reason": _("Say why: the doctor is told the reason.")})
    # The doctor's account before their profile, in the order an erasure of it takes them.
    user_id = DoctorProfile.objects.filter(id=doctor_id).values_list("user_id", flat=True).first()
    if user_id is None:
        raise DoctorNotFound()
    _active, erased = user_hold(User(pk=user_id))
    if erased:
        raise AccountErased()
    profile = (
        DoctorProfile.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(id=doctor_id)
        .first()
    )
    if profile is None:
        raise DoctorNotFound()
    if decision == profile.verification == Verification.VERIFIED:
        return profile
    profile.verification = decision
    profile.verification_reason = reason
    profile.verified_at = timezone.now() if decision == Verification.VERIFIED else None
    profile.save(update_fields=["verification", "verification_reason", "verified_at", "updated_at"])
    record(
        action=f"doctor.{decision}",
        actor_id=actor.pk,
        actor_role=actor.role,
        target_type="doctor",
        target_id=str(profile.pk),
        data={"reason": reason},
    )
    directory_changed()
    _tell_doctor(profile, decision, reason)
    return profile


def _tell_doctor(profile: DoctorProfile, decision: str, reason: str) -> None:
    from realtime.services import notify

    def render(user: User) -> tuple[str, str]:
        if decision == Verification.VERIFIED:
            return _("Your Telemed profile is verified"), _(
                "Your profile is now listed in the Telemed directory. Patients can find and book you."
            )
        return _("Your Telemed profile was not verified"), _(
            "Your profile could not be verified. Reason: %(reason)s"
        ) % {"reason": reason or "-"}

    notify(
        users=[profile.user],
        kind="doctor.verification",
        data={"doctor_id": str(profile.pk), "decision": decision},
        render=render,
    )


# Decimal places an erased doctor's clinic keeps of its pin: a tenth of a degree (about
# 11 km), the precision of the city the clinic still names.
ERASED_PIN_DECIMALS = 1


def admin_log_owned(user: User) -> list[tuple[type[Model], list[Any]]]:
    """What of the directory was ``user``'s own, for the admin log's unnaming at their
    erasure (``accounts.services.ADMIN_LOG_OWNED``): their profile, whose page lists their
    clinics by name, and those clinics."""
    profiles = list(DoctorProfile.objects.filter(user=user).values_list("id", flat=True))
    clinics = list(Clinic.objects.filter(doctor_id__in=profiles).values_list("id", flat=True))
    return [(DoctorProfile, profiles), (Clinic, clinics)]


def account_erased(user: User, person: ErasedPerson) -> None:
    """Erasure of ``user``'s account (``accounts.services.ERASURE_HOOKS``, wired at the root):
    a doctor's free texts (designation, biographies, the verifier's reason, languages) are
    cleared, and their clinics' names and addresses. The clinics stay (past appointments
    point at them) with their city, and with their pin rounded to the city's precision
    (:data:`ERASED_PIN_DECIMALS`), not cleared: an exact pin would point at the doctor's
    door, but a clinic has a location by definition (non-null columns that the directory's
    index, its hand-written search SQL and every clinic answer rely on). The directory
    stopped listing the doctor when the account was saved inactive (doctors.index); its
    entries are rebuilt from the rounded pins and its cached answers dropped here too."""
    doctor_ids = list(DoctorProfile.objects.filter(user=user).values_list("id", flat=True))
    if not doctor_ids:
        return
    DoctorProfile.objects.filter(id__in=doctor_ids).update(
        designation="", bio_en="", bio_ar="", verification_reason="", languages=","
    )
    clinics = list(Clinic.objects.filter(doctor_id__in=doctor_ids))
    for clinic in clinics:
        clinic.name = clinic.address = ""
        clinic.latitude = round(clinic.latitude, ERASED_PIN_DECIMALS)
        clinic.longitude = round(clinic.longitude, ERASED_PIN_DECIMALS)
        _index(clinic)
    cells = [geo.column_for(resolution) for resolution in geo.RESOLUTIONS]
    Clinic.objects.bulk_update(clinics, ["name", "address", "latitude", "longitude", *cells])
    index.rebuild(doctor_ids=doctor_ids)  # bulk_update sends no post_save
    directory_changed()
