"""Prometheus figures, in a registry of each app's own so that apps never mix them.

Requests are counted as they are answered; query, pool and cache figures are read from
the live objects at each scrape, and broadcast figures from the database by the route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursedesk.analytics.folding import Freshness
from coursedesk.cache.answers import AnswerCache
from coursedesk.db.engine import Database
from coursedesk.monitoring.broadcast_figures import BroadcastTotals
from coursedesk.monitoring.pools import database_pools
from coursedesk.monitoring.queries import QueryMonitor

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATEMENT_LABEL_CHARS = 120


class AppMetrics:
    """The app's registry, with the figures its request middleware and routes keep."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "coursedesk_http_requests",
            "Requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "coursedesk_http_request_duration_seconds",
            "Time to answer a request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._broadcasts = Gauge(
            "coursedesk_broadcasts",
            "Broadcasts in the database, by status",
            ["status"],
            registry=self.registry,
        )
        self._deliveries = Gauge(
            "coursedesk_broadcast_recipients",
            "Recipients of all broadcasts in the database, by delivery status",
            ["delivery_status"],
            registry=self.registry,
        )
        self._database_up = Gauge(
            "coursedesk_database_up",
            "1 when this scrape could read the database, 0 when it could not",
            registry=self.registry,
        )
        self._analytics_lag = Gauge(
            "coursedesk_analytics_lag_seconds",
            "Age of the oldest change of the bot's tables not yet folded into the figures",
            registry=self.registry,
        )
        self._analytics_failing = Gauge(
            "coursedesk_analytics_fold_failing",
            "1 while folding the changes into the figures fails, else 0",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)

    def show_broadcasts(self, totals: BroadcastTotals | None) -> None:
        """The broadcast figures of this scrape; None when the database could not be read
        (the figures are left out rather than shown stale)."""
        self._database_up.set(totals is not None)
        if totals is None:
            self._broadcasts.clear()
            self._deliveries.clear()
            return
        for status, count in totals.broadcasts.items():
            self._broadcasts.labels(status).set(count)
        for status, count in totals.recipients.items():
            self._deliveries.labels(status).set(count)

    def show_freshness(self, freshness: Freshness | None) -> None:
        """How far behind the figures are, as this scrape read it (None: left out)."""
        if freshness is None:
            self._analytics_lag.clear()
            self._analytics_failing.clear()
            return
        self._analytics_lag.set(freshness.lag_seconds)
        self._analytics_failing.set(freshness.error is not None)

    def watch(self, figures: LiveFigures) -> Callable[[], None]:
        """Read `figures` at every scrape until the function answered is called."""
        self.registry.register(figures)
        return lambda: self.registry.unregister(figures)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The figures in the format the scraper accepts (OpenMetrics or Prometheus text),
        and its content type; a malformed Accept header gets Prometheus text."""
        try:
            encode, content_type = choose_encoder(accept)
        except (TypeError, ValueError):  # the client library trips on versions like `x.y`
            encode, content_type = choose_encoder("")
        return encode(self.registry), content_type


def route_template(scope: Scope) -> str:
    """`/api/users/{user_id}` rather than the path asked for, so labels stay few."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.observe_request(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


class LiveFigures(Collector):
    """Query, pool and cache figures, read from the running app at each scrape."""

    def __init__(self, queries: QueryMonitor, database: Database, cache: AnswerCache) -> None:
        self._queries = queries
        self._database = database
        self._cache = cache

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._query_families()
        yield from self._pool_families()
        yield from self._cache_families()
        yield from self._replica_families()

    def _query_families(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["database", "statement_id", "statement"]
        runs = CounterMetricFamily(
            "coursedesk_db_statement_runs", "Runs of each statement shape", labels=labels
        )
        seconds = CounterMetricFamily(
            "coursedesk_db_statement_seconds", "Time spent in each statement shape", labels=labels
        )
        p95 = GaugeMetricFamily(
            "coursedesk_db_statement_p95_seconds",
            "95th percentile of the recent runs of each statement shape",
            labels=labels,
        )
        for figure in self._queries.statements():
            values = [
                figure.database,
                figure.statement_id,
                figure.statement[:STATEMENT_LABEL_CHARS],
            ]
            runs.add_metric(values, figure.count)
            seconds.add_metric(values, figure.total_ms / 1000)
            p95.add_metric(values, figure.p95_ms / 1000)
        yield from (runs, seconds, p95)

    def _pool_families(self) -> Iterable[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "coursedesk_db_pool_size", "Connections the pool keeps", labels=["database"]
        )
        connections = GaugeMetricFamily(
            "coursedesk_db_pool_connections",
            "Pool connections by state; `waiting` counts checkouts waiting for one",
            labels=["database", "state"],
        )
        for pool in database_pools(self._database):
            size.add_metric([pool.database], pool.size)
            states = {
                "checked_out": pool.checked_out,
                "idle": pool.idle,
                "overflow": pool.overflow,
                "waiting": pool.waiting,
            }
            for state, value in states.items():
                if value is not None:
                    connections.add_metric([pool.database, state], value)
        yield from (size, connections)

    def _cache_families(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        figures = self._cache.figures()
        lookups = CounterMetricFamily(
            "coursedesk_cache_lookups",
            "Answer cache lookups by cached query and result",
            labels=["cache", "result"],
        )
        for counts in figures.caches:
            lookups.add_metric([counts.name, "hit"], counts.hits)
            lookups.add_metric([counts.name, "miss"], counts.misses)
        yield lookups
        yield CounterMetricFamily(
            "coursedesk_cache_errors", "Failed answer cache operations", value=figures.errors
        )
        yield CounterMetricFamily(
            "coursedesk_cache_invalidations",
            "Invalidations of every cached answer after a write",
            value=figures.invalidations,
        )
        yield GaugeMetricFamily(
            "coursedesk_cache_up",
            "1 while the answer cache's store answers, 0 when it fails or caching is off",
            value=int(figures.available),
        )

    def _replica_families(self) -> Iterable[GaugeMetricFamily]:
        """The replica's last measured lag and where reads go; nothing without a replica."""
        router = self._database.router
        if router is None:
            return
        status = router.status
        state = GaugeMetricFamily(
            "coursedesk_replica_state",
            "1 for the replica's state at the last probe (ok, lagging, down, unknown)",
            labels=["state"],
        )
        for name in ("unknown", "ok", "lagging", "down"):
            state.add_metric([name], int(status.state == name))
        yield state
        yield GaugeMetricFamily(
            "coursedesk_replica_reads_from_replica",
            "1 while reads that promise fresh figures go to the replica, 0 while to the primary",
            value=int(router.use_replica),
        )
        if status.lag_seconds is not None:
            yield GaugeMetricFamily(
                "coursedesk_replica_lag_seconds",
                "How far the replica's replay trailed the primary at the last probe",
                value=status.lag_seconds,
            )
