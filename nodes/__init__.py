"""Graph nodes, the judges (LLM and heuristic), prompts and rubrics."""
