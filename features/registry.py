"""The explicit list of feature families, in output-column order; nothing is discovered by scanning."""

from __future__ import annotations

from features import benefits, engagement, journey, timing, usage, value
from features.base import FeatureFamily

# Order matters: the feature frame's columns follow it. A new family: import its module above, add
# its FAMILY here, and its <Name>Config section to FeaturesConfig (features/config.py).
_ORDERED: tuple[FeatureFamily, ...] = (
    usage.FAMILY,
    timing.FAMILY,
    value.FAMILY,
    benefits.FAMILY,
    journey.FAMILY,
    engagement.FAMILY,
)

FAMILIES: dict[str, FeatureFamily] = {family.name: family for family in _ORDERED}

if len(FAMILIES) != len(_ORDERED):  # two families with one name would silently shadow each other
    raise RuntimeError(f"feature family names repeat in features/registry.py: {[f.name for f in _ORDERED]}")


def family_names() -> list[str]:
    """Returns the registered family names in output order."""
    return list(FAMILIES)


def get_family(name: str) -> FeatureFamily:
    """Returns the registered family of that name; the error lists the registered names."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown feature family {name!r}; registered families: {family_names()}") from None
