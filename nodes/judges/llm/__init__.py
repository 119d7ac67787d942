"""The LLM judge: client (structured calls), prompts and the judge itself."""
