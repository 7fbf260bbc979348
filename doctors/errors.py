from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError


class DoctorNotFound(ApplicationError):
    code = "directory.doctor_not_found"
    status = 404
    message = _("This doctor was not found.")


class ClinicNotFound(ApplicationError):
    code = "directory.clinic_not_found"
    status = 404
    message = _("This clinic was not found.")


class InvalidLocation(ApplicationError):
    code = "directory.invalid_location"
    status = 422
    message = _("The location is not valid. Check the latitude, longitude and radius.")


class UnknownSpecialty(ApplicationError):
    code = "directory.unknown_specialty"
    status = 422
    message = _("This specialty does not exist.")


class PlaceNotFound(ApplicationError):
    code = "directory.place_not_found"
    status = 422
    message = _("We could not find this place. Check the spelling or try a nearby city.")


class InvalidPlace(ApplicationError):
    code = "directory.invalid_place"
    status = 422
    message = _("Enter a city or an address of at most 200 characters.")


class ClinicInUse(ApplicationError):
    code = "directory.clinic_in_use"
    status = 409
    message = _(
        "This clinic has upcoming appointments. Cancel or move them before removing the clinic."
    )


class ClinicBusy(ApplicationError):
    code = "directory.clinic_busy"
    status = 409
    message = _("This clinic is being edited elsewhere. Please try again.")
