"""Models built on the feature frame: personas, propensity, journey stage, rule segments, explanations."""
