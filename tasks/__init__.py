"""Prefect tasks, one module per research-iteration stage:
literature → dataset → train → evaluate → diagnose."""
