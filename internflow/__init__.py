"""internflow: an autonomous LLM post-training researcher built from Prefect flows."""

__version__ = "0.1.0"
