"""Composable selects over user_summaries: filters, search, pages and totals.

A page of search results is looked for among the most recent users first: a common
term fills the page there at once. Only when it does not are all matches found through
the trigram and name-gram indexes, and sorted; the planner cannot tell these cases
apart from the text alone, and walking the first_seen index for a rare term reads the
whole table. The first_seen index carries the names, so the most recent users are
searched in the index alone, and pages are picked by key there before their rows are
read: a rare term, or a page deep in the list, reads only the rows it answers. The
trigram and name-gram indexes are on user_names, which the fold writes only when a
name changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import array

from coursedesk.db.base import BIGINT_MAX
from coursedesk.telegram.models import BotUser
from coursedesk.users.models import SHORT_TERM, UserName, UserSegment, UserSummary

RECENT_USERS = 10000
SUMMARIES: Table = UserSummary.__table__  # type: ignore[assignment]
NAMES: Table = UserName.__table__  # type: ignore[assignment]


def escape_like(term: str) -> str:
    """`term` as a LIKE pattern that matches itself only (escape character: backslash)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(source: FromClause, column: str, term: str, *, grams: bool) -> ColumnElement[bool]:
    """`column` holds `term`, ignoring case. With `grams`, a term of one or two
    characters is first looked up among the name grams, since the trigram indexes
    cannot serve it."""
    condition = source.c[column].ilike(f"%{escape_like(term)}%", escape="\\")
    if not grams or len(term) > SHORT_TERM:
        return condition
    return and_(source.c.name_grams.contains(array([func.lower(term)])), condition)


def _names_match(source: FromClause, term: str, *, grams: bool) -> ColumnElement[bool]:
    """A first_name or username of `source` holds `term` (a leading @ ignored for the
    username)."""
    conditions = [_contains(source, "first_name", term, grams=grams)]
    username_term = term.removeprefix("@")
    if username_term:
        conditions.append(_contains(source, "username", username_term, grams=grams))
    return or_(*conditions)


def _user_id_of(term: str) -> int | None:
    """The user_id a query of digits names, if it can be one."""
    if term.isascii() and term.isdigit() and int(term) <= BIGINT_MAX:
        return int(term)
    return None


def search_condition(query: str, source: FromClause = SUMMARIES) -> ColumnElement[bool] | None:
    """Search as docs/reference.md §4 defines it: a case-insensitive substring of the
    username (a leading @ in the query ignored) or of first_name; a query of digits also
    matches user_id exactly. None for a blank query.

    On user_summaries the names are looked up in user_names, through its indexes; any
    other source (a subquery carrying the names) is tested directly.
    """
    term = query.strip()
    if not term:
        return None
    if source is not SUMMARIES:
        user_id = _user_id_of(term)
        named = _names_match(source, term, grams=False)
        return named if user_id is None else or_(named, source.c.user_id == user_id)
    return SUMMARIES.c.user_id.in_(matching_ids(term))


def matching_ids(term: str) -> Select[tuple[int]]:
    """The user_id of every user a search for `term` (not blank) finds: the names through
    user_names' indexes, and for digits the user of that id, if there is one. One set, so
    that the planner joins it by key instead of testing every summary against an OR."""
    matches: Select[tuple[int]] = select(NAMES.c.user_id).where(
        _names_match(NAMES, term, grams=True)
    )
    user_id = _user_id_of(term)
    if user_id is None:
        return matches
    by_id = select(SUMMARIES.c.user_id).where(SUMMARIES.c.user_id == user_id)
    return matches.union(by_id)  # type: ignore[return-value]


@dataclass(frozen=True)
class UserFilter:
    search: str | None = None
    stream: str | None = None
    status: str | None = None

    @property
    def searching(self) -> bool:
        return bool(self.search and self.search.strip())

    def conditions(self, source: FromClause = SUMMARIES) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.search and (matches := search_condition(self.search, source)) is not None:
            conditions.append(matches)
        return conditions + self.filters(source)

    def filters(self, source: FromClause = SUMMARIES) -> list[ColumnElement[bool]]:
        """The conditions other than the search: stream and status."""
        filters: list[ColumnElement[bool]] = []
        if self.stream:
            filters.append(source.c.course_stream == self.stream)
        if self.status:
            filters.append(source.c.status == self.status)
        return filters


def _newest_first(source: FromClause) -> tuple[ColumnElement[Any], ...]:
    return source.c.first_seen.desc(), source.c.user_id.desc()


def _user_columns(source: FromClause) -> Select[*tuple[Any, ...]]:
    """The user object of docs/reference.md §5."""
    return select(
        source.c.user_id,
        source.c.username,
        source.c.first_name,
        source.c.first_seen,
        source.c.last_seen,
        source.c.course_stream,
        source.c.status,
        source.c.bookings_count,
        source.c.events_count,
        source.c.free_lessons_count,
        func.coalesce(BotUser.is_blocked, false()).label("is_blocked"),
    ).outerjoin(BotUser, BotUser.user_id == source.c.user_id)


