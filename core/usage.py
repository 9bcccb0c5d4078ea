"""Usage: audio seconds and jobs per tenant and profile over time, and each tenant's monthly quota.

A job counts from when it was accepted (``created_at``, UTC): ``jobs`` is every job accepted,
``audio_seconds`` the audio of those that are done. The quota (``TINGXIE_TENANT_QUOTA_HOURS``)
counts the audio of the month's jobs that are done, queued or running — failed and canceled jobs
are not charged — and a submission that would go past it is refused with 429 ``quota_exceeded``,
naming the day the quota resets (the first of next month, UTC).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core import jobs
from core.errors import TingxieError
from core.models import Job
from core.settings import Settings

GROUPS = ("day", "month", "total")
_CHARGED = (jobs.DONE, jobs.QUEUED, jobs.RUNNING)


class QuotaExceededError(TingxieError):
    code = "quota_exceeded"


@dataclass(frozen=True)
class UsageRow:
    period: str  # "2026-12-07" (day), "2026-12" (month), or "total"
    tenant: str
    profile: str
    jobs: int
    done_jobs: int
    audio_seconds: float

    def to_json(self) -> dict:
        return {"period": self.period, "tenant": self.tenant, "profile": self.profile, "jobs": self.jobs,
                "done_jobs": self.done_jobs, "audio_seconds": round(self.audio_seconds, 3)}


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) that ``now`` is in: its first instant and the next month's."""
    now = now.astimezone(timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, following


def _period(session: Session, group: str):
    if group == "total":
        return None
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Job.created_at), "YYYY-MM-DD" if group == "day" else "YYYY-MM")
    return func.strftime("%Y-%m-%d" if group == "day" else "%Y-%m", Job.created_at)


def usage(session: Session, *, start: datetime, end: datetime, group: str = "day",
          tenant: str | None = None) -> list[UsageRow]:
    """Jobs accepted in [start, end), by period, tenant and profile; every tenant when ``tenant`` is None."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}")
    period = _period(session, group)
    done_ms = case((Job.status == jobs.DONE, func.coalesce(Job.duration_ms, 0)), else_=0)
    keys = [Job.tenant, Job.profile] if period is None else [period.label("period"), Job.tenant, Job.profile]
    query = (select(*keys, func.count(Job.id), func.sum(case((Job.status == jobs.DONE, 1), else_=0)), func.sum(done_ms))
             .where(Job.created_at >= start, Job.created_at < end).group_by(*keys).order_by(*keys))
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    rows = []
    for row in session.execute(query):
        *head, count, done, ms = row
        label = "total" if period is None else head.pop(0)
        rows.append(UsageRow(label, head[0], head[1], int(count), int(done or 0), float(ms or 0) / 1000))
    return rows


def quota_hours(settings: Settings, tenant: str) -> float | None:
    quotas = settings.tenant_quota_hours
    return quotas.get(tenant, quotas.get("*"))


def charged_seconds(session: Session, tenant: str, now: datetime) -> float:
    """The audio this month (UTC) of the tenant's jobs that are done, queued or running."""
    start, _ = month_bounds(now)
    ms = session.execute(select(func.coalesce(func.sum(Job.duration_ms), 0)).where(
        Job.tenant == tenant, Job.created_at >= start, Job.status.in_(_CHARGED))).scalar_one()
    return float(ms) / 1000  # PostgreSQL sums to a Decimal


def check_quota(session: Session, settings: Settings, tenant: str, duration_ms: int | None, now: datetime) -> None:
    """Refuse a job of ``duration_ms`` that would take the tenant past its month's quota."""
    hours = quota_hours(settings, tenant)
    if hours is None:
        return
    used_s = charged_seconds(session, tenant, now)
    if used_s + (duration_ms or 0) / 1000 > hours * 3600:
        _, resets = month_bounds(now)
        raise QuotaExceededError(
            f"tenant {tenant} has used {used_s / 3600:.2f} of its {hours:g} audio hours this month and this file "
            f"is {(duration_ms or 0) / 60000:.1f} min; the quota resets on {resets:%Y-%m-%d} (UTC) "
            "(TINGXIE_TENANT_QUOTA_HOURS)")
