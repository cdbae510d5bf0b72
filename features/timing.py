"""Timing features: how recent and regular a customer is, and when in the day, week and year they act."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.base import BuildContext, Feature, FeatureFamily, epoch_seconds, exact_sum
from features.schema import PURCHASE, check_timezone

PREFIX = "timing__"
SECONDS_PER_DAY = 86400
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class HolidayPeriod(BaseModel):
    """A yearly period of month-days, both ends included; start after end wraps over New Year."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Label of the period, for people reading the config.")
    start: str = Field(description="First day, MM-DD.")
    end: str = Field(description="Last day (included), MM-DD.")

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        parts = value.split("-")
        ok = len(parts) == 2 and all(p.isdigit() and len(p) == 2 for p in parts)
        if ok:
            month, day = int(parts[0]), int(parts[1])
            ok = 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]
        if not ok:
            raise ValueError(f"holiday period day {value!r} is not a calendar day written MM-DD, e.g. 11-24")
        return value

    def bounds(self) -> tuple[int, int]:
        """Returns start and end as month * 100 + day."""
        return _md(self.start), _md(self.end)


def _md(text: str) -> int:
    month, day = text.split("-")
    return int(month) * 100 + int(day)


class TimingConfig(BaseModel):
    """Settings of the timing family (features.timing)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        "UTC",
        description="IANA timezone in which hours, weekdays, calendar days and holidays are read "
        "(timestamps themselves are UTC).",
    )
    daypart_start_hours: dict[str, int] = Field(
        default_factory=lambda: {"night": 0, "morning": 6, "afternoon": 12, "evening": 18},
        description="Name -> local hour (0-23) at which that part of the day starts; a part lasts until the "
        "next start, the last one wraps over midnight to the first. Each name gives timing__share_<name>.",
    )
    holiday_periods: list[HolidayPeriod] = Field(
        default_factory=lambda: [
            HolidayPeriod(name="black_friday_week", start="11-22", end="11-30"),
            HolidayPeriod(name="december", start="12-01", end="12-31"),
        ],
        description="Yearly periods counted by timing__holiday_share (default: the week of Black Friday, which "
        "falls on Nov 23-29, and December).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value, "features.timing.timezone")

    @field_validator("daypart_start_hours")
    @classmethod
    def _valid_dayparts(cls, value: dict[str, int]) -> dict[str, int]:
        if not value:
            raise ValueError("features.timing.daypart_start_hours is empty; give at least one part, e.g. {day: 0}")
        bad_hours = {k: v for k, v in value.items() if not 0 <= v <= 23}
        if bad_hours:
            raise ValueError(f"features.timing.daypart_start_hours {bad_hours}: start hours must be within 0-23")
        if len(set(value.values())) != len(value):
            raise ValueError(f"features.timing.daypart_start_hours {value}: two parts start at the same hour")
        bad_names = [k for k in value if not k.isidentifier() or k != k.lower()]
        if bad_names:
            raise ValueError(
                f"features.timing.daypart_start_hours names {bad_names} must be lower-case identifiers "
                "(they become column names)"
            )
        return dict(sorted(value.items(), key=lambda kv: kv[1]))


def catalog(config: TimingConfig, ctx: BuildContext | None = None) -> list[Feature]:
    """Lists the timing columns in output order; all of them need only the required event columns."""
    tz = config.timezone
    out = [
        Feature(f"{PREFIX}days_since_last_event", "Days from the last event to the cutoff.", "days"),
        Feature(f"{PREFIX}days_since_first_event", "Days from the first event to the cutoff (tenure).", "days"),
        Feature(
            f"{PREFIX}days_since_last_purchase", "Days from the last purchase to the cutoff; empty without purchases.", "days"
        ),
        Feature(
            f"{PREFIX}purchase_gap_mean_days",
            f"Mean gap between consecutive distinct purchase days ({tz} calendar); empty with fewer than 2.",
            "days",
        ),
        Feature(
            f"{PREFIX}purchase_gap_std_days",
            "Population standard deviation of those gaps (0 with exactly one gap); empty with fewer than 2 purchase days.",
            "days",
        ),
        Feature(
            f"{PREFIX}overdue_ratio",
            "Days since the last purchase divided by the mean purchase gap (>1 = later than usual); "
            "empty with fewer than 2 purchase days.",
            "ratio",
        ),
    ]
    parts = list(config.daypart_start_hours.items())
    for i, (name, start) in enumerate(parts):
        end = parts[(i + 1) % len(parts)][1]
        out.append(Feature(f"{PREFIX}share_{name}", f"Share of events from {start:02d}:00 to {end:02d}:00 {tz}.", "fraction"))
    out += [
        Feature(f"{PREFIX}preferred_hour", f"Most frequent hour of events ({tz}); ties go to the earliest hour.", "hour 0-23"),
        Feature(f"{PREFIX}weekend_share", f"Share of events on Saturday or Sunday ({tz}).", "fraction"),
        Feature(
            f"{PREFIX}dow_entropy",
            "Entropy of the day-of-week distribution of events, natural log: 0 = always the same weekday, "
            "ln 7 = 1.946 = evenly spread.",
            "nats",
        ),
        Feature(
            f"{PREFIX}holiday_share",
            "Share of events in the configured holiday periods "
            f"({', '.join(f'{p.name} {p.start}..{p.end}' for p in config.holiday_periods) or 'none configured'}).",
            "fraction",
        ),
    ]
    return out


@lru_cache(maxsize=32)
def _offset_changes(tz_name: str, until_epoch: int) -> tuple[int, tuple[tuple[int, int], ...]]:
    """Returns the UTC offset (s) in force from 1970 on, then each (epoch second, new offset) change until then.

    The offsets are found by a daily scan plus bisection of zoneinfo, so the timezone rule becomes a
    plain CASE expression that every engine runs alike (no engine-specific timezone function).
    """
    tz = ZoneInfo(tz_name)

    def offset(second: int) -> int:
        delta = datetime.fromtimestamp(second, tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    first = current = offset(0)
    changes: list[tuple[int, int]] = []
    second = 0
    while second < until_epoch:
        nxt = min(second + SECONDS_PER_DAY, until_epoch)
        new = offset(nxt)
        if new != current:
            lo, hi = second, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == current:
                    lo = mid
                else:
                    hi = mid
            changes.append((hi, new))
            current = new
        second = nxt
    return first, tuple(changes)


def _month_day_of(day: ir.IntegerValue) -> ir.IntegerValue:
    """Returns month * 100 + day of month of a day number since 1970-01-01 (proleptic Gregorian).

    Integer arithmetic (H. Hinnant's days_from_civil, inverted) that every engine runs alike and
    far faster than a calendar function on each event's timestamp.
    """
    z = day + 719468  # days since 0000-03-01
    era = z // 146097
    doe = z - era * 146097  # day of the 400-year era, 0-146096
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # year of the era, 0-399
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # day of the year from March 1, 0-365
    mp = (5 * doy + 2) // 153  # month from March = 0
    month = ibis.ifelse(mp < 10, mp + 3, mp - 9)
    return month * 100 + doy - (153 * mp + 2) // 5 + 1


def _utc_offset(epoch: ir.IntegerValue, tz_name: str, until_epoch: int) -> ir.IntegerValue:
    """Returns the timezone's UTC offset in seconds at each instant, as engine-neutral SQL.

    A binary tree of comparisons against the offset changes (a nested CASE), so each row needs about
    log2(changes) comparisons rather than one per change.
    """
    first, changes = _offset_changes(tz_name, until_epoch)
    bounds = [at for at, _ in changes]
    offsets = [first] + [new for _, new in changes]  # offsets[i] holds from bounds[i - 1] to bounds[i]

    def pick(lo: int, hi: int) -> ir.IntegerValue:
        if lo == hi:
            return ibis.literal(offsets[lo], type="int64")
        mid = (lo + hi + 1) // 2
        return ibis.ifelse(epoch < bounds[mid - 1], pick(lo, mid - 1), pick(mid, hi))

    return pick(0, len(offsets) - 1)


def _local_seconds(events: ir.Table, ctx: BuildContext, tz_name: str) -> ir.Table:
    """Adds _epoch (UTC seconds) and _local (the wall-clock time in the timezone, as seconds since 1970)."""
    ev = events.mutate(_epoch=epoch_seconds(events.timestamp))
    if tz_name == "UTC":
        return ev.mutate(_local=ev._epoch)
    # The offset gets its own projection so the (large) expression appears once in the SQL.
    ev = ev.mutate(_offset=_utc_offset(ev._epoch, tz_name, int(ctx.cutoff.timestamp()) + 1))
    return ev.mutate(_local=ev._epoch + ev._offset)


def build(events: ir.Table, ctx: BuildContext, config: TimingConfig) -> ir.Table:
    """Measures recency, tenure and purchase regularity, and when in the day, week and year events happen.

    Day counts are fractional days between instants; purchase gaps are whole days between distinct
    local calendar days with a purchase. Hours, weekdays and holidays are read in the configured timezone.
    Events are first counted per customer and local clock hour (all a clock hour's events share its
    day, weekday and holiday), then everything is read off that smaller table.
    """
    wanted = [f.name for f in catalog(config, ctx)]
    cutoff_epoch = int(ctx.cutoff.timestamp())
    ev = _local_seconds(events, ctx, config.timezone)
    buy = ev.event_type == PURCHASE
    hourly = ev.group_by(["customer_id", (ev._local // 3600).name("_clock")]).aggregate(
        _k=ev.count(), _last=ev._epoch.max(), _first=ev._epoch.min(), _last_buy=ev._epoch.max(where=buy),
        _buys=ev.count(where=buy),
    )
    day = hourly._clock // 24
    hourly = hourly.mutate(
        _day=day,
        _hour=hourly._clock - day * 24,
        _dow=((day + 3) % 7 + 7) % 7,  # 1970-01-01 was a Thursday; Monday = 0 ... Sunday = 6
        _md=_month_day_of(day),
    )

    parts = list(config.daypart_start_hours.items())
    # An hour belongs to the part with the latest start at or before it; hours before the first
    # start belong to the last part (it wraps over midnight).
    part_of_hour = ibis.cases(
        *[(hourly._hour >= start, ibis.literal(name)) for name, start in reversed(parts)],
        else_=ibis.literal(parts[-1][0]),
    )
    holiday = ibis.literal(False)
    for period in config.holiday_periods:
        lo, hi = period.bounds()
        inside = hourly._md.between(lo, hi) if lo <= hi else (hourly._md >= lo) | (hourly._md <= hi)
        holiday = holiday | inside

    def events_where(where: ir.BooleanValue) -> ir.IntegerValue:
        return hourly._k.sum(where=where).fill_null(0)

    aggs: dict[str, ir.Value] = {
        "_n": hourly._k.sum(),
        "_last": hourly._last.max(),
        "_first": hourly._first.min(),
        "_last_buy": hourly._last_buy.max(),
        "_weekend": events_where(hourly._dow >= 5),
        "_holiday": events_where(holiday),
    }
    for name, _ in parts:
        aggs[f"_part_{name}"] = events_where(part_of_hour == name)
    per = hourly.group_by("customer_id").aggregate(**aggs)

    # Gaps between consecutive distinct purchase days.
    buy_days = hourly.filter(hourly._buys > 0).select("customer_id", "_day").distinct()
    gaps = buy_days.mutate(
        _gap=buy_days._day - buy_days._day.lag().over(group_by=buy_days.customer_id, order_by=buy_days._day)
    )
    gap_stats = gaps.group_by("customer_id").aggregate(
        _gap_mean=gaps._gap.mean(), _gap_std=gaps._gap.std(how="pop"), _gap_n=gaps._gap.count()
    )

    # Preferred hour: the mode, ties broken towards the earliest hour.
    hours = hourly.group_by(["customer_id", "_hour"]).aggregate(_k=hourly._k.sum())
    hours = hours.mutate(
        _rn=ibis.row_number().over(group_by=hours.customer_id, order_by=[hours._k.desc(), hours._hour.asc()])
    )
    mode = hours.filter(hours._rn == 0).select("customer_id", _mode=hours._hour)

    # Day-of-week entropy: -sum p ln p over the weekdays that occur.
    dows = hourly.group_by(["customer_id", "_dow"]).aggregate(_k=hourly._k.sum())
    p = dows._k / dows._k.sum().over(group_by=dows.customer_id)
    dows = dows.mutate(_plnp=p * p.ln())
    entropy = dows.group_by("customer_id").aggregate(_entropy=-exact_sum(dows._plnp, scale=1e12))

    joined = (
        per.left_join(gap_stats, "customer_id")
        .drop("customer_id_right")
        .left_join(mode, "customer_id")
        .drop("customer_id_right")
        .left_join(entropy, "customer_id")
        .drop("customer_id_right")
    )

    def days(epoch: ir.IntegerValue) -> ir.FloatingValue:
        return (cutoff_epoch - epoch) / SECONDS_PER_DAY

    enough = joined._gap_n >= 1  # at least two distinct purchase days
    since_buy = days(joined._last_buy)
    gap_mean = joined._gap_mean.cast("float64")
    cols: dict[str, ir.Value] = {
        f"{PREFIX}days_since_last_event": days(joined._last),
        f"{PREFIX}days_since_first_event": days(joined._first),
        f"{PREFIX}days_since_last_purchase": since_buy,
        f"{PREFIX}purchase_gap_mean_days": ibis.ifelse(enough, gap_mean, ibis.null("float64")),
        f"{PREFIX}purchase_gap_std_days": ibis.ifelse(enough, joined._gap_std, ibis.null("float64")),
        f"{PREFIX}overdue_ratio": ibis.ifelse(enough, since_buy / gap_mean, ibis.null("float64")),
    }
    for name, _ in parts:
        cols[f"{PREFIX}share_{name}"] = joined[f"_part_{name}"] / joined._n
    cols[f"{PREFIX}preferred_hour"] = joined._mode
    cols[f"{PREFIX}weekend_share"] = joined._weekend / joined._n
    # A single weekday gives -(1 * ln 1) = -0.0; abs() makes it a plain 0 (entropy is never negative).
    cols[f"{PREFIX}dow_entropy"] = joined._entropy.abs()
    cols[f"{PREFIX}holiday_share"] = joined._holiday / joined._n
    # Every customer has an event, so the hour is never empty: int64; everything else float64.
    typed = {name: cols[name].cast("int64" if name == f"{PREFIX}preferred_hour" else "float64") for name in wanted}
    return joined.select("customer_id", **typed)


FAMILY = FeatureFamily(
    name="timing",
    description="Recency, tenure, purchase rhythm and overdue-ness, time-of-day/week/holiday habits.",
    build=build,
    catalog=catalog,
)
