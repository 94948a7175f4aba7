"""Students as the bot writes them (plain SQL), with figures the page tests can check."""

from __future__ import annotations

from sqlalchemy import Engine, text

from coursedesk.analytics.folding import fold_pending

ANNA, BORIS, CHLOE, DMITRI = 1001, 1002, 1003, 1004


def add_students(engine: Engine) -> None:
    """Four students: confirmed, pending, events only, and one whose booking was cancelled."""
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO courses (id, name) VALUES (1, 'Python Basics')"))
        connection.execute(
            text(
                "INSERT INTO bookings (user_id, username, first_name, course_id, course_stream, "
                "confirmed, referral_code, discount_percent) VALUES "
                "(:anna, 'anna_k', 'Anna', 1, 'PY-1', 2, 'FRIEND10', 10), "
                "(:boris, 'boris', 'Boris', 1, 'PY-1', 1, NULL, NULL), "
                "(:dmitri, 'dima', 'Dmitri', 1, 'PY-2', -1, NULL, NULL)"
            ),
            {"anna": ANNA, "boris": BORIS, "dmitri": DMITRI},
        )
        connection.execute(
            text(
                "INSERT INTO events (user_id, event_type, details) VALUES "
                "(:anna, 'start', NULL), (:anna, 'course_view', '{\"course_id\": 1}'), "
                "(:chloe, 'start', NULL), (NULL, 'ping', NULL)"
            ),
            {"anna": ANNA, "chloe": CHLOE},
        )
        connection.execute(
            text(
                "INSERT INTO free_lesson_registrations (user_id, username, first_name, email, "
                "lesson_type, lesson_date) VALUES "
                "(:anna, 'anna_k', 'Anna', 'anna@example.org', 'python_intro', DATE '2030-01-15')"
            ),
            {"anna": ANNA},
        )
    fold_pending(engine)
