"""Ways to run the flows: as Prefect deployments (`serve`, and prefect.yaml at the repository root),
and from a terminal, the `internflow` command (`cli`)."""
