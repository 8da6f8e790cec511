"""Ways to run the flows as Prefect deployments (see also prefect.yaml at the repository root)."""
