"""Prefect flows: they only compose the stages in `tasks/`."""
