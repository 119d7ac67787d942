"""HTTP (FastAPI) and command-line facades over the graph and the storage services."""
