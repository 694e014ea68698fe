"""Estimators: functions from a frozen analysis state to results (see the registry)."""
