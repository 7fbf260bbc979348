"""Fill the Arabic catalogue from a reviewed dictionary and report what is still missing.

Usage: ``manage.py makemessages -l ar --no-location --ignore=.venv --ignore=tests`` then
``python scripts/ar_messages.py``. Translations live here (reviewed text, not machine output
copied blindly) so that a diff of this file is the review.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polib

PO = Path(__file__).resolve().parent.parent / "locale/ar/LC_MESSAGES/django.po"

AR = {
    "Online payment is not available yet: patients pay at the appointment.": "الدفع الإلكتروني غير متاح بعد: يدفع المرضى عند الموعد.",
    "The request body is not valid form data.": "نص الطلب ليس بيانات نموذج صالحة.",
    "Too many fields or files were sent.": "أُرسِل عدد كبير جدًا من الحقول أو الملفات.",
    "Send an object of conversation ids to the last seq and rev seen.": "أرسل كائنًا يربط كل معرّف محادثة بآخر رقم تسلسلي وآخر رقم مراجعة اطّلعت عليهما.",
    # records
    "This medical record does not exist or you cannot see it.": "هذا السجل الطبي غير موجود أو لا يحق لك الاطلاع عليه.",
    'Attach the file to upload as the form field "file".': 'أرفق الملف المراد رفعه في حقل النموذج "file".',
    "The file is empty.": "الملف فارغ.",
    "The file is larger than the allowed size.": "حجم الملف أكبر من الحد المسموح به.",
    "This type of file is not accepted. Upload a PDF, an image, a DICOM file or text.": "هذا النوع من الملفات غير مقبول. ارفع ملف PDF أو صورة أو ملف DICOM أو نصًا.",
    "You can add records only for patients in your care.": "يمكنك إضافة سجلات للمرضى الذين تتولى رعايتهم فقط.",
    "This file cannot be downloaded: it has not been found clean by the virus scan.": "لا يمكن تنزيل هذا الملف: لم يثبت فحص الفيروسات أنه سليم.",
    "Direct uploads need object storage. Upload the file to the API instead.": "يتطلب الرفع المباشر تخزين الكائنات. ارفع الملف عبر واجهة البرمجة بدلًا من ذلك.",
    "The file has not arrived in storage yet, or its upload link has expired.": "لم يصل الملف إلى التخزين بعد، أو انتهت صلاحية رابط الرفع.",
    "This download link is not valid or has expired.": "رابط التنزيل هذا غير صالح أو انتهت صلاحيته.",
    "No active doctor has this id.": "لا يوجد طبيب نشط بهذا المعرّف.",
    "Give the reason for this emergency access.": "اذكر سبب هذا الوصول الطارئ.",
    'Send one file, as the form field "file", with the other form fields.': 'أرسل ملفًا واحدًا في حقل النموذج "file" مع حقول النموذج الأخرى.',
    "Lab result": "نتيجة تحليل",
    "Imaging": "تصوير طبي",
    "Prescription": "وصفة طبية",
    "Report": "تقرير",
    "Other": "أخرى",
    "Awaiting upload": "في انتظار الرفع",
    "Pending scan": "في انتظار الفحص",
    "Clean": "سليم",
    "Infected": "مصاب",
    "A file you uploaded was refused": "تم رفض ملف قمت برفعه",
    "The file you uploaded on %(day)s changed after it was checked. It has been deleted; please upload it again.": "تغيّر الملف الذي رفعته بتاريخ %(day)s بعد فحصه. تم حذفه؛ يرجى رفعه مرة أخرى.",
    "The virus scan found %(signature)s in the file you uploaded on %(day)s. It has been deleted; nobody can download it.": "عثر فحص الفيروسات على %(signature)s في الملف الذي رفعته بتاريخ %(day)s. تم حذفه ولا يمكن لأحد تنزيله.",
    # chat
    "This conversation does not exist or you are not part of it.": "هذه المحادثة غير موجودة أو لست طرفًا فيها.",
    "This message does not exist.": "هذه الرسالة غير موجودة.",
    "You can chat only with a doctor or patient you are in care with.": "لا يمكنك المراسلة إلا مع طبيب أو مريض تجمعك به علاقة رعاية قائمة.",
    "The doctor has closed this conversation.": "أغلق الطبيب هذه المحادثة.",
    "Write a message or attach a file.": "اكتب رسالة أو أرفق ملفًا.",
    "The message is too long.": "الرسالة طويلة جدًا.",
    "There is no message with this number in the conversation yet.": "لا توجد في المحادثة رسالة بهذا الرقم بعد.",
    "Only medical files that passed the virus scan and that the doctor may see can be attached.": "لا يمكن إرفاق إلا الملفات الطبية التي اجتازت فحص الفيروسات ويحق للطبيب الاطلاع عليها.",
    "Only the sender can change or delete this message.": "لا يمكن تعديل هذه الرسالة أو حذفها إلا من قِبل مُرسِلها.",
    "This message can no longer be edited.": "لم يعد من الممكن تعديل هذه الرسالة.",
    "This message has been deleted.": "تم حذف هذه الرسالة.",
    "Only the doctor can close or reopen a conversation.": "الطبيب وحده يستطيع إغلاق المحادثة أو إعادة فتحها.",
    "You are sending messages too quickly. Please wait a moment.": "أنت ترسل الرسائل بسرعة كبيرة. يرجى الانتظار قليلًا.",
    "Give the reason for reading this conversation.": "اذكر سبب الاطلاع على هذه المحادثة.",
    "Send the message as text.": "أرسل الرسالة نصًا.",
    "Send a client id of 1 to 64 characters.": "أرسل معرّف عميل طوله من 1 إلى 64 حرفًا.",
    "Attach at most %(n)d files.": "أرفق %(n)d ملفات على الأكثر.",
    "New message from %(name)s": "رسالة جديدة من %(name)s",
    "New message": "رسالة جديدة",
    "Open the conversation to read your new messages.": "افتح المحادثة لقراءة رسائلك الجديدة.",
    "Send a whole number, 0 or more.": "أرسل عددًا صحيحًا يساوي 0 أو أكثر.",
    "Your Telemed code is %(code)s. Do not share it with anyone.": "رمز Telemed الخاص بك هو %(code)s. لا تشاركه مع أي شخص.",
    "The password or confirmation you entered is not correct.": "كلمة المرور أو التأكيد الذي أدخلته غير صحيح.",
    "You must change your password before continuing.": "يجب عليك تغيير كلمة المرور قبل المتابعة.",
    "Your account's role does not allow this.": "دور حسابك لا يسمح بذلك.",
    "This invitation code is not valid or has expired.": "رمز الدعوة هذا غير صالح أو انتهت صلاحيته.",
    "This account is deactivated.": "تم إيقاف هذا الحساب.",
    "An account with this e-mail already exists.": "يوجد حساب مسجل بهذا البريد الإلكتروني بالفعل.",
    "You cannot change the role or status of your own account.": "لا يمكنك تغيير دور حسابك أو حالته بنفسك.",
    "Female": "أنثى",
    "Male": "ذكر",
    "If set, only this e-mail may use the code.": "إذا تم تحديده، فلا يمكن استخدام الرمز إلا لهذا البريد الإلكتروني.",
    "This account has no authenticator app yet. Set up two-factor authentication first.": "لا يوجد تطبيق مصادقة مرتبط بهذا الحساب بعد. فعّل المصادقة الثنائية أولًا.",
    "E-mail address": "عنوان البريد الإلكتروني",
    "Password": "كلمة المرور",
    "Please enter a correct e-mail address and password.": "يرجى إدخال بريد إلكتروني وكلمة مرور صحيحين.",
    "Too many failed attempts. Please try again in a few minutes.": "محاولات فاشلة كثيرة. يرجى المحاولة مرة أخرى بعد بضع دقائق.",
    "Code from the app": "الرمز من التطبيق",
    "Enter the 6-digit code shown by the app.": "أدخل الرمز المكوّن من 6 أرقام الظاهر في التطبيق.",
    "Two-factor authentication": "المصادقة الثنائية",
    "This set-up has expired. Please start again.": "انتهت صلاحية عملية الإعداد هذه. يرجى البدء من جديد.",
    "Too many wrong codes. Wait a little, then enter the current code.": "رموز خاطئة كثيرة. انتظر قليلًا ثم أدخل الرمز الحالي.",
    "That code is not correct. Please try again.": "هذا الرمز غير صحيح. يرجى المحاولة مرة أخرى.",
    "Staff without an authenticator app:": "للموظفين الذين ليس لديهم تطبيق مصادقة:",
    "set up two-factor authentication": "إعداد المصادقة الثنائية",
    "Signed in as %(email)s (password only). Scan this QR code with an authenticator app (for example Google Authenticator, Microsoft Authenticator or FreeOTP), then enter the 6-digit code it shows.": "تم تسجيل الدخول باسم %(email)s (بكلمة المرور فقط). امسح رمز الاستجابة السريعة هذا بتطبيق مصادقة (مثل Google Authenticator أو Microsoft Authenticator أو FreeOTP)، ثم أدخل الرمز المكوّن من 6 أرقام الذي يظهره.",
    "QR code": "رمز الاستجابة السريعة",
    "Cannot scan? Enter this key in the app instead:": "لا يمكنك المسح؟ أدخل هذا المفتاح في التطبيق بدلًا من ذلك:",
    "Set-up link:": "رابط الإعداد:",
    "Confirm": "تأكيد",
    "Use a different account": "استخدام حساب آخر",
    "To use the administration site you need an authenticator app. Sign in with your e-mail address and password to set one up.": "لاستخدام موقع الإدارة تحتاج إلى تطبيق مصادقة. سجّل الدخول ببريدك الإلكتروني وكلمة المرور لإعداده.",
    "Continue": "متابعة",
    "Already set up? Log in": "هل أعددته مسبقًا؟ سجّل الدخول",
    "The page cursor is not valid. Start again from the first page.": "مؤشر الصفحة غير صالح. ابدأ من جديد من الصفحة الأولى.",
    "Enter a date of birth in the past.": "أدخل تاريخ ميلاد في الماضي.",
    "We could not send the text message right now. Please try again shortly.": "تعذّر إرسال الرسالة النصية الآن. يرجى المحاولة بعد قليل.",
    "Text must not contain NUL characters.": "يجب ألا يحتوي النص على محارف NUL.",
    "The request body must be a JSON object.": "يجب أن يكون محتوى الطلب كائن JSON.",
    "Include a time zone offset, e.g. 2026-05-01T09:00:00+03:00.": "أضف فرق التوقيت، مثل 2026-05-01T09:00:00+03:00.",
    "Enter a valid date.": "أدخل تاريخًا صالحًا.",
    "This doctor was not found.": "لم نعثر على هذا الطبيب.",
    "The location is not valid. Check the latitude, longitude and radius.": "الموقع غير صالح. تحقّق من خط العرض وخط الطول ونصف القطر.",
    "This specialty does not exist.": "هذا التخصص غير موجود.",
    "We could not find this place. Check the spelling or try a nearby city.": "لم نعثر على هذا المكان. تحقّق من الإملاء أو جرّب مدينة قريبة.",
    "Enter a city or an address of at most 200 characters.": "أدخل اسم مدينة أو عنوانًا لا يزيد على 200 حرف.",
    "Pending": "قيد المراجعة",
    "Verified": "موثَّق",
    "Rejected": "مرفوض",
    "In person": "حضوريًا",
    "Video": "فيديو",
    "Chat": "محادثة",
    "Your Telemed profile is verified": "تم توثيق ملفك في Telemed",
    "Your profile is now listed in the Telemed directory. Patients can find and book you.": "أصبح ملفك ظاهرًا في دليل Telemed، ويمكن للمرضى العثور عليك وحجز مواعيد معك.",
    "Your Telemed profile was not verified": "لم يتم توثيق ملفك في Telemed",
    "Your profile could not be verified. Reason: %(reason)s": "تعذّر توثيق ملفك. السبب: %(reason)s",
    "This time is not bookable. Choose one of the doctor's free slots.": "لا يمكن الحجز في هذا الوقت. اختر أحد المواعيد المتاحة لدى الطبيب.",
    "This time has just been booked. Please choose another.": "تم حجز هذا الموعد للتو. يرجى اختيار موعد آخر.",
    "This doctor cannot be booked at the moment.": "لا يمكن الحجز لدى هذا الطبيب حاليًا.",
    "This appointment was not found.": "لم يتم العثور على هذا الموعد.",
    "This appointment cannot be changed this way now.": "لا يمكن تغيير هذا الموعد بهذه الطريقة الآن.",
    "It is too late to cancel this appointment online. Please contact the clinic.": "فات أوان إلغاء هذا الموعد عبر الإنترنت. يرجى التواصل مع العيادة.",
    "The date range is not valid (at most 62 days, start before end).": "نطاق التاريخ غير صالح (62 يومًا كحد أقصى، والبداية قبل النهاية).",
    "Your profile must be verified before you can publish availability.": "يجب توثيق ملفك قبل أن تتمكن من نشر مواعيدك المتاحة.",
    "Held": "محجوز مؤقتًا",
    "Awaiting the doctor": "بانتظار موافقة الطبيب",
    "Confirmed": "مؤكد",
    "Completed": "مكتمل",
    "No-show": "لم يحضر",
    "Cancelled": "ملغى",
    "This clinic is not yours.": "هذه العيادة ليست تابعة لك.",
    "New appointment": "موعد جديد",
    "%(patient)s booked %(when)s.": "حجز %(patient)s موعدًا في %(when)s.",
    "A patient": "مريض",
    "Appointment confirmed": "تم تأكيد الموعد",
    "Appointment declined": "تم رفض الموعد",
    "Your appointment on %(when)s is confirmed.": "تم تأكيد موعدك في %(when)s.",
    "The doctor declined the appointment on %(when)s.": "رفض الطبيب الموعد المحدد في %(when)s.",
    "Appointment cancelled": "تم إلغاء الموعد",
    "The appointment on %(when)s was cancelled. %(reason)s": "تم إلغاء الموعد المحدد في %(when)s. %(reason)s",
    "This Idempotency-Key was already used with a different request.": "سبق استخدام مفتاح Idempotency-Key هذا مع طلب مختلف.",
    "Appointment completed": "اكتمل الموعد",
    "Missed appointment": "موعد فائت",
    "The appointment on %(when)s is recorded as %(status)s.": "تم تسجيل الموعد المحدد في %(when)s بحالة: %(status)s.",
    "Appointment moved": "تم نقل الموعد",
    "The appointment is now on %(when)s.": "أصبح الموعد في %(when)s.",
    "Appointment reminder": "تذكير بالموعد",
    "Your appointment is on %(when)s.": "موعدك في %(when)s.",
    "Only a completed appointment can be reviewed, once.": "لا يمكن تقييم إلا موعد مكتمل، ومرة واحدة فقط.",
    "This review was not found.": "لم يتم العثور على هذا التقييم.",
    "New review": "تقييم جديد",
    "A patient rated you %(rating)s of 5.": "قيّمك أحد المرضى بـ %(rating)s من 5.",
    "You already have an appointment at this time.": "لديك موعد آخر في هذا الوقت بالفعل.",
    "This message is too large.": "هذه الرسالة كبيرة جدًا.",
    "You are sending messages too fast. Please slow down.": "أنت ترسل الرسائل بسرعة كبيرة. يرجى التمهل.",
    "This message is missing a field or has a wrong value.": "ينقص هذه الرسالة حقل أو فيها قيمة غير صحيحة.",
    "This notification was not found.": "لم يتم العثور على هذا الإشعار.",
    "There is no notification of this kind.": "لا يوجد نوع إشعار بهذا الاسم.",
    "The request signature is not valid.": "توقيع الطلب غير صالح.",
    "Hold expired": "انتهت مدة الحجز المؤقت",
    "The slot held for %(when)s was released: it was not paid in time.": "أُلغي حجز الموعد المؤقت في %(when)s لأنه لم يُدفع في الوقت المحدد.",
    "The file you uploaded on %(day)s is too large for the virus scan. It has been deleted; please upload a smaller file.": "الملف الذي رفعته بتاريخ %(day)s أكبر من أن يُفحص بحثًا عن الفيروسات. تم حذفه؛ يرجى رفع ملف أصغر.",
    "The file you uploaded on %(day)s could not be virus-scanned. It has been deleted; please upload it again.": "تعذّر فحص الملف الذي رفعته بتاريخ %(day)s بحثًا عن الفيروسات. تم حذفه؛ يرجى رفعه مرة أخرى.",
    "account role changed": "تغيّر دور الحساب",
    "The appointment on %(when)s was cancelled: an account's role was changed.": "أُلغي الموعد في %(when)s: تغيّر دور أحد الحسابات.",
    "The patient already has an appointment at this time.": "لدى المريض موعد آخر في هذا الوقت بالفعل.",
    "This patient's account is closed: their appointments cannot be moved.": "حساب هذا المريض مغلق: لا يمكن نقل مواعيده.",
    "Enter a valid e-mail address.": "أدخل عنوان بريد إلكتروني صالحًا.",
    "This account was erased at its owner's request: it cannot be changed.": "حُذف هذا الحساب بطلب من صاحبه: لا يمكن تغييره.",
    "Only a superuser can erase an administrator's account.": "لا يمكن حذف حساب مسؤول إلا لمستخدم خارق.",
    "a deleted account": "حساب محذوف",
    "You have as many upcoming appointments as can be booked. Cancel one, or wait until one has taken place.": "لديك أكبر عدد مسموح به من المواعيد القادمة. ألغِ أحدها، أو انتظر حتى يحين موعد أحدها وينقضي.",
}


def main() -> int:
    po = polib.pofile(str(PO))
    missing = []
    for entry in po:
        if entry.msgid in AR:
            entry.msgstr = AR[entry.msgid]
            if "fuzzy" in entry.flags:
                entry.flags.remove("fuzzy")
        if not entry.msgstr or "fuzzy" in entry.flags:
            missing.append(entry.msgid)
    po.save()
    for msgid in missing:
        print(f"missing: {msgid!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
