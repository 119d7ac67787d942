"""The offline heuristic judge, split by job."""
