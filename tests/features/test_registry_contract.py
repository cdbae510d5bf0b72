"""The contract every registered feature family keeps, checked by one shared test run for each family."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from features.base import FeatureFamily
from features.build import build_context, events_before, family_catalog
from features.config import FeaturesConfig
from features.registry import FAMILIES
from features.schema import EVENT_TYPES, column_names

CUSTOMERS = ("c0", "c1", "c2", "c3")  # the customers of the rich example (conftest.rich_events)

# Arbitrary events at or after the cutoff: known or new customers, any type, any (or no) values.
LATE_EVENT = st.fixed_dictionaries(
    {
        "customer_id": st.sampled_from(CUSTOMERS + ("newcomer",)),
        "seconds_after_cutoff": st.integers(0, 400 * 86400),
        "event_type": st.sampled_from(sorted(EVENT_TYPES)),
        "session_id": st.sampled_from([None, "s0", "late"]),
        "order_id": st.sampled_from([None, "o0", "late"]),
        "channel": st.sampled_from([None, "web", "app", "email"]),
        "device": st.sampled_from([None, "mobile"]),
        "revenue": st.one_of(st.none(), st.floats(0, 1e4)),
        "quantity": st.one_of(st.none(), st.floats(0, 100)),
        "unit_price": st.one_of(st.none(), st.floats(0, 1e3)),
        "product_id": st.sampled_from([None, "p0", "late"]),
        "category": st.sampled_from([None, "shoes", "late"]),
        "discount": st.sampled_from([None, 0.0, 1.0, 5.0]),
        "topic": st.sampled_from([None, "promo", "late"]),
        "rating": st.sampled_from([None, 1.0, 5.0, 10.0]),
    }
)

AT_CUTOFF: dict[str, Any] = {
    "seconds_after_cutoff": 0,
    "event_type": "purchase",
    "session_id": "s0",
    "order_id": "late",
    "channel": "web",
    "device": "mobile",
    "revenue": 999.0,
    "quantity": 1.0,
    "unit_price": 999.0,
    "product_id": "p0",
    "category": "shoes",
    "discount": 1.0,
    "topic": "promo",
    "rating": 5.0,
}


def run_family(con: Any, table: Any, family: FeatureFamily, events: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """Runs one family's builder directly on the events before the cutoff; rows sorted by customer."""
    before = events_before(table(con, events), cutoff)
    ctx = build_context(before, cutoff)
    section = FeaturesConfig().section(family.name)
    out = family.build(before, ctx, section).execute()
    return out.sort_values("customer_id").reset_index(drop=True)


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    # Sums over differently ordered rows may differ in the last bits of a float.
    try:
        assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=1e-12)
    except AssertionError as err:
        raise AssertionError(f"{what}: {err}") from None


def docstring_starts_with_a_verb(family: FeatureFamily) -> None:
    doc = (family.build.__doc__ or "").strip()
    first = doc.split()[0] if doc else ""
    # Builder docstrings say what they do in the third person: "Counts ...", "Builds ...".
    assert first[:1].isupper() and first.endswith("s") and first not in {"This", "Its", "As", "Is"}, (
        f"{family.name}: builder docstring should start with a verb such as 'Counts', got {doc[:40]!r}"
    )


def columns_are_prefixed_and_equal_the_catalog(
    con: Any, table: Any, family: FeatureFamily, events: pd.DataFrame, cutoff: datetime
) -> pd.DataFrame:
    before = events_before(table(con, events), cutoff)
    ctx = build_context(before, cutoff)
    assert family.missing_inputs(ctx) is None, f"{family.name} skips on data with every input"
    section = FeaturesConfig().section(family.name)
    built = family.build(before, ctx, section)
    names = [f.name for f in family_catalog(family, section, ctx)]
    assert list(built.columns) == ["customer_id", *names], f"{family.name}: columns differ from catalog(config, ctx)"
    assert names == [f.name for f in family_catalog(family, section)], (
        f"{family.name}: with every input present the catalog should be the full catalog"
    )
    assert all(n.startswith(f"{family.name}__") for n in names), f"{family.name}: a column lacks the prefix"
    return built.execute()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_keeps_the_feature_contract(name, duck, table, rich_frame, rich_cutoff):
    family = FAMILIES[name]
    docstring_starts_with_a_verb(family)

    raw = columns_are_prefixed_and_equal_the_catalog(duck, table, family, rich_frame, rich_cutoff)
    # One row per customer seen before the cutoff, keyed by a unique customer_id.
    assert raw["customer_id"].is_unique
    assert set(raw["customer_id"]) == set(CUSTOMERS)

    reference = run_family(duck, table, family, rich_frame, rich_cutoff)
    # Determinism: the same input gives the same frame.
    assert_same(run_family(duck, table, family, rich_frame, rich_cutoff), reference, f"{name}: a second run differs")
    # Shuffle invariance: the order of input rows carries no meaning.
    shuffled = rich_frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert_same(
        run_family(duck, table, family, shuffled, rich_cutoff), reference, f"{name}: shuffled rows change the frame"
    )

    # Cutoff invariance: appending any events at or after the cutoff changes nothing.
    # No shrinking: each example runs real queries, and a shrink would take minutes; the failing example
    # is reported as drawn. The explicit example pins the boundary: events exactly at the cutoff.
    @settings(
        max_examples=5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    @given(late=st.lists(LATE_EVENT, min_size=1, max_size=6))
    @example(late=[{"customer_id": "c0"} | AT_CUTOFF, {"customer_id": "newcomer"} | AT_CUTOFF])
    def late_events_change_nothing(late: list[dict[str, Any]]) -> None:
        extra = pd.DataFrame(late)
        extra["timestamp"] = [rich_cutoff + timedelta(seconds=int(s)) for s in extra.pop("seconds_after_cutoff")]
        extra = extra.reindex(columns=column_names("events"))
        extra["timestamp"] = pd.to_datetime(extra["timestamp"], utc=True)
        events = pd.concat([rich_frame, extra], ignore_index=True)
        assert_same(
            run_family(duck, table, family, events, rich_cutoff), reference, f"{name}: events after the cutoff leak"
        )

    late_events_change_nothing()
