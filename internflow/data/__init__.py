"""Training data: finding datasets, reading their layouts, checking quality, keeping eval items out."""
