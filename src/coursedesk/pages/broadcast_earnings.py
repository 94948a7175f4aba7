"""The broadcast page's comparison of what the delivered recipients did with what the
control group did, and whether the difference is more than chance.

Each figure is a proportion of its group. The difference of the two proportions gets a
95 % interval by Newcombe's hybrid score method (Newcombe 1998, method 10): a Wilson
score interval for each proportion, combined. Unlike the plain normal approximation
(Wald) it stays sound with small groups and with counts of 0 or all, which a control
group of a few hundred students gives all the time. An interval that excludes 0 means
the difference is unlikely to be chance alone; one that includes 0 means it may be.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from typing import Literal

from coursedesk.broadcasts.earnings import BroadcastOutcome, GroupOutcome

Z_95 = 1.959963984540054
"""The standard normal quantile of 97.5 %: two-sided 95 %."""
WINDOW_CHOICES = (1, 3, 7, 14, 30, 60, 90)
FIGURE_LABELS = {
    "clicked": "Clicked a link",
    "booked": "Booked",
    "confirmed": "Booking confirmed",
    "free_lesson_registered": "Registered for a free lesson",
    "attended": "Attended a lesson",
    "blocked": "Blocked the bot",
}
Verdict = Literal["higher", "lower", "noise", "none"]


def wilson_interval(count: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of the proportion count / total (total > 0)."""
    share = count / total
    spread = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / spread
    half = z / spread * sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    count_a: int, total_a: int, count_b: int, total_b: int, z: float = Z_95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of count_a/total_a − count_b/total_b."""
    share_a, share_b = count_a / total_a, count_b / total_b
    low_a, high_a = wilson_interval(count_a, total_a, z)
    low_b, high_b = wilson_interval(count_b, total_b, z)
    difference = share_a - share_b
    return (
        difference - sqrt((share_a - low_a) ** 2 + (high_b - share_b) ** 2),
        difference + sqrt((high_a - share_a) ** 2 + (share_b - low_b) ** 2),
    )


def _points(share: float) -> str:
    """A difference of proportions in percentage points, signed."""
    return f"{100 * share:+.1f}"


@dataclass(frozen=True)
class FigureComparison:
    name: str
    label: str
    sent: int
    sent_rate: float | None
    holdout: int | None
    holdout_rate: float | None
    difference: float | None
    """sent_rate − holdout_rate, as a proportion."""
    interval: tuple[float, float] | None
    verdict: Verdict

    @property
    def difference_text(self) -> str:
        if self.difference is None or self.interval is None:
            return ""
        low, high = self.interval
        return f"{_points(self.difference)} pts (95 % interval {_points(low)} to {_points(high)})"

    @property
    def verdict_text(self) -> str:
        """The difference in plain words: beyond chance, or possibly just noise."""
        if self.name == "clicked" and self.holdout is not None:
            return "The control group got no links to click."
        return {
            "higher": "Higher than the control group: more than chance would explain.",
            "lower": "Lower than the control group: more than chance would explain.",
            "noise": "Not distinguishable from noise: the interval includes no difference.",
            "none": "",
        }[self.verdict]


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def compare_figure(name: str, sent: GroupOutcome, holdout: GroupOutcome | None) -> FigureComparison:
    sent_count: int = getattr(sent, name)
    sent_rate = _rate(sent_count, sent.recipients)
    if holdout is None:
        return FigureComparison(
            name, FIGURE_LABELS[name], sent_count, sent_rate, None, None, None, None, "none"
        )
    held_count: int = getattr(holdout, name)
    held_rate = _rate(held_count, holdout.recipients)
    if sent_rate is None or held_rate is None or name == "clicked":
        return FigureComparison(
            name, FIGURE_LABELS[name], sent_count, sent_rate, held_count, held_rate, None, None,
            "none",
        )  # fmt: skip
    low, high = difference_interval(sent_count, sent.recipients, held_count, holdout.recipients)
    verdict: Verdict = "higher" if low > 0 else "lower" if high < 0 else "noise"
    return FigureComparison(
        name, FIGURE_LABELS[name], sent_count, sent_rate, held_count, held_rate,
        sent_rate - held_rate, (low, high), verdict,
    )  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    window_days: int
    sent_recipients: int
    holdout_recipients: int | None
    figures: list[FigureComparison]

    @classmethod
    def of(cls, outcome: BroadcastOutcome) -> Comparison:
        holdout = outcome.holdout
        return cls(
            window_days=outcome.window_days,
            sent_recipients=outcome.sent.recipients,
            holdout_recipients=holdout.recipients if holdout is not None else None,
            figures=[compare_figure(name, outcome.sent, holdout) for name in FIGURE_LABELS],
        )

    @property
    def window_choices(self) -> tuple[int, ...]:
        if self.window_days in WINDOW_CHOICES:
            return WINDOW_CHOICES
        return tuple(sorted({*WINDOW_CHOICES, self.window_days}))
