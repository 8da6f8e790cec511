"""Literature: arXiv and Hugging Face Papers search, Semantic Scholar's citation graph, the
methodology sections of papers' HTML versions, and ranking them against a campaign's goal.
Every request goes through `internflow.http`."""
