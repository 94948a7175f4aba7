"""The fixed words generated data is drawn from: names, courses, streams, codes, lessons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirstName:
    """A first name as shown in Telegram, and the Latin stem usernames are built from."""

    shown: str
    stem: str


FIRST_NAMES = (
    FirstName("Anna", "anna"),
    FirstName("Maria", "maria"),
    FirstName("Ivan", "ivan"),
    FirstName("Olga", "olga"),
    FirstName("Dmitry", "dmitry"),
    FirstName("Elena", "elena"),
    FirstName("Alex", "alex"),
    FirstName("Sergey", "sergey"),
    FirstName("Natalia", "natalia"),
    FirstName("Pavel", "pavel"),
    FirstName("Irina", "irina"),
    FirstName("Mikhail", "misha"),
    FirstName("Sofia", "sofia"),
    FirstName("Artem", "artem"),
    FirstName("Daria", "dasha"),
    FirstName("Kirill", "kirill"),
    FirstName("Polina", "polina"),
    FirstName("Nikita", "nikita"),
    FirstName("Yulia", "yulia"),
    FirstName("Andrey", "andrey"),
    FirstName("Ekaterina", "katya"),
    FirstName("Maxim", "max"),
    FirstName("Victoria", "vika"),
    FirstName("Roman", "roman"),
    FirstName("Alina", "alina"),
    FirstName("Denis", "denis"),
    FirstName("Ksenia", "ksenia"),
    FirstName("Egor", "egor"),
    FirstName("Timur", "timur"),
    FirstName("Laura", "laura"),
    FirstName("David", "david"),
    FirstName("Emma", "emma"),
    FirstName("Lucas", "lucas"),
    FirstName("Noah", "noah"),
    FirstName("Chloe", "chloe"),
    FirstName("Leon", "leon"),
    FirstName("Анна", "anna"),
    FirstName("Дмитрий", "dima"),
    FirstName("Светлана", "sveta"),
    FirstName("José", "jose"),
    FirstName("Zoë", "zoe"),
    FirstName("Mehmet", "mehmet"),
)

USERNAME_SUFFIXES = ("", "_dev", "_pro", "_art", "_k", "_m", ".", "_official", "_it", "_93", "x")

EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


@dataclass(frozen=True)
class CourseSpec:
    """A course the bot sells; `name` None means the courses table has no row for it."""

    id: int
    name: str | None
    stream_prefix: str
    first_stream: int
    weight: float


COURSES = (
    CourseSpec(1, "Python for Beginners", "PY", 18, 0.32),
    CourseSpec(2, "Data Analysis with SQL", "DA", 9, 0.24),
    CourseSpec(3, "Web Design Fundamentals", "WD", 12, 0.16),
    CourseSpec(4, "QA Engineering", "QA", 6, 0.12),
    CourseSpec(5, "Product Management", "PM", 3, 0.10),
    CourseSpec(6, None, "MOB", 1, 0.06),
)

# A new stream of every course starts this often; a booking joins the next one to start.
STREAM_PERIOD_DAYS = 42


@dataclass(frozen=True)
class ReferralCode:
    code: str
    discount_text: str | None
    weight: float


REFERRAL_CODES = (
    ReferralCode("FRIEND10", "10.00", 0.30),
    ReferralCode("SPRING25", "25.00", 0.14),
    ReferralCode("BLOGGER_KATE", "15.00", 0.16),
    ReferralCode("TGCHANNEL", "5.00", 0.14),
    ReferralCode("ALUMNI20", "20.00", 0.10),
    ReferralCode("PARTNER", None, 0.09),
    ReferralCode("WELCOME", None, 0.07),
)

# A manager sometimes grants a discount by hand, with or without a code.
MANUAL_DISCOUNT_TEXT = "12.50"


@dataclass(frozen=True)
class LessonSpec:
    """A free trial lesson held every week on `weekday` (Monday is 0)."""

    lesson_type: str
    weekday: int
    weight: float


LESSONS = (
    LessonSpec("python_intro", 1, 0.38),
    LessonSpec("sql_basics", 3, 0.27),
    LessonSpec("web_design", 5, 0.20),
    LessonSpec("qa_testing", 2, 0.15),
)

BUTTONS = (
    "courses",
    "schedule",
    "prices",
    "free_lesson",
    "contact_manager",
    "faq",
    "reviews",
    "my_bookings",
)

START_PAYLOADS = ("ref_FRIEND10", "ad_vk", "ad_tg", "site", "ref_BLOGGER_KATE")

EVENT_TYPES = (
    "/start",
    "start",
    "button_click",
    "course_view",
    "free_lesson_signup",
    "booking_created",
    "lesson_attended",
)
