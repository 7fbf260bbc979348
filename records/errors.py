from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError


class RecordNotFound(ApplicationError):
    code = "records.not_found"
    status = 404
    message = _("This medical record does not exist or you cannot see it.")


class FileMissing(ApplicationError):
    code = "records.file_missing"
    status = 422
    message = _('Attach the file to upload as the form field "file".')


class EmptyFile(ApplicationError):
    code = "records.empty_file"
    status = 422
    message = _("The file is empty.")


class FileTooLarge(ApplicationError):
    code = "records.file_too_large"
    status = 413
    message = _("The file is larger than the allowed size.")


class FileTypeNotAllowed(ApplicationError):
    code = "records.file_type_not_allowed"
    status = 415
    message = _("This type of file is not accepted. Upload a PDF, an image, a DICOM file or text.")


class NotInCare(ApplicationError):
    code = "records.not_in_care"
    status = 403
    message = _("You can add records only for patients in your care.")


class NotAvailable(ApplicationError):
    code = "records.not_available"
    status = 409
    message = _("This file cannot be downloaded: it has not been found clean by the virus scan.")


class DirectUploadUnavailable(ApplicationError):
    code = "records.direct_upload_unavailable"
    status = 409
    message = _("Direct uploads need object storage. Upload the file to the API instead.")


class UploadNotReceived(ApplicationError):
    code = "records.upload_not_received"
    status = 409
    message = _("The file has not arrived in storage yet, or its upload link has expired.")


class DownloadLinkInvalid(ApplicationError):
    code = "records.download_link_invalid"
    status = 404
    message = _("This download link is not valid or has expired.")


class DoctorNotFound(ApplicationError):
    code = "records.doctor_not_found"
    status = 422
    message = _("No active doctor has this id.")


class ReasonRequired(ApplicationError):
    code = "records.reason_required"
    status = 422
    message = _("Give the reason for this emergency access.")


class InvalidUpload(ApplicationError):
    code = "records.invalid_upload"
    status = 422
    message = _('Send one file, as the form field "file", with the other form fields.')
