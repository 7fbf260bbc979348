from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError, RateLimited


class ConversationNotFound(ApplicationError):
    code = "chat.not_found"
    status = 404
    message = _("This conversation does not exist or you are not part of it.")


class MessageNotFound(ApplicationError):
    code = "chat.message_not_found"
    status = 404
    message = _("This message does not exist.")


class NotInCare(ApplicationError):
    code = "chat.not_in_care"
    status = 403
    message = _("You can chat only with a doctor or patient you are in care with.")


class ConversationClosed(ApplicationError):
    code = "chat.closed"
    status = 409
    message = _("The doctor has closed this conversation.")


class EmptyText(ApplicationError):
    code = "chat.empty_text"
    status = 422
    message = _("Write a message or attach a file.")


class TextTooLong(ApplicationError):
    code = "chat.text_too_long"
    status = 422
    message = _("The message is too long.")


class SeqOutOfRange(ApplicationError):
    code = "chat.seq_out_of_range"
    status = 422
    message = _("There is no message with this number in the conversation yet.")


class AttachmentNotAllowed(ApplicationError):
    code = "chat.attachment_not_allowed"
    status = 422
    message = _(
        "Only medical files that passed the virus scan and that the doctor may see can be attached."
    )


class NotSender(ApplicationError):
    code = "chat.not_sender"
    status = 403
    message = _("Only the sender can change or delete this message.")


class EditWindowPassed(ApplicationError):
    code = "chat.edit_window_passed"
    status = 409
    message = _("This message can no longer be edited.")


class MessageDeleted(ApplicationError):
    code = "chat.message_deleted"
    status = 409
    message = _("This message has been deleted.")


class DoctorOnly(ApplicationError):
    code = "chat.doctor_only"
    status = 403
    message = _("Only the doctor can close or reopen a conversation.")


class SendRateLimited(RateLimited):
    code = "chat.rate_limited"
    message = _("You are sending messages too quickly. Please wait a moment.")


class ReasonRequired(ApplicationError):
    code = "chat.reason_required"
    status = 422
    message = _("Give the reason for reading this conversation.")
