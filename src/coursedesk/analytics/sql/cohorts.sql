-- Funnel and retention over user_funnel and user_retention: users counted by the span
-- and bucket of their first_seen and, respectively, the funnel steps they took (bits:
-- 1 free lesson, 2 attended, 4 booked, 8 paid) or the whole weeks from first_seen to
-- last_seen (52 standing for more). The *_between readers answer the whole buckets
-- between local midnights (see activity.sql).

-- name: funnel_steps
WITH bounds AS (
    SELECT ARRAY[CAST(:first_day AS date)::timestamp AT TIME ZONE :tz,
                 (CAST(:last_day AS date) + 1)::timestamp AT TIME ZONE :tz] AS b
)
SELECT f.funnel_steps, sum(f.users)::bigint AS users
FROM bounds, analytics_user_funnel_between(bounds.b) AS f
GROUP BY f.funnel_steps
HAVING sum(f.users) <> 0

-- name: retention_cohorts
-- :weeks cohorts, calendar weeks in :tz starting on Monday :first_day.
WITH bounds AS (
    SELECT array_agg((CAST(:first_day AS date) + 7 * n)::timestamp AT TIME ZONE :tz
                     ORDER BY n) AS b
    FROM generate_series(0, :weeks) AS n
)
SELECT CAST(:first_day AS date) + 7 * (width_bucket(r.bucket, bounds.b) - 1) AS cohort_week,
       r.lifetime_weeks,
       sum(r.users)::bigint AS users
FROM bounds, analytics_user_retention_between(bounds.b) AS r
GROUP BY 1, 2
HAVING sum(r.users) <> 0
