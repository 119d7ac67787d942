"""What a graph run is configured by: storage's settings and the judges', nothing of the API.

The graph resolves its services (storage, judge, question generator) from these; the HTTP
facade, CLI and worker pass the application's `api.settings.Settings`, which extends this
class, and LangGraph Studio (`graph.services.provider`) builds it from the environment on
first use, since the graph cannot reach up into `api/`.
"""

from __future__ import annotations

from nodes.judges.settings import JudgeSettings
from storage.settings import SETTINGS_CONFIG, StorageSettings


class GraphSettings(StorageSettings, JudgeSettings):
    """Storage and judge settings together (the inputs of `graph.services.build_services`)."""

    model_config = SETTINGS_CONFIG
