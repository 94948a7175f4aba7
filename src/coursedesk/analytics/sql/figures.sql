-- Figures read from the summary tables that the fold keeps (install/3_fold.sql).
-- Each reads at most a few thousand small rows, whatever the size of the source tables.
-- Counter rows that fell back to zero after deletions are left in place, hence the
-- "> 0" filters. Text ties are broken in code point order (COLLATE "C").

-- name: dashboard_stats
-- user_segments counts every user once; course_figures covers every booking (a null
-- course_id is a group of its own); lesson_figures every registration row.
SELECT
    (SELECT coalesce(sum(users), 0) FROM user_segments)::bigint AS total_users,
    (SELECT coalesce(sum(pending + confirmed), 0) FROM course_figures)::bigint AS active_bookings,
    (SELECT coalesce(sum(confirmed), 0) FROM course_figures)::bigint AS confirmed_payments,
    (SELECT coalesce(sum(registrations), 0) FROM lesson_figures)::bigint
        AS free_lesson_registrations

-- name: course_figures
SELECT f.course_id,
       coalesce(c.name, 'Course ' || f.course_id) AS course_name,
       f.total_bookings, f.confirmed, f.pending, f.cancelled, f.unique_users
FROM course_figures AS f
LEFT JOIN courses AS c ON c.id = f.course_id
WHERE f.total_bookings > 0
ORDER BY f.course_id NULLS LAST

-- name: stream_figures
SELECT f.course_id,
       coalesce(c.name, 'Course ' || f.course_id) AS course_name,
       f.course_stream, f.total_bookings, f.confirmed, f.pending, f.cancelled, f.unique_users
FROM stream_figures AS f
LEFT JOIN courses AS c ON c.id = f.course_id
WHERE f.total_bookings > 0
ORDER BY f.course_id NULLS LAST, f.course_stream COLLATE "C"

-- name: top_events
SELECT event_type, events AS count, unique_users
FROM event_type_figures
WHERE events > 0
ORDER BY events DESC, event_type COLLATE "C"
LIMIT :limit

-- name: referral_figures
-- The average of the non-null discounts, rounded half away from zero like round(avg()).
SELECT referral_code, bookings, confirmed, unique_users,
       CASE WHEN discounted > 0 THEN round(discount_total / discounted, 2) END
           AS avg_discount_percent
FROM referral_figures
WHERE bookings > 0
ORDER BY bookings DESC, referral_code COLLATE "C"

-- name: lesson_conversion
-- Every (lesson_type, lesson_date) that a user registered for or attended; a missing
-- type or date is a value of its own, so each pair appears once. Rows without a user
-- (an anonymous attendance event) count for no one, so a pair with only those is left
-- out rather than shown as 0 and 0.
SELECT lesson_type, lesson_date,
       registered_users AS registrations,
       attending_users AS attendances,
       CASE WHEN registered_users > 0
            THEN round(100.0 * attending_users / registered_users, 2) END AS conversion_rate
FROM lesson_figures
WHERE registered_users > 0 OR attending_users > 0
ORDER BY lesson_date DESC NULLS LAST, lesson_type COLLATE "C" NULLS LAST
