"""The contract every feature family follows: a pure Ibis builder plus the catalog of what it makes.

A family turns the events before a cutoff into one row per customer. The framework
(features/build.py) removes events at or after the cutoff before any family sees them, so a
builder cannot leak the future even by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import ibis.expr.types as ir


@dataclass(frozen=True)
class Feature:
    """Describes one output column: full prefixed name, what it measures, and its unit."""

    name: str
    description: str
    unit: str


@dataclass(frozen=True)
class BuildContext:
    """What a builder may know besides the events: the cutoff and which inputs exist.

    `columns` are the canonical event columns present in the data, `event_types` the canonical
    event types that occur before the cutoff. `customers` and `catalog` are the optional side
    tables (already mapped to canonical names), or None when the user has none.
    """

    cutoff: datetime
    columns: frozenset[str]
    event_types: frozenset[str]
    customers: ir.Table | None = None
    catalog: ir.Table | None = None


Builder = Callable[[ir.Table, BuildContext, Any], ir.Table]
Cataloguer = Callable[[Any], list[Feature]]


@dataclass(frozen=True)
class FeatureFamily:
    """A registered family: name (the column prefix), builder, catalog, and the inputs it needs.

    `requires_columns`: canonical event columns that must all be present.
    `requires_event_types`: at least one of these event types must occur before the cutoff.
    A family whose inputs are missing is skipped with the reason from `missing_inputs`; it never
    invents values for what the data does not have.
    """

    name: str
    description: str
    build: Builder
    catalog: Cataloguer
    requires_columns: tuple[str, ...] = ()
    requires_event_types: tuple[str, ...] = field(default=())

    def missing_inputs(self, ctx: BuildContext) -> str | None:
        """Returns why this family cannot run on the given inputs, or None when it can."""
        absent = [c for c in self.requires_columns if c not in ctx.columns]
        if absent:
            return f"{self.name}: needs event column(s) {absent}, absent from the data"
        if self.requires_event_types and not ctx.event_types.intersection(self.requires_event_types):
            return (
                f"{self.name}: needs at least one event of type {list(self.requires_event_types)} "
                "before the cutoff, none found (map your event names in data.events.event_types)"
            )
        return None


def epoch_seconds(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Returns whole seconds since 1970-01-01 UTC, floored, as int64.

    DuckDB's epoch keeps the fraction where Spark's drops it; flooring makes both agree. It is also
    far cheaper on DuckDB than truncate("s"), which goes through time-zone-aware calendar code.
    """
    return ts.epoch_seconds().cast("float64").floor().cast("int64")


def exact_sum(values: ir.NumericValue, where: ir.BooleanValue | None = None, scale: float = 1e6) -> ir.FloatingScalar:
    """Sums floats so that the result does not depend on row order or parallelism.

    Floating-point addition is not associative, so a parallel engine summing in a different order
    changes the last bits between runs, and scores built on them stop being reproducible. Each term
    is rounded to 1/scale and summed as a 64-bit integer (exact in any order), then scaled back.
    Keep |sum| * scale below 9.2e18: scale 1e6 covers money up to 9 trillion, 1e9 counts up to 9 billion.
    """
    return fixed_point(values, scale).sum(where=where).cast("float64") / scale


def fixed_point(values: ir.NumericValue, scale: float = 1e6) -> ir.IntegerValue:
    """Returns each value rounded to 1/scale as a 64-bit integer, the terms exact_sum adds.

    Summing these in several steps (per group, then over groups) and dividing by `scale` at the end
    gives exactly exact_sum's result, whatever the grouping and order.
    """
    return (values * scale).round().cast("int64")
