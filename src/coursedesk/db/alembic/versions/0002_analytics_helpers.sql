-- Migration 0002, frozen: the helper functions the summaries are read and kept with
-- (analytics_name_grams, which the tables need first, is in 0002_analytics.py).
-- Applied once by 0002_analytics.py; the living definitions are in analytics/sql/.

CREATE FUNCTION analytics_bucket(at timestamptz, span smallint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(make_interval(mins => span), at, timestamptz '2000-01-01 00:00:00+00')
$$;

CREATE FUNCTION analytics_lifetime_weeks(first_seen timestamptz, last_seen timestamptz)
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(floor(extract(epoch FROM last_seen - first_seen) / 604800), 52)::smallint
$$;

CREATE FUNCTION analytics_funnel_steps(
    free_lessons integer, attended integer, bookings integer, confirmed integer
) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((free_lessons > 0)::int + 2 * (attended > 0)::int
            + 4 * (bookings > 0)::int + 8 * (confirmed > 0)::int)::smallint
$$;

CREATE FUNCTION analytics_lesson_date(value text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        CASE WHEN substr(value, 1, 4)::int >= 1 AND substr(value, 6, 2)::int BETWEEN 1 AND 12 THEN
            CASE WHEN substr(value, 9, 2)::int BETWEEN 1 AND extract(day FROM
                    make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1)
                    + interval '1 month - 1 day')
            THEN make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int,
                           substr(value, 9, 2)::int)
            END
        END
    END
$$;

CREATE FUNCTION analytics_user_from_source(uid bigint)
RETURNS TABLE (
    user_id bigint, username text, username_at timestamptz, username_row integer,
    first_name text, first_name_at timestamptz, first_name_row integer,
    first_seen timestamptz, last_seen timestamptz, bookings_count integer,
    confirmed_bookings integer, pending_bookings integer, events_count integer,
    lessons_attended integer, free_lessons_count integer, course_stream text,
    stream_booking_at timestamptz, stream_booking_id integer
) LANGUAGE sql VOLATILE AS $$
    WITH named AS (
        SELECT b.username, b.first_name, b.created_at AS at, b.id AS row_id
        FROM bookings AS b WHERE b.user_id = uid
        UNION ALL
        SELECT r.username, r.first_name, r.registered_at, r.id
        FROM free_lesson_registrations AS r WHERE r.user_id = uid
    ),
    booked AS (
        SELECT min(b.created_at) AS first_at, max(b.created_at) AS last_at,
               count(*)::int AS n,
               (count(*) FILTER (WHERE b.confirmed = 2))::int AS confirmed,
               (count(*) FILTER (WHERE b.confirmed = 1))::int AS pending
        FROM bookings AS b WHERE b.user_id = uid
    ),
    evented AS (
        SELECT min(e.created_at) AS first_at, max(e.created_at) AS last_at,
               count(*)::int AS n,
               (count(*) FILTER (WHERE e.event_type = 'lesson_attended'))::int AS attended
        FROM events AS e WHERE e.user_id = uid
    ),
    registered AS (
        SELECT min(r.registered_at) AS first_at, max(r.registered_at) AS last_at,
               count(*)::int AS n
        FROM free_lesson_registrations AS r WHERE r.user_id = uid
    ),
    latest_username AS (
        SELECT n.username, n.at, n.row_id FROM named AS n WHERE n.username IS NOT NULL
        ORDER BY n.at DESC, n.row_id DESC LIMIT 1
    ),
    latest_first_name AS (
        SELECT n.first_name, n.at, n.row_id FROM named AS n WHERE n.first_name IS NOT NULL
        ORDER BY n.at DESC, n.row_id DESC LIMIT 1
    ),
    latest_stream AS (
        SELECT b.course_stream, b.created_at, b.id FROM bookings AS b
        WHERE b.user_id = uid AND b.confirmed <> -1
        ORDER BY b.created_at DESC, b.id DESC LIMIT 1
    )
    SELECT uid, un.username, un.at, un.row_id, fn.first_name, fn.at, fn.row_id,
           least(booked.first_at, evented.first_at, registered.first_at),
           greatest(booked.last_at, evented.last_at, registered.last_at),
           booked.n, booked.confirmed, booked.pending, evented.n, evented.attended,
           registered.n, st.course_stream, st.created_at, st.id
    FROM booked CROSS JOIN evented CROSS JOIN registered
    LEFT JOIN latest_username AS un ON true
    LEFT JOIN latest_first_name AS fn ON true
    LEFT JOIN latest_stream AS st ON true
    WHERE booked.n + evented.n + registered.n > 0
$$;

