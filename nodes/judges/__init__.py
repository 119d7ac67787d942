"""The judging domain: the Judge protocol, guards, injection detection, rubrics, and the
heuristic and LLM judges."""
