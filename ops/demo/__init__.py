"""The demo: the whole pipeline on the local stack and a short live billing story."""
