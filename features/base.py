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
