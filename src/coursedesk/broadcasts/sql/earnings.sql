-- What a broadcast earned: what the recipients of its two groups did in the window after
-- the broadcast reached them (docs/reference.md §8). Read by broadcasts/earnings.py,
-- which puts `recipient_activity` before `group_totals` (the figures of both groups) or
-- `recipient_rows` (each recipient, for the CSV).
--
-- The groups: `sent` is the delivered recipients (delivery_status sent, or deleted
-- since), each from their own sent_at; `holdout` is the control group, from
-- :holdout_from (the broadcast's sent_at, see earnings.py), or from nowhere while that
-- is null: no window has begun, and every figure is false. A window is
-- [start, start + :window_days days). [:first_start, :last_end) is the span every
-- window lies in: from the moment sending started to the last send's (or now) plus
-- the window.
--
-- Set-based: the rows of the bot's tables in that span are read once, by their time
-- indexes, into one list of what each user did (`activity`), which is matched to the
-- recipients by user_id in one hash join; only the recipients who did something are
-- counted apart. The cost follows the group's size and the activity in that span, not a
-- probe per recipient into every table.

-- name: recipient_activity
WITH grouped AS NOT MATERIALIZED (
    SELECT r.id, r.user_id, r.sent_at,
           CASE WHEN r.delivery_status = 'holdout' THEN 'holdout' ELSE 'sent' END AS "group",
           CASE WHEN r.delivery_status = 'holdout'
                THEN CAST(:holdout_from AS timestamptz)
                ELSE r.sent_at END AS starts_at
    FROM message_recipients AS r
    WHERE r.message_id = :message_id
      AND r.delivery_status = ANY(CAST(:statuses AS text[]))
-- Everything the windows could hold, as (user, when, what). A booking makes its user
-- `booked`, and `confirmed` when it is confirmed now (a cancelled one is booked, not
-- confirmed). Attending is a lesson_attended event. Blocking the bot is a bot_blocked
-- event (the webhook's record of each block), or the block bot_users holds now (the
-- webhook's, or a send refused with 403, which leaves no event).
), activity AS (
    SELECT k.user_id, k.created_at AS at,
           CASE WHEN k.confirmed = 2 THEN 'confirmed' ELSE 'booked' END AS what
    FROM bookings AS k
    WHERE k.created_at >= :first_start AND k.created_at < :last_end
    UNION ALL
    SELECT f.user_id, f.registered_at, 'free_lesson_registered'
    FROM free_lesson_registrations AS f
    WHERE f.registered_at >= :first_start AND f.registered_at < :last_end
    UNION ALL
    SELECT v.user_id, v.created_at,
           CASE WHEN v.event_type = 'lesson_attended' THEN 'attended' ELSE 'blocked' END
    FROM events AS v
    WHERE v.created_at >= :first_start AND v.created_at < :last_end
      AND v.event_type IN ('lesson_attended', 'bot_blocked')
    UNION ALL
    SELECT u.user_id, u.blocked_at, 'blocked'
    FROM bot_users AS u
    WHERE u.is_blocked AND u.blocked_at >= :first_start AND u.blocked_at < :last_end
-- Each thing a recipient did in their own window; a click is their first on any of the
-- broadcast's links (repeats are counted once).
), matched AS (
    SELECT g."group", g.user_id, a.what
    FROM grouped AS g
    JOIN activity AS a ON a.user_id = g.user_id
    WHERE a.at >= g.starts_at
      AND a.at < g.starts_at + make_interval(days => CAST(:window_days AS integer))
    UNION ALL
    SELECT g."group", g.user_id, 'clicked'
    FROM grouped AS g
    JOIN broadcast_clicks AS c ON c.recipient_id = g.id
    WHERE c.message_id = :message_id
      AND c.first_clicked_at >= g.starts_at
      AND c.first_clicked_at < g.starts_at + make_interval(days => CAST(:window_days AS integer))
)

-- name: group_totals
SELECT s."group",
       s.recipients,
       coalesce(m.clicked, 0) AS clicked,
       coalesce(m.booked, 0) AS booked,
       coalesce(m.confirmed, 0) AS confirmed,
       coalesce(m.free_lesson_registered, 0) AS free_lesson_registered,
       coalesce(m.attended, 0) AS attended,
       coalesce(m.blocked, 0) AS blocked
FROM message_history AS h
CROSS JOIN LATERAL (
    VALUES ('sent', h.successful_deliveries), ('holdout', h.holdout_count)
) AS s ("group", recipients)
LEFT JOIN (
    SELECT "group",
           count(DISTINCT user_id) FILTER (WHERE what = 'clicked') AS clicked,
           count(DISTINCT user_id) FILTER (WHERE what IN ('booked', 'confirmed')) AS booked,
           count(DISTINCT user_id) FILTER (WHERE what = 'confirmed') AS confirmed,
           count(DISTINCT user_id) FILTER (WHERE what = 'free_lesson_registered')
               AS free_lesson_registered,
           count(DISTINCT user_id) FILTER (WHERE what = 'attended') AS attended,
           count(DISTINCT user_id) FILTER (WHERE what = 'blocked') AS blocked
    FROM matched
    GROUP BY "group"
) AS m ON m."group" = s."group"
WHERE h.id = :message_id AND s."group" = ANY(CAST(:groups AS text[]))

-- name: recipient_rows
SELECT g.user_id,
       g."group",
       g.sent_at,
       coalesce(m.clicked, false) AS clicked,
       coalesce(m.booked, false) AS booked,
       coalesce(m.confirmed, false) AS confirmed,
       coalesce(m.free_lesson_registered, false) AS free_lesson_registered,
       coalesce(m.attended, false) AS attended,
       coalesce(m.blocked, false) AS blocked
FROM grouped AS g
LEFT JOIN (
    SELECT user_id,
           bool_or(what = 'clicked') AS clicked,
           bool_or(what IN ('booked', 'confirmed')) AS booked,
           bool_or(what = 'confirmed') AS confirmed,
           bool_or(what = 'free_lesson_registered') AS free_lesson_registered,
           bool_or(what = 'attended') AS attended,
           bool_or(what = 'blocked') AS blocked
    FROM matched
    GROUP BY user_id
) AS m ON m.user_id = g.user_id
ORDER BY g."group" DESC, g.user_id
