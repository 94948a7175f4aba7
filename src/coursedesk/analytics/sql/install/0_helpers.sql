-- Helpers of the summaries: the time buckets they are counted in, the funnel steps and
-- lifetime of a user, a lesson date read from an event's details, and the readers of the
-- time counters.

-- Every 1- and 2-character substring of the lower-cased names: user search looks short
-- queries up here, as trigrams need at least three characters. A gram may repeat: the
-- GIN index keeps each once per row. user_summaries.name_grams is computed by it.
CREATE OR REPLACE FUNCTION analytics_name_grams(username text, first_name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    grams text[] := '{}';
    name text;
    position integer;
BEGIN
    FOREACH name IN ARRAY ARRAY[lower(username), lower(first_name)] LOOP
        CONTINUE WHEN name IS NULL;
        grams := grams || string_to_array(name, NULL);
        FOR position IN 1 .. length(name) - 1 LOOP
            grams := grams || substr(name, position, 2);
        END LOOP;
    END LOOP;
    RETURN grams;
END
$$;

-- The UTC quarter-hour, hour or day (span in minutes) that holds `at`. Every UTC offset in
-- use is a whole number of quarter-hours, so any range between local midnights is a sum
-- of whole buckets.
CREATE OR REPLACE FUNCTION analytics_bucket(at timestamptz, span smallint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin(make_interval(mins => span), at, timestamptz '2000-01-01 00:00:00+00')
$$;

-- Whole weeks from first to last seen, 52 standing for 52 or more.
CREATE OR REPLACE FUNCTION analytics_lifetime_weeks(first_seen timestamptz, last_seen timestamptz)
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(floor(extract(epoch FROM last_seen - first_seen) / 604800), 52)::smallint
$$;

-- The funnel steps a user took, as bits: 1 free lesson, 2 attended, 4 booked, 8 paid.
CREATE OR REPLACE FUNCTION analytics_funnel_steps(
    free_lessons integer, attended integer, bookings integer, confirmed integer
) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((free_lessons > 0)::int + 2 * (attended > 0)::int
            + 4 * (bookings > 0)::int + 8 * (confirmed > 0)::int)::smallint
$$;

-- The bot writes lesson_date into event details as text; anything that is not a real
-- YYYY-MM-DD date counts as no date rather than failing the bot's INSERT.
CREATE OR REPLACE FUNCTION analytics_lesson_date(value text) RETURNS date
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

-- Readers of a time counter table: its whole buckets from bounds[1] to the last bound,
-- taking days where no bound cuts them, else hours of the days a bound cuts, else
-- quarter-hours of the hours a bound cuts (only offsets of :30 and :45 cut hours).
-- Callers group the buckets by width_bucket(bucket, bounds), the period each falls in.
-- Intervals are written in hours, not days: a day added to a timestamptz would follow
-- the session's time zone across daylight saving changes.
CREATE OR REPLACE FUNCTION analytics_activity_buckets_between(bounds timestamptz[]) RETURNS SETOF activity_buckets
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

CREATE OR REPLACE FUNCTION analytics_user_funnel_between(bounds timestamptz[]) RETURNS SETOF user_funnel
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

CREATE OR REPLACE FUNCTION analytics_user_retention_between(bounds timestamptz[]) RETURNS SETOF user_retention
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
