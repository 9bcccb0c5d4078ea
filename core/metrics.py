"""Prometheus metrics that cross processes and hosts: a worker's samples travel in its ``workers``
row (core.workers) and the web tier's ``/metrics`` shows them, so one scrape target sees the
whole fleet and workers on GPU hosts need no port of their own.

prometheus_client is imported inside the functions: in multiprocess mode it reads
``PROMETHEUS_MULTIPROC_DIR`` when first imported, which ``tingxie web`` and ``tingxie worker`` set
before anything imports it (:func:`use_multiprocess_dir`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(path: Path) -> None:
    """Make this process and its children share metrics through files in ``path`` (emptied first:
    what a previous run left would count again). Call before prometheus_client is imported."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)


def registry():
    """This process's metrics to expose: every process's, in multiprocess mode; else its own."""
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported: after use_multiprocess_dir.
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected, path=path)
    return collected


def to_wire(families: Iterable) -> list:
    """Metric families as JSON: ``[[name, type, help, [[sample name, labels, value], ...]], ...]``."""
    return [[f.name, f.type, f.documentation, [[s.name, dict(s.labels), s.value] for s in f.samples]]
            for f in families]


def from_wire(sources: Iterable[tuple[list, dict[str, str]]]) -> list:
    """Families from several processes' wire lists, one family per name (the exposition format
    allows a name once), each sample labelled with its source's labels (the worker it came from)."""
    from prometheus_client.metrics_core import Metric  # as in registry(): not before use_multiprocess_dir

    merged: dict[str, Metric] = {}
    for wire, extra_labels in sources:
        for name, kind, documentation, samples in wire or ():
            family = merged.get(name)
            if family is None:
                family = merged[name] = Metric(name, documentation, kind)
            for sample_name, labels, value in samples:
                family.add_sample(sample_name, {**labels, **extra_labels}, value)
    return list(merged.values())
