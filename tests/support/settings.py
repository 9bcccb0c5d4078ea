"""The repository's root and the settings a test starts from (tests construct settings directly,
on free ports and a temporary data directory)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]

# For a test whose subject does not depend on the backend (HTTP parsing, input validation): it
# takes ``any_settings`` (through ``client``...) on the embedded default only, not on PostgreSQL +
# Redis as well. Where stored values, SQL or events matter, a test runs on both.
embedded_only = pytest.mark.parametrize("any_settings", ["embedded"], indirect=True)


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """The embedded default under ``tmp_path/data``, on free ports, with a short job lease."""
    from tests.support.service import free_port

    base = dict(
        data_dir=tmp_path / "data",
        port=free_port(),
        gateway_port=free_port(),
        job_lease_s=6.0,
        preload_models=True,
    )
    base.update(overrides)
    return Settings(**base)