def user_rows(matching: UserFilter) -> Select[*tuple[Any, ...]]:
    """Every matching user, newest first_seen first (then user_id)."""
    return (
        _user_columns(SUMMARIES).where(*matching.conditions()).order_by(*_newest_first(SUMMARIES))
    )


def user_by_id(user_id: int) -> Select[*tuple[Any, ...]]:
    return _user_columns(SUMMARIES).where(SUMMARIES.c.user_id == user_id)


# What a search reads of a user: the user object and what the conditions test.
USER_COLUMNS = (
    "user_id",
    "username",
    "first_name",
    "first_seen",
    "last_seen",
    "course_stream",
    "status",
    "bookings_count",
    "events_count",
    "free_lessons_count",
)
# ix_user_summaries_first_seen_user_id: its key, then the names it carries.
NEWEST_INDEX_COLUMNS = ("first_seen", "user_id", "username", "first_name")


def _recent_users() -> FromClause:
    """The RECENT_USERS most recent users, as much of them as the first_seen index holds."""
    return (
        select(*(SUMMARIES.c[name] for name in NEWEST_INDEX_COLUMNS))
        .order_by(*_newest_first(SUMMARIES))
        .limit(RECENT_USERS)
        .subquery("recent")
    )


def _all_matches(matching: UserFilter) -> FromClause:
    """The matches as a set of their own, found through the indexes of the conditions."""
    return (
        select(*(SUMMARIES.c[name] for name in USER_COLUMNS))
        .where(*matching.conditions())
        .cte("matches")
        .prefix_with("MATERIALIZED")
    )


@dataclass(frozen=True)
class PageQuery:
    """A page of matches: looked for among the most recent users first (when the page
    lies within them), and everywhere only if those do not fill it."""

    matching: UserFilter
    shape: Callable[[FromClause], Select[*tuple[Any, ...]]]
    limit: int
    offset: int = 0

    def recent(self) -> Select[*tuple[Any, ...]] | None:
        """The page among the most recent users, whose names are matched in the index
        alone; None without a search, or for a page beyond them."""
        if not self.matching.search or self.offset + self.limit > RECENT_USERS:
            return None
        recent = _recent_users()
        matches = search_condition(self.matching.search, recent)
        if matches is None:
            return None
        keys = select(recent.c.first_seen, recent.c.user_id).where(matches).subquery("matches")
        return self._page(self._rows_of(keys).where(*self.matching.filters()), keys)

    def everywhere(self) -> Select[*tuple[Any, ...]]:
        if not self.matching.searching:
            keys = select(SUMMARIES.c.first_seen, SUMMARIES.c.user_id).where(
                *self.matching.filters()
            )
            page = self._page(keys, SUMMARIES).subquery("page")
            return self._rows_of(page).order_by(*_newest_first(page))
        source = _all_matches(self.matching)
        return self._page(self.shape(source), source)

    def _rows_of(self, keys: FromClause) -> Select[*tuple[Any, ...]]:
        """The rows of the users in `keys`: picked by key in an index first, so that only
        the rows answered are read from the table."""
        return self.shape(SUMMARIES).join(keys, keys.c.user_id == SUMMARIES.c.user_id)

    def _page(self, rows: Select[*tuple[Any, ...]], source: FromClause) -> Select[*tuple[Any, ...]]:
        return rows.order_by(*_newest_first(source)).limit(self.limit).offset(self.offset)


def user_page(matching: UserFilter, limit: int, offset: int) -> PageQuery:
    return PageQuery(matching, _user_columns, limit, offset)


def _brief_columns(source: FromClause) -> Select[*tuple[Any, ...]]:
    return select(source.c.user_id, source.c.username, source.c.first_name)


def brief_page(query: str, limit: int) -> PageQuery:
    """Search results as (user_id, username, first_name); a blank query: the newest."""
    return PageQuery(UserFilter(search=query), _brief_columns, limit)


def user_total(matching: UserFilter) -> Select[Any]:
    """How many users match; without a search, a sum over a few user_segments rows.

    A search counts last_seen (never null), a column the first_seen index does not
    carry: counting rows, the planner would read that index whole, names and all, and
    test every name, which is slower than testing the rows the trigram indexes find.
    """
    if matching.searching and not matching.filters():
        # Counted in user_names alone, whose rows are short: no summary is read.
        found = matching_ids((matching.search or "").strip()).subquery("found")
        return select(func.count()).select_from(found)
    if matching.searching:
        return select(func.count(SUMMARIES.c.last_seen)).where(*matching.conditions())
    total = select(func.coalesce(func.sum(UserSegment.users), 0))
    if matching.stream:
        total = total.where(UserSegment.course_stream == matching.stream)
    if matching.status:
        total = total.where(UserSegment.status == matching.status)
    return total
