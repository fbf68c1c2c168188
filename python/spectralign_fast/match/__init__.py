"""Matching: the SWiFT-IR ``Matcher``, neighbour pairs of a grid, neighbouring levels of a stack."""
from __future__ import annotations

from .matcher import BatchRefinementStats, Matcher, RefinementStats
from .pairs import MatchSettings, PairMatches

__all__ = ["BatchRefinementStats", "MatchSettings", "Matcher", "PairMatches", "RefinementStats"]
