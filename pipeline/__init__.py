"""Predictive behavioural segmentation pipeline: CLI, config, data loading, training, scoring, reports."""

__version__ = "0.1.0"
