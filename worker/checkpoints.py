"""The pipeline's checkpoint seam (:mod:`pipeline.checkpoint`) kept in SQL: one ``job_batches`` row
per finished ASR batch, written only by the attempt that owns the job."""
from __future__ import annotations

import logging
from typing import Mapping

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from core import jobs
from core.db import session_scope
from pipeline.checkpoint import BatchResult
from pipeline.stages import EngineIdentity

log = logging.getLogger("tingxie.worker")


def scope_of(identity: EngineIdentity) -> str:
    """What decides a batch's words beyond what the pipeline sees, read from the loaded engine: its
    profile, the profile's options (model files, beam size) and the kind of device (a GPU's
    arithmetic differs from a CPU's)."""
    device = "cuda" if identity.device.startswith("cuda") else identity.device
    return f"{identity.profile}|{identity.options!r}|{device}"


class SqlCheckpoint:
    def __init__(self, factory: sessionmaker, job_id: str, attempt: int, scope: str):
        self.factory, self.job_id, self.attempt, self.scope = factory, job_id, attempt, scope

    def finished(self) -> Mapping[str, BatchResult]:
        try:
            with session_scope(self.factory) as session:
                rows = jobs.finished_batches(session, self.job_id)
        except SQLAlchemyError:  # resume is an optimisation: without it the attempt starts over
            log.warning("could not read job %s's finished batches; recognising every batch", self.job_id, exc_info=True)
            return {}
        kept = {}
        for key, data in rows.items():
            try:
                kept[key] = BatchResult.from_json(data)
            except (ValueError, KeyError, TypeError):
                log.warning("job %s: a kept batch could not be read; it is recognised again", self.job_id)
        if kept:
            log.info("job %s attempt %d: %d finished batch(es) kept by earlier attempts", self.job_id, self.attempt, len(kept))
        return kept

    def save(self, key: str, result: BatchResult) -> None:
        try:
            with session_scope(self.factory) as session:
                jobs.save_batch(session, self.job_id, self.attempt, key, result.to_json())
        except SQLAlchemyError:
            log.warning("could not keep a finished batch of job %s (the database may be down); going on",
                        self.job_id, exc_info=True)
