"""The demo-data simulator: determinism, data contract, ground-truth consistency, persona signal, exact oracle."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from pydantic import ValidationError

from features.schema import (
    CATALOG_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    JOURNEY_STAGES,
    PERSONAS,
)
from pipeline.simulate import (
    KINDS,
    SimulateConfig,
    SimulatedData,
    expand_stages,
    read_simulation,
    simulate,
    stage_on,
    transition_matrix,
    write_simulation,
)

FRAMES = ("events", "customers", "catalog", "personas", "stages", "states", "latent")
DTYPES = {"string": "str", "timestamp": "datetime64[us, UTC]", "float": "float64"}


@pytest.fixture(scope="module")
def sim() -> SimulatedData:
    return simulate(SimulateConfig(customers=1500, days=120, seed=11))


@pytest.fixture(scope="module")
def year() -> SimulatedData:
    """A full year with peak season, for volumes and persona signatures."""
    return simulate(SimulateConfig(customers=2500, days=365, seed=3))


@pytest.fixture(scope="module")
def big() -> SimulatedData:
    """Enough customers that the oracle can be checked against realised outcomes."""
    return simulate(SimulateConfig(customers=6000, days=90, seed=5))


def _local_days(sim: SimulatedData) -> pd.Series:
    local = sim.events["timestamp"].dt.tz_convert(sim.config.timezone).dt.tz_localize(None)
    return local.dt.normalize().astype("datetime64[us]")


def _with_persona(sim: SimulatedData) -> pd.DataFrame:
    return sim.events.merge(sim.personas, on="customer_id", how="left")


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    cfg = SimulateConfig(customers=300, days=60, seed=9)
    a, b = simulate(cfg), simulate(cfg.model_copy())
    for name in FRAMES:
        assert_frame_equal(getattr(a, name), getattr(b, name))
    c = simulate(cfg.model_copy(update={"seed": 10}))
    assert len(c.events) != len(a.events) or not c.events.equals(a.events)
    assert not c.personas.equals(a.personas)


# --------------------------------------------------------------------------- data contract


def test_tables_follow_the_data_contract(sim):
    for frame, spec in ((sim.events, EVENT_COLUMNS), (sim.customers, CUSTOMER_COLUMNS), (sim.catalog, CATALOG_COLUMNS)):
        names = [c.name for c in spec]
        assert list(frame.columns[: len(names)]) == names
        for c in spec:
            assert str(frame[c.name].dtype) == DTYPES[c.dtype], (c.name, frame[c.name].dtype)
    assert {"region", "age_band"} <= set(sim.customers.columns)
    assert set(sim.events["event_type"].unique()) <= set(EVENT_TYPES)
    assert sim.customers["customer_id"].is_unique and len(sim.customers) == sim.config.customers
    assert sim.catalog["product_id"].is_unique
    assert set(sim.events["product_id"].dropna()) <= set(sim.catalog["product_id"])
    assert set(sim.customers["plan"].dropna()) <= {"free", "trial", "freemium", "paid"}


def test_events_are_sorted_utc_and_inside_the_period(sim):
    ev = sim.events
    assert str(ev["timestamp"].dt.tz) == "UTC"
    start = pd.Timestamp(sim.config.start_date, tz="UTC")
    assert ev["timestamp"].min() >= start
    assert ev["timestamp"].max() < start + pd.Timedelta(days=sim.config.days)
    key = ev[["timestamp", "customer_id"]]
    assert key.equals(key.sort_values(["timestamp", "customer_id"], kind="stable"))
    assert ev["customer_id"].notna().all() and ev["session_id"].notna().all()


def test_no_two_events_are_exact_duplicates(sim):
    # the loader drops exact duplicates; the demo data must load with nothing dropped
    assert not sim.events.drop(columns="unit_price").duplicated().any()


def test_local_days_follow_the_configured_timezone():
    s = simulate(SimulateConfig(customers=400, days=60, seed=2, timezone="America/New_York", start_date="2025-02-20"))
    days = _local_days(s)
    assert days.min() >= pd.Timestamp("2025-02-20") and days.max() < pd.Timestamp("2025-02-20") + pd.Timedelta(days=60)
    lapsed = expand_stages(s.stages).query("stage == 'lapsed'")
    seen = pd.DataFrame({"customer_id": s.events["customer_id"], "date": days}).drop_duplicates()
    assert seen.merge(lapsed, on=["customer_id", "date"]).empty


# --------------------------------------------------------------------------- ground truth


def test_persona_shares_match_the_configuration():
    shares = {"price_conscious": 3.0, "smart": 1.0, "risk_averse": 1.0, "need_proof": 1.0, "get_it_later": 2.0}
    cfg = SimulateConfig(customers=8000, days=30, seed=4, ghost_share=0.1, mixed_share=0.2, persona_shares=shares)
    got = simulate(cfg).personas["persona"].value_counts(normalize=True)
    expected = {"ghost": 0.1, "mixed": 0.2, "persuadable": 0.0}
    expected.update({p: 0.7 * w / sum(shares.values()) for p, w in shares.items()})
    for label, p in expected.items():
        se = np.sqrt(max(p * (1 - p), 1e-9) / cfg.customers)
        assert abs(got.get(label, 0.0) - p) < 4 * se + 1e-12, (label, got.get(label), p)


def test_mixed_customers_have_no_dominant_persona(sim):
    lat = sim.latent.set_index("customer_id")
    w = lat[[f"w_{p}" for p in PERSONAS]]
    mixed = lat["persona"] == "mixed"
    assert mixed.any()
    assert (w[mixed].max(axis=1) <= 0.5).all()
    pure = lat["persona"].isin(PERSONAS)
    assert (w[pure].max(axis=1) == 1.0).all()


def test_every_stage_occurs_and_stage_shares_are_plausible(sim):
    days = expand_stages(sim.stages)
    share = days["stage"].value_counts(normalize=True)
    assert set(share.index) == set(JOURNEY_STAGES)
    assert 0.05 < share["lapsed"] < 0.8
    assert share["purchase"] < 0.15  # buying is a short phase


def test_stage_runs_tile_each_customer_from_acquisition_to_the_end(sim):
    st = sim.stages.sort_values(["customer_id", "start"])
    same = st["customer_id"].eq(st["customer_id"].shift())
    assert (st["start"][same] == st["end"].shift()[same]).all()  # contiguous
    assert (st["stage"][same] != st["stage"].shift()[same]).all()  # maximal runs
    assert (st["end"] > st["start"]).all()
    end = pd.Timestamp(sim.config.start_date) + pd.Timedelta(days=sim.config.days)
    assert (st.groupby("customer_id")["end"].max() == end).all()
    first = st.groupby("customer_id")["start"].min()
    acquired = sim.latent.set_index("customer_id")["acquired"]
    assert (first == acquired.loc[first.index]).all()
    # the joint-state runs cover exactly the same days
    assert (sim.states["end"] - sim.states["start"]).sum() == (st["end"] - st["start"]).sum()


def test_stage_on_agrees_with_the_expanded_stages(sim):
    day = pd.Timestamp(sim.config.start_date) + pd.Timedelta(days=50)
    got = stage_on(sim, day.date())
    days = expand_stages(sim.stages)
    want = days[days["date"] == day].set_index("customer_id")["stage"]
    assert got.sort_index().equals(want.sort_index().rename("stage"))


def test_lapsed_and_unacquired_customers_emit_nothing(sim):
    stage_days = expand_stages(sim.stages)
    seen = pd.DataFrame({"customer_id": sim.events["customer_id"], "date": _local_days(sim)}).drop_duplicates()
    joined = seen.merge(stage_days, on=["customer_id", "date"], how="left")
    assert joined["stage"].notna().all()  # never an event before acquisition
    assert (joined["stage"] != "lapsed").all()
    assert (stage_days["stage"] == "lapsed").any()


def test_purchases_carry_revenue_quantity_and_an_order(sim):
    buys = sim.events[sim.events["event_type"] == "purchase"]
    assert len(buys) > 100
    assert (buys["revenue"] > 0).all() and (buys["quantity"] > 0).all()
    assert buys["order_id"].notna().all() and buys["product_id"].notna().all()
    assert (buys.groupby("order_id")["customer_id"].nunique() == 1).all()
    assert np.allclose(buys["revenue"] + buys["discount"], (buys["unit_price"] * buys["quantity"]).round(2), atol=0.011)
    others = sim.events[~sim.events["event_type"].isin(["purchase", "return"])]
    assert others["order_id"].isna().all() and others["revenue"].isna().all()


def test_returns_are_of_orders_the_same_customer_bought_earlier(sim):
    ev = sim.events
    buys = ev[ev["event_type"] == "purchase"].groupby("order_id").agg(buyer=("customer_id", "first"),
                                                                         bought=("timestamp", "min"))
    rets = ev[ev["event_type"] == "return"]
    assert len(rets) > 5
    assert (rets["revenue"] > 0).all() and (rets["quantity"] > 0).all()
    j = rets.join(buys, on="order_id")
    assert j["buyer"].notna().all()
    assert (j["buyer"] == j["customer_id"]).all()
    assert (j["bought"] < j["timestamp"]).all()
    assert not rets["order_id"].duplicated().any()


def test_ghosts_never_buy_nor_sign_up_and_browse_little(sim):
    ev = _with_persona(sim)
    ghost = ev[ev["persona"] == "ghost"]
    assert len(ghost) > 0
    assert set(ghost["event_type"].unique()) <= {"page_view", "product_view", "search", "ad_click"}
    ghost_ids = sim.personas.loc[sim.personas["persona"] == "ghost", "customer_id"]
    assert sim.customers.set_index("customer_id").loc[ghost_ids, "signup_at"].isna().all()
    per_ghost = ghost.groupby("customer_id").size().mean()
    per_other = ev[ev["persona"] != "ghost"].groupby("customer_id").size().mean()
    assert per_ghost < per_other / 3


def test_signup_times_match_signup_events(sim):
    ev = sim.events
    signups = ev[ev["event_type"] == "signup"]
    assert signups["customer_id"].is_unique
    at = sim.customers.set_index("customer_id")["signup_at"]
    assert (at.loc[signups["customer_id"]].to_numpy() == signups["timestamp"].to_numpy()).all()
    # customers signed up before the period have no signup event and an earlier signup time
    before = at[at < pd.Timestamp(sim.config.start_date, tz="UTC")]
    assert len(before) > 0 and not before.index.isin(signups["customer_id"]).any()


def test_ratings_are_stars_for_reviews_and_scores_for_surveys(sim):
    ev = sim.events
    stars = ev.loc[ev["event_type"] == "review", "rating"]
    score = ev.loc[ev["event_type"] == "survey", "rating"]
    assert len(stars) and len(score)
    assert stars.between(1, 5).all() and (stars == stars.round()).all()
    assert score.between(0, 10).all() and (score == score.round()).all()
    assert ev.loc[~ev["event_type"].isin(["review", "survey"]), "rating"].isna().all()


def test_dissatisfied_days_bring_complaints_and_low_ratings(year):
    states = year.states.assign(days=(year.states["end"] - year.states["start"]).dt.days)
    ev = year.events.assign(date=_local_days(year))
    voice = ev[ev["event_type"].isin(["complaint", "support_ticket", "review"])]
    day_state = expand_stages(states.assign(stage=states["dissatisfied"].map({True: "d", False: "s"})))
    v = voice.merge(day_state, on=["customer_id", "date"])
    stage_days = expand_stages(year.stages)
    active_days = day_state.merge(stage_days[stage_days["stage"] != "lapsed"], on=["customer_id", "date"])
    exposure = active_days["stage_x"].value_counts()
    complaints = v[v["event_type"] == "complaint"]["stage"].value_counts()
    assert complaints["d"] / exposure["d"] > 5 * complaints["s"] / exposure["s"]
    reviews = v[v["event_type"] == "review"]
    mean_stars = reviews.groupby("stage")["rating"].mean()
    assert mean_stars["d"] < 3 < mean_stars["s"]


def test_event_volume_is_sensible(year):
    per_active = year.events.groupby("customer_id").size()
    assert 50 <= per_active.mean() <= 200
    assert per_active.index.isin(year.customers["customer_id"]).all()


def test_holiday_peaks_lift_activity(year):
    ev = year.events.assign(date=_local_days(year))
    daily = ev.groupby("date")["session_id"].nunique()
    active = expand_stages(year.stages).query("stage != 'lapsed'").groupby("date").size()
    rate = (daily / active).fillna(0.0)
    peak = rate[(rate.index >= "2025-12-10") & (rate.index <= "2025-12-24")].mean()
    before = rate[(rate.index >= "2025-10-01") & (rate.index <= "2025-11-15")].mean()
    assert peak > 1.3 * before


# --------------------------------------------------------------------------- persona signal


@pytest.fixture(scope="module")
def signatures(year) -> pd.DataFrame:
    """Per persona: the behaviours each persona is meant to lead (shares, per-order and per-session rates)."""
    ev = _with_persona(year)
    who, kind, topic = ev["persona"], ev["event_type"], ev["topic"]
    share = pd.DataFrame({
        "coupon": kind.eq("coupon_use"),
        "promo": topic.isin(["promo", "sale"]),
        "specs": topic.isin(["specs", "comparison"]),
        "policy": topic.isin(["returns_policy", "warranty", "faq", "shipping"]),
        "proof": topic.isin(["reviews", "ratings", "bestsellers"]),
        "reviews": kind.eq("review"),
        "wishlist": kind.eq("wishlist_add"),
        "recs": kind.eq("recommendation_click"),
    }).groupby(who).mean()
    buy = kind.eq("purchase")
    orders = ev.loc[buy].groupby("persona")["order_id"].nunique()

    def count(mask: pd.Series) -> pd.Series:
        return mask.groupby(who).sum()

    sessions = pd.DataFrame({"persona": who, "session": ev["session_id"], "cart": kind.eq("add_to_cart"), "buy": buy,
                             "views": kind.eq("product_view")})
    sessions = sessions.groupby(["persona", "session"])[["cart", "buy", "views"]].agg(
        {"cart": "any", "buy": "any", "views": "sum"})
    share["views_before_buying"] = sessions[sessions["buy"]].groupby("persona")["views"].mean()
    share["lines_per_order"] = count(buy) / orders
    share["returns_per_order"] = count(kind.eq("return")) / orders
    share["abandonment"] = 1.0 - sessions[sessions["cart"]].groupby("persona")["buy"].mean()
    share["events_per_session"] = who.value_counts() / ev.groupby("persona")["session_id"].nunique()
    share["discounted"] = ev.loc[buy, "discount"].gt(0).groupby(who[buy]).mean()
    return share.drop(index="ghost")


@pytest.mark.parametrize("persona, signature", [
    ("price_conscious", "coupon"), ("price_conscious", "promo"), ("price_conscious", "discounted"),
    ("smart", "specs"), ("smart", "views_before_buying"), ("smart", "events_per_session"),
    ("risk_averse", "policy"), ("need_proof", "proof"), ("need_proof", "reviews"),
    ("get_it_later", "wishlist"), ("get_it_later", "abandonment"),
    ("persuadable", "recs"), ("persuadable", "lines_per_order"),
])
def test_each_persona_leads_its_signature(signatures, persona, signature):
    col = signatures[signature]
    assert col.idxmax() == persona, col.sort_values(ascending=False).to_dict()
    assert col[persona] > 1.2 * col.drop(index=[persona, "mixed"]).max()


def test_risk_averse_return_least(signatures):
    col = signatures["returns_per_order"]
    assert col.idxmin() == "risk_averse", col.to_dict()


def test_get_it_later_waits_longest_from_first_view_to_purchase(year):
    ev = _with_persona(year)
    views = ev[ev["event_type"] == "product_view"].groupby(["customer_id", "product_id"])["timestamp"].min()
    buys = ev[ev["event_type"] == "purchase"].groupby(["customer_id", "product_id", "persona"])["timestamp"].min()
    buys = buys.reset_index("persona")
    j = buys.join(views.rename("first_view"), how="inner")
    wait = (j["timestamp"] - j["first_view"]).dt.total_seconds() / 86400
    by = wait.groupby(j["persona"]).agg(["mean", "median"])
    assert by["mean"].idxmax() == "get_it_later", by.to_dict()
    assert by.loc["get_it_later", "median"] > 7  # typically bought weeks after the first look
    assert by["median"].drop(index="get_it_later").max() < 1  # the others mostly buy what they just found


# --------------------------------------------------------------------------- oracle


def _realised(sim: SimulatedData, cutoff: pd.Timestamp, horizon: int, ids: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    lo = cutoff.tz_localize(sim.config.timezone)
    ev = sim.events
    w = ev[(ev["timestamp"] >= lo) & (ev["timestamp"] < lo + pd.Timedelta(days=horizon))]
    bought = ids.isin(w.loc[w["event_type"] == "purchase", "customer_id"].unique())
    active = ids.isin(w["customer_id"].unique())
    return bought, active


@pytest.mark.parametrize("column", ["p_purchase", "p_active"])
def test_oracle_is_calibrated_against_realised_outcomes(big, column):
    cutoff, horizon = pd.Timestamp(big.config.start_date) + pd.Timedelta(days=45), 30
    prop = big.true_propensities(cutoff.date(), horizon)
    bought, active = _realised(big, cutoff, horizon, prop.index)
    real = bought if column == "p_purchase" else active
    p = prop[column].to_numpy()
    # given the state at the cutoff customers are independent Bernoulli(p): a z-score of the total
    z = (real.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
    assert abs(z) < 4, z
    decile = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False).to_numpy()
    rate = pd.Series(real.astype(float)).groupby(decile).mean()
    mean_p = pd.Series(p).groupby(decile).mean()
    assert rate.corr(mean_p, method="spearman") > 0.9
    assert rate.iloc[-1] > rate.iloc[0] + 0.3
    assert (np.abs(rate - mean_p) < 0.08).all(), pd.DataFrame({"p": mean_p, "rate": rate})


def test_oracle_per_stage_matches_realised_rates(big):
    cutoff = pd.Timestamp(big.config.start_date) + pd.Timedelta(days=45)
    prop = big.true_propensities(cutoff, 30)
    bought, _ = _realised(big, cutoff, 30, prop.index)
    by = prop.assign(real=bought).groupby("stage_at_cutoff")
    for stage, g in by:
        if len(g) < 100:
            continue
        p = g["p_purchase"].to_numpy()
        z = (g["real"].sum() - p.sum()) / np.sqrt(max((p * (1 - p)).sum(), 1e-9))
        assert abs(z) < 4, (stage, z)
    assert by["p_purchase"].mean()["lapsed"] < by["p_purchase"].mean()["purchase"]


def test_oracle_population_and_basic_laws(sim):
    cutoff = pd.Timestamp(sim.config.start_date) + pd.Timedelta(days=40)
    short, long = sim.true_propensities(cutoff.date(), 7), sim.true_propensities(cutoff.date(), 30)
    acquired = sim.latent.set_index("customer_id")["acquired"]
    assert set(long.index) == set(acquired[acquired < cutoff].index)  # not yet acquired: left out
    assert list(long.columns[:2]) == ["p_purchase", "p_active"]
    assert ((long["p_purchase"] >= 0) & (long["p_purchase"] <= long["p_active"] + 1e-12)).all()
    assert (long["p_active"] <= 1).all()
    assert (long["p_purchase"] >= short["p_purchase"] - 1e-12).all()  # a longer window can only add
    assert (long.loc[long["persona"] == "ghost", "p_purchase"] == 0).all()
    assert set(long["persona"]) <= set(KINDS)
    assert long["stage_at_cutoff"].equals(stage_on(sim, cutoff - pd.Timedelta(days=1)).loc[long.index].rename("stage_at_cutoff"))


def test_one_day_oracle_is_the_transition_step_of_the_chain(sim):
    # p_active over one day = 1 - sum_s T[x, s] exp(-rate(s)): checked for lapsed customers, whose
    # only way to be active tomorrow is a win-back move, so p_active <= 1 - T[lapsed, lapsed]
    cutoff = pd.Timestamp(sim.config.start_date) + pd.Timedelta(days=60)
    prop = sim.true_propensities(cutoff, 1)
    lapsed = prop[prop["stage_at_cutoff"] == "lapsed"]
    assert len(lapsed) > 0
    for kind, g in lapsed.groupby("persona"):
        t = transition_matrix(kind)
        for dis, gg in g.groupby("dissatisfied_at_cutoff"):
            leave = 1.0 - t.loc[("lapsed", dis), ("lapsed", False)] - t.loc[("lapsed", dis), ("lapsed", True)]
            assert (gg["p_active"] <= leave + 1e-12).all()
            assert (gg["p_active"] > 0).all() or leave == 0


def test_oracle_rejects_cutoffs_outside_the_period_and_bad_horizons(sim):
    with pytest.raises(ValueError, match="outside the simulated period"):
        sim.true_propensities(sim.config.start_date, 30)
    with pytest.raises(ValueError, match="outside the simulated period"):
        sim.true_propensities(sim.config.start_date + dt.timedelta(days=sim.config.days + 1), 30)
    with pytest.raises(ValueError, match="midnight"):
        sim.true_propensities(pd.Timestamp(sim.config.start_date) + pd.Timedelta(hours=36), 30)
    with pytest.raises(ValueError, match="horizon_days"):
        sim.true_propensities(sim.config.start_date + dt.timedelta(days=10), 0)
    # a tz-aware UTC midnight is the same cutoff as the date
    a = sim.true_propensities(pd.Timestamp("2025-02-01", tz="UTC"), 14)
    assert_frame_equal(a, sim.true_propensities(dt.date(2025, 2, 1), 14))


def test_transition_matrices_are_stochastic_and_lapsed_can_be_won_back():
    for kind in KINDS:
        t = transition_matrix(kind)
        assert np.allclose(t.sum(axis=1), 1.0) and (t.to_numpy() >= 0).all()
    t = transition_matrix("smart")
    assert t.loc[("consideration", False), ("education", False)] > 0  # falls back
    assert t.loc[("awareness", False), ("purchase", False)] > 0  # skips ahead
    assert t.loc[("lapsed", False), ("retention", False)] > 0  # won back
    lapse = t.xs("lapsed", axis=1, level="stage").sum(axis=1)
    assert lapse[("retention", True)] > 2 * lapse[("retention", False)]  # dissatisfied lapse more
    g = transition_matrix("ghost").loc[[("awareness", False), ("education", False)]]  # where ghosts live
    assert g.loc[:, ["consideration", "purchase", "adoption", "retention", "advocacy"]].to_numpy().sum() == 0
    assert g.loc[:, (slice(None), True)].to_numpy().sum() == 0  # never dissatisfied


# --------------------------------------------------------------------------- files


def test_write_read_round_trip_reproduces_frames_and_oracle(sim, tmp_path):
    paths = write_simulation(sim, tmp_path / "out")
    for name in ("events", "customers", "catalog", "truth_personas", "truth_stages", "truth_state", "simulation"):
        assert paths[name].is_file(), name
    assert not list((tmp_path / "out").glob("*.tmp")) and not list((tmp_path / "out").glob(".*"))
    back = read_simulation(tmp_path / "out")
    assert back.config == sim.config
    for name in FRAMES:
        assert_frame_equal(getattr(back, name), getattr(sim, name))
    cutoff = dt.date(2025, 3, 1)
    assert_frame_equal(back.true_propensities(cutoff, 21), sim.true_propensities(cutoff, 21))


def test_read_simulation_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="simulation.json"):
        read_simulation(tmp_path)


# --------------------------------------------------------------------------- config


def test_unknown_persona_key_is_rejected_with_the_allowed_ones():
    with pytest.raises(ValidationError) as err:
        SimulateConfig(persona_shares={"bargain_hunter": 1.0, "smart": 1.0})
    msg = str(err.value)
    assert "bargain_hunter" in msg and "price_conscious" in msg and "persuadable" in msg


@pytest.mark.parametrize("update, fragment", [
    ({"persona_shares": {"smart": -1.0}}, "persona_shares['smart']"),
    ({"persona_shares": {"smart": 0.0}}, "at least one persona"),
    ({"ghost_share": 0.6, "mixed_share": 0.5}, "exceeds 1"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"holidays": [("11-31", "12-02")]}, "11-31"),
    ({"holidays": [("2025-12-24", "2025-12-01")]}, "ends before it starts"),
    ({"holidays": [("12-01", "2025-12-24")]}, "mixes"),
    ({"days": 10}, "days"),
    ({"customers": 0}, "customers"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_config_values_name_the_problem(update, fragment):
    with pytest.raises(ValidationError) as err:
        SimulateConfig(**update)
    assert fragment in str(err.value)


def test_config_reads_yaml_style_values():
    cfg = SimulateConfig.model_validate({
        "start_date": "2025-03-01", "holidays": [[dt.date(2025, 7, 1), dt.date(2025, 7, 7)], ["12-26", "01-05"]],
        "persona_shares": {"smart": 2},
    })
    assert cfg.holidays == [("2025-07-01", "2025-07-07"), ("12-26", "01-05")]
    assert SimulateConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    for name, f in SimulateConfig.model_fields.items():
        assert f.description, name


def test_holiday_window_over_new_year_lifts_activity():
    quiet = SimulateConfig(customers=1500, days=30, seed=8, start_date="2025-12-20", holidays=[])
    busy = quiet.model_copy(update={"holidays": [("12-26", "01-05")]})
    a, b = simulate(quiet), simulate(busy)
    opens, closes = pd.Timestamp("2025-12-26", tz="UTC"), pd.Timestamp("2026-01-06", tz="UTC")

    def window(s: SimulatedData) -> pd.DataFrame:
        return s.events[s.events["timestamp"].between(opens, closes, inclusive="left")]

    def before(s: SimulatedData) -> pd.DataFrame:
        return s.events[s.events["timestamp"] < opens]

    assert_frame_equal(before(a), before(b))  # same draws until the window opens
    assert window(b)["session_id"].nunique() > 1.2 * window(a)["session_id"].nunique()
