"""Importing the offline profile's runtimes without torch.

CTranslate2's package imports its model *converters* at import time, and those import torch when
it is installed (``ctranslate2.specs.model_spec``: ``try: import torch``). Inference never uses
them, yet on a host with the ``diarize`` extra that one import more than doubled an offline
worker's memory. :func:`import_faster_whisper` imports faster-whisper (and CTranslate2 under it)
with torch hidden, so an offline worker whose jobs never ask for speakers never loads torch;
:func:`import_torch` is how the speaker model loads it, waiting for any hidden import to finish.

It also sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the environment sets it) before CTranslate2's
OpenMP runtime (libgomp) loads and reads it. By default libgomp's threads spin for about 3 ms at
every wait, except when it manages more threads than there are cores; a worker loads its models in
a thread that then ends, so its two OpenMP threads on two cores spun, and on a busy host they
burnt the time slices the work needed: a 30 s file took 17 s of CPU in a worker and 2 s in a process
that loaded the model in its main thread (as bare faster-whisper does), 7-9x the wall time.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def import_faster_whisper() -> ModuleType:
    """``faster_whisper``, imported (once) without torch unless torch is loaded already."""
    with _LOCK:
        if "ctranslate2" not in sys.modules:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if "faster_whisper" in sys.modules or "torch" in sys.modules:
            return importlib.import_module("faster_whisper")
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
        try:
            return importlib.import_module("faster_whisper")
        finally:
            if "torch" in sys.modules and sys.modules["torch"] is None:
                del sys.modules["torch"]


def import_torch() -> ModuleType:
    """``torch``, never while :func:`import_faster_whisper` is hiding it in another thread."""
    with _LOCK:
        return importlib.import_module("torch")