CREATE FUNCTION analytics_activity_buckets_between(bounds timestamptz[]) RETURNS SETOF activity_buckets
LANGUAGE sql STABLE AS $$
    WITH cut AS MATERIALIZED (
        SELECT DISTINCT spans.span, analytics_bucket(m, spans.span) AS bucket
        FROM unnest(bounds) AS m
        CROSS JOIN (VALUES (60::smallint), (1440::smallint)) AS spans(span)
        WHERE analytics_bucket(m, spans.span) <> m
    )
    SELECT t.* FROM activity_buckets AS t
    WHERE t.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '24 hours' <= bounds[cardinality(bounds)]
      AND width_bucket(t.bucket, bounds)
          = width_bucket(t.bucket + interval '24 hours' - interval '1 microsecond', bounds)
    UNION ALL
    SELECT t.* FROM cut JOIN activity_buckets AS t
      ON t.span = 60 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '24 hours'
    WHERE cut.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '1 hour' <= bounds[cardinality(bounds)]
      AND (NOT EXISTS (SELECT 1 FROM cut WHERE cut.span = 60)
           OR width_bucket(t.bucket, bounds)
              = width_bucket(t.bucket + interval '1 hour' - interval '1 microsecond', bounds))
    UNION ALL
    SELECT t.* FROM cut JOIN activity_buckets AS t
      ON t.span = 15 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '1 hour'
    WHERE cut.span = 60 AND t.bucket >= bounds[1]
      AND t.bucket + interval '15 minutes' <= bounds[cardinality(bounds)]
$$;

CREATE FUNCTION analytics_user_funnel_between(bounds timestamptz[]) RETURNS SETOF user_funnel
LANGUAGE sql STABLE AS $$
    WITH cut AS MATERIALIZED (
        SELECT DISTINCT spans.span, analytics_bucket(m, spans.span) AS bucket
        FROM unnest(bounds) AS m
        CROSS JOIN (VALUES (60::smallint), (1440::smallint)) AS spans(span)
        WHERE analytics_bucket(m, spans.span) <> m
    )
    SELECT t.* FROM user_funnel AS t
    WHERE t.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '24 hours' <= bounds[cardinality(bounds)]
      AND width_bucket(t.bucket, bounds)
          = width_bucket(t.bucket + interval '24 hours' - interval '1 microsecond', bounds)
    UNION ALL
    SELECT t.* FROM cut JOIN user_funnel AS t
      ON t.span = 60 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '24 hours'
    WHERE cut.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '1 hour' <= bounds[cardinality(bounds)]
      AND (NOT EXISTS (SELECT 1 FROM cut WHERE cut.span = 60)
           OR width_bucket(t.bucket, bounds)
              = width_bucket(t.bucket + interval '1 hour' - interval '1 microsecond', bounds))
    UNION ALL
    SELECT t.* FROM cut JOIN user_funnel AS t
      ON t.span = 15 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '1 hour'
    WHERE cut.span = 60 AND t.bucket >= bounds[1]
      AND t.bucket + interval '15 minutes' <= bounds[cardinality(bounds)]
$$;

CREATE FUNCTION analytics_user_retention_between(bounds timestamptz[]) RETURNS SETOF user_retention
LANGUAGE sql STABLE AS $$
    WITH cut AS MATERIALIZED (
        SELECT DISTINCT spans.span, analytics_bucket(m, spans.span) AS bucket
        FROM unnest(bounds) AS m
        CROSS JOIN (VALUES (60::smallint), (1440::smallint)) AS spans(span)
        WHERE analytics_bucket(m, spans.span) <> m
    )
    SELECT t.* FROM user_retention AS t
    WHERE t.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '24 hours' <= bounds[cardinality(bounds)]
      AND width_bucket(t.bucket, bounds)
          = width_bucket(t.bucket + interval '24 hours' - interval '1 microsecond', bounds)
    UNION ALL
    SELECT t.* FROM cut JOIN user_retention AS t
      ON t.span = 60 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '24 hours'
    WHERE cut.span = 1440 AND t.bucket >= bounds[1]
      AND t.bucket + interval '1 hour' <= bounds[cardinality(bounds)]
      AND (NOT EXISTS (SELECT 1 FROM cut WHERE cut.span = 60)
           OR width_bucket(t.bucket, bounds)
              = width_bucket(t.bucket + interval '1 hour' - interval '1 microsecond', bounds))
    UNION ALL
    SELECT t.* FROM cut JOIN user_retention AS t
      ON t.span = 15 AND t.bucket >= cut.bucket AND t.bucket < cut.bucket + interval '1 hour'
    WHERE cut.span = 60 AND t.bucket >= bounds[1]
      AND t.bucket + interval '15 minutes' <= bounds[cardinality(bounds)]
$$;
