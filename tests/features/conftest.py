"""Fixtures of the feature tests: one DuckDB and one shared Spark backend, and tiny hand-made event tables."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from features.schema import EVENT_TYPES, column_names
from pipeline.engine import connect, register

EVENT_FIELDS = (
    "customer_id",
    "timestamp",
    "event_type",
    "session_id",
    "order_id",
    "channel",
    "product_id",
    "category",
    "revenue",
    "quantity",
)

# The shared example of the usage, timing and value tests. The cutoff is Friday 2024-03-01 00:00 UTC
# (2024 is a leap year: February has 29 days). Windows used there: 7 days = [Feb 23, Mar 1),
# 30 days = [Jan 31, Mar 1). dave is first seen at the cutoff, so he is not in the population.
CUTOFF = "2024-03-01"
SHOP_EVENTS: list[tuple[Any, ...]] = [
    # customer, timestamp (UTC), event_type, session, order, channel, product, category, revenue, quantity
    ("alice", "2024-01-10 09:00", "product_view", "s1", None, "web", "p1", "shoes", None, None),  # Wed
    ("alice", "2024-01-10 09:10", "purchase", "s1", "o1", "web", "p1", "shoes", 100.0, 1.0),
    ("alice", "2024-01-10 09:10", "purchase", "s1", "o1", "web", "p2", "socks", 20.0, 2.0),  # same order
    ("alice", "2024-02-20 19:30", "product_view", "s2", None, "app", "p3", "hats", None, None),  # Tue
    ("alice", "2024-02-20 19:45", "add_to_cart", "s2", None, "app", "p3", "hats", None, None),
    ("alice", "2024-02-20 20:00", "purchase", "s2", "o2", "app", "p3", "hats", 60.0, 1.0),
    ("alice", "2024-02-26 10:00", "purchase", "s3", "o4", "web", "p4", "shoes", 40.0, 1.0),  # Mon
    ("alice", "2024-02-27 07:00", "login", "s4", None, "app", None, None, None, None),  # Tue
    ("alice", "2024-02-27 07:05", "return", "s4", None, "app", "p2", "socks", 20.0, 2.0),
    ("alice", "2024-02-28 22:00", "page_view", "s5", None, "web", None, None, None, None),  # Wed
    ("alice", "2024-03-01 00:00", "purchase", "s6", "o5", "web", "p1", "shoes", 500.0, 1.0),  # at the cutoff
    ("alice", "2024-03-05 12:00", "purchase", "s7", "o6", "web", "p1", "shoes", 70.0, 1.0),  # after it
    ("bob", "2024-02-10 13:00", "page_view", "s10", None, "web", None, None, None, None),  # Sat
    ("bob", "2024-02-10 13:05", "product_view", "s10", None, "web", "p1", "shoes", None, None),
    ("bob", "2024-02-24 03:00", "search", "s11", None, "web", None, None, None, None),  # Sat
    ("bob", "2024-02-25 15:00", "product_view", "s12", None, "web", "p2", "socks", None, None),  # Sun
    ("carol", "2023-11-24 12:00", "purchase", None, "o9", "web", "p1", "shoes", 80.0, 1.0),  # Black Friday
    ("carol", "2023-12-26 18:30", "content_view", None, None, "email", None, None, None, None),  # Tue
    ("dave", "2024-03-01 00:00", "page_view", "s30", None, "web", None, None, None, None),
    ("dave", "2024-03-02 09:00", "purchase", "s30", "o30", "web", "p1", "shoes", 90.0, 1.0),
]


# The rich example of the contract and parity tests: every canonical column and every event type.
RICH_CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)


def rich_events() -> pd.DataFrame:
    """Returns events with every canonical column and every event type, so no family has a reason to skip.

    Event i is of the i-th canonical type, by customer c(i mod 4), 2 days and 3 hours apart going back
    from the cutoff; purchases and returns carry money, reviews and surveys a rating. Eight more
    purchases give every customer repeat orders.
    """
    rows: list[dict[str, Any]] = []
    for i, event_type in enumerate(list(EVENT_TYPES) + ["purchase"] * 8):
        money = event_type in ("purchase", "return")
        rows.append(
            {
                "customer_id": f"c{i % 4}",
                "timestamp": RICH_CUTOFF - timedelta(days=2 * i + 1, hours=3 * i),
                "event_type": event_type,
                "session_id": f"s{i // 2}",
                "order_id": f"o{i}" if money else None,
                "channel": ("web", "app", "email", "ads", "store", "support")[i % 6],
                "device": ("desktop", "mobile", "tablet")[i % 3],
                "revenue": 10.0 + i if money else None,
                "quantity": 1.0 + i % 3 if money else None,
                "unit_price": 10.0 + i if money else None,
                "product_id": f"p{i % 5}",
                "category": ("shoes", "socks", "hats")[i % 3],
                "discount": float(i % 2) if money else None,
                "topic": ("promo", "specs", "reviews", "returns_policy")[i % 4],
                "rating": float(1 + i % 5) if event_type in ("review", "survey") else None,
            }
        )
    frame = pd.DataFrame(rows, columns=column_names("events"))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so this folder runs on its own with --strict-markers.
    config.addinivalue_line("markers", "spark: needs PySpark and Java 17 (deselect with -m 'not spark')")
    config.addinivalue_line("markers", "slow: heavy tests (deselect with -m 'not slow')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Whatever a test module declares, a test that uses the Spark backend is slow and needs Spark,
    # so `-m "not spark"` always deselects it.
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
            item.add_marker(pytest.mark.slow)


def events_frame(rows: list[tuple[Any, ...]], columns: tuple[str, ...] = EVENT_FIELDS) -> pd.DataFrame:
    """Returns an events frame from literal rows (timestamps as UTC text)."""
    df = pd.DataFrame(rows, columns=list(columns))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


@pytest.fixture(scope="session")
def to_frame() -> Callable[..., pd.DataFrame]:
    """Returns the function turning literal rows into an events frame."""
    return events_frame


@pytest.fixture(scope="session")
def duck() -> Any:
    """Returns one in-memory DuckDB backend for the whole test run."""
    return connect("duckdb")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """Returns one local Spark backend for the whole test run (starting Spark takes many seconds)."""
    pytest.importorskip("pyspark")
    con = connect("spark", "local[2]", {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"})
    con._session.sparkContext.setLogLevel("ERROR")
    yield con
    con._session.stop()


_names = itertools.count()


@pytest.fixture(scope="session")
def table() -> Callable[..., Any]:
    """Returns a function putting a pandas frame into a backend under a fresh name."""

    def put(con: Any, df: pd.DataFrame) -> Any:
        return register(con, f"t{next(_names)}", df)

    return put


@pytest.fixture(scope="session")
def shop_frame() -> pd.DataFrame:
    """Returns the shared example events as a pandas frame (do not modify it)."""
    return events_frame(SHOP_EVENTS)


@pytest.fixture(scope="session")
def shop(duck: Any, table: Callable[..., Any], shop_frame: pd.DataFrame) -> Any:
    """Returns the shared example events as a DuckDB table."""
    return table(duck, shop_frame)


@pytest.fixture(scope="session")
def rich_frame() -> pd.DataFrame:
    """Returns the rich example events (every column, every event type) as a pandas frame."""
    return rich_events()


@pytest.fixture(scope="session")
def rich_cutoff() -> datetime:
    """Returns the cutoff of the rich example."""
    return RICH_CUTOFF
