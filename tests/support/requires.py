"""Skip a test module when an optional package is not installed, without importing the package:
collecting a module that imported torch and funasr cost about 12 s of CPU in every pytest process,
whether or not it then ran one of its tests (the tests import them when they run)."""
from __future__ import annotations

import importlib.util

import pytest


def require_installed(name: str, reason: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(reason, allow_module_level=True)


def require_funasr() -> None:
    """The funasr profile's packages: torch and funasr."""
    require_installed("torch", reason="the funasr profile needs torch (pip install torch==2.13.0)")
    require_installed("funasr", reason="the funasr profile needs funasr (pip install 'tingxie[funasr]')")
