"""Feature settings (params.yaml: features): shared windows, which families run, and one section per family.

Each family's section model lives in the family's module and is passed to that family's builder
alone; the registry decides which names are valid in `enabled`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.benefits import BenefitsConfig
from features.engagement import EngagementConfig
from features.journey import JourneyConfig
from features.timing import TimingConfig
from features.usage import DEFAULT_WINDOWS_DAYS, UsageConfig, check_windows
from features.value import ValueConfig


def _registered_names() -> list[str]:
    # Imported late: the registry imports every family module, and family modules may import this one.
    from features.registry import family_names

    return family_names()


class FeaturesConfig(BaseModel):
    """What the feature build makes: windows, enabled families and each family's own settings."""

    model_config = ConfigDict(extra="forbid")

    windows_days: list[int] = Field(
        default_factory=lambda: list(DEFAULT_WINDOWS_DAYS),
        description="Windows in days before the cutoff for per-window features (counts, rates, revenue); "
        "a family section's own windows_days overrides it for that family.",
    )
    enabled: list[str] = Field(
        default_factory=_registered_names,
        description="Feature families to build, by name; default: every registered family. Families whose "
        "inputs are absent from the data are skipped with a reason either way.",
    )
    usage: UsageConfig = Field(default_factory=UsageConfig, description="Usage: quantity, frequency, trend and quality.")
    timing: TimingConfig = Field(
        default_factory=TimingConfig, description="Timing: recency, purchase rhythm, time-of-day/week/holiday habits."
    )
    value: ValueConfig = Field(default_factory=ValueConfig, description="Value: RFM scores, order and customer value.")
    benefits: BenefitsConfig = Field(
        default_factory=BenefitsConfig,
        description="Benefits sought: topic and category mix, discount and coupon use, cart abandonment.",
    )
    journey: JourneyConfig = Field(
        default_factory=JourneyConfig,
        description="Journey: time-decayed event counts, funnel depth, stage-group and channel mix.",
    )
    engagement: EngagementConfig = Field(
        default_factory=EngagementConfig,
        description="Engagement: email response, reviews, referrals, support, returns, NPS or CSAT.",
    )

    @field_validator("windows_days")
    @classmethod
    def _valid_windows(cls, value: list[int]) -> list[int]:
        return check_windows(value, "features.windows_days")

    @field_validator("enabled")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        allowed = _registered_names()
        unknown = [name for name in value if name not in allowed]
        if unknown:
            raise ValueError(f"features.enabled has unknown family name(s) {unknown}; allowed: {allowed}")
        return list(dict.fromkeys(value))

    def section(self, family: str) -> BaseModel:
        """Returns the settings section of a family, the object its builder and catalog receive (and only that)."""
        section = getattr(self, family, None)
        if not isinstance(section, BaseModel):
            raise KeyError(
                f"features has no section {family!r}; add `{family}: <Name>Config` to FeaturesConfig in "
                "features/config.py"
            )
        # A section whose windows_days is left empty takes the shared windows. Resolved here rather
        # than written into the section, so params.yaml keeps `null` and editing features.windows_days
        # still reaches every family that does not set its own.
        if "windows_days" in type(section).model_fields and section.windows_days is None:
            section = section.model_copy(update={"windows_days": list(self.windows_days)})
        return section
