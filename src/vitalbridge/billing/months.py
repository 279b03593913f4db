"""Open and closed months (SPEC §13): closing freezes the report; later changes are amendments.

Closing stores the month's report as version 1. ``recompute`` (run by
``vitalbridge billing recompute``; a periodic job once the work engine exists) computes every
closed month again and, where a patient's rows differ from the latest version — a late reading,
a corrected time entry — stores a new version of kind ``amendment`` naming those patients.
The closed version itself is never rewritten.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.billing.models import ReportKind, ReportVersion
from vitalbridge.billing.report import Policy, compute_report, month_bounds, rows_hash
from vitalbridge.billing.rules import NoRules
from vitalbridge.errors import Conflict, FieldError, NotFound, ValidationFailed
from vitalbridge.settings import Settings
from vitalbridge.tenancy.models import Practice

# The last local day of a month ends at 12:00 UTC of the next month's first day in UTC-12, the
# westernmost zone: only then is the month over for every patient.
_LAST_ZONE_OFFSET = timedelta(hours=12)


def policy_of(settings: Settings) -> Policy:
    return Policy(
        setup_min_days=settings.billing_setup_min_days,
        messages_are_interactive=settings.billing_messages_are_interactive,
    )


def month_over_at(month: str) -> datetime:
    _first, last = month_bounds(month)
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC) + _LAST_ZONE_OFFSET


def _compute(session: Session, practice: Practice, month: str, now: datetime, policy: Policy) -> dict[str, Any]:
    try:
        return compute_report(session, practice, month, as_of=now, policy=policy)
    except NoRules:
        raise ValidationFailed(
            "no billing rules cover this month",
            [FieldError(("path", "month"), "the hub has rules from CY2025 on", "no_rules")],
        ) from None


def versions(session: Session, practice_id: str, month: str) -> list[ReportVersion]:
    return list(
        session.scalars(
            select(ReportVersion)
            .where(ReportVersion.practice_id == practice_id, ReportVersion.month == month)
            .order_by(ReportVersion.version)
        )
    )


@dataclass
class MonthView:
    practice_id: str
    month: str
    status: str  # "open" or "closed"
    report: dict[str, Any]
    versions: list[ReportVersion] = field(default_factory=list)
    amendments: list[dict[str, Any]] = field(default_factory=list)


def view_month(
    session: Session, practice: Practice, month: str, *, now: datetime, policy: Policy, version: int | None = None
) -> MonthView:
    """A closed month shows its frozen version 1 (or the stored ``version`` asked for) and each
    amendment's changed rows; an open month is computed now."""
    stored = versions(session, practice.id, month)
    if version is not None and not any(v.version == version for v in stored):
        raise NotFound("this month has no stored version with that number")
    if not stored:
        return MonthView(practice.id, month, "open", _compute(session, practice, month, now, policy))
    shown = next(v for v in stored if v.version == (version or 1))
    amendments = [
        {
            "version": v.version,
            "created_at": v.created_at.isoformat(),
            "changed_patient_ids": list(v.changed_patient_ids),
            "patients": [p for p in v.content["patients"] if p["patient_id"] in set(v.changed_patient_ids)],
            "totals": v.content["totals"],
        }
        for v in stored[1:]
    ]
    return MonthView(practice.id, month, "closed", shown.content, stored, amendments)


def close_month(
    session: Session, practice: Practice, month: str, *, now: datetime, policy: Policy, actor: Actor | str
) -> ReportVersion:
    if now < month_over_at(month):
        raise Conflict("the month is not over in every time zone yet; close it after it ended")
    if versions(session, practice.id, month):
        raise Conflict("the month is already closed; later changes are recorded as amendments")
    content = _compute(session, practice, month, now, policy)
    row = _store(session, practice, month, 1, ReportKind.closed, content, [], actor)
    record(
        session,
        action="billing.month.closed",
        outcome=Outcome.success,
        actor=actor,
        organization_id=practice.organization_id,
        practice_id=practice.id,
        resource_type="BillingReport",
        resource_ids=[row.id],
        detail={"month": month, "version": 1, "patients": len(content["patients"])},
    )
    return row


def _store(
    session: Session,
    practice: Practice,
    month: str,
    version: int,
    kind: ReportKind,
    content: dict[str, Any],
    changed: list[str],
    actor: Actor | str,
) -> ReportVersion:
    row = ReportVersion(
        organization_id=practice.organization_id,
        practice_id=practice.id,
        month=month,
        version=version,
        kind=kind,
        content=content,
        content_hash=rows_hash(content["patients"]),
        changed_patient_ids=changed,
        created_by=str(actor),
    )
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Someone else closed or amended the same month at the same moment.
        raise Conflict("this month's report changed meanwhile; try again") from None
    return row


def _changed(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Patients whose rows differ (added, removed or changed); ``missing`` texts are advice, not billing."""

    def key(rows: list[dict[str, Any]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for r in rows:
            billing = {k: v for k, v in r.items() if k != "missing"}
            out[f"{r['patient_id']}/{r['episode_id']}"] = rows_hash([billing])
        return out

    a, b = key(old), key(new)
    return sorted({k.split("/")[0] for k in a.keys() | b.keys() if a.get(k) != b.get(k)})


@dataclass
class RecomputeSummary:
    months: int = 0
    amended: list[tuple[str, str, int]] = field(default_factory=list)  # (practice id, month, version)


def recompute(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    actor: Actor | str,
    organization_id: str | None = None,
    practice_id: str | None = None,
) -> RecomputeSummary:
    """Compare every closed month with a fresh computation; store an amendment where they differ."""
    latest = (
        select(ReportVersion.practice_id, ReportVersion.month, func.max(ReportVersion.version))
        .group_by(ReportVersion.practice_id, ReportVersion.month)
        .order_by(ReportVersion.practice_id, ReportVersion.month)
    )
    if organization_id is not None:
        latest = latest.where(ReportVersion.organization_id == organization_id)
    if practice_id is not None:
        latest = latest.where(ReportVersion.practice_id == practice_id)
    summary = RecomputeSummary()
    for pid, month, top in session.execute(latest):
        practice = session.get(Practice, pid)
        assert practice is not None
        current = session.scalar(
            select(ReportVersion).where(
                ReportVersion.practice_id == pid, ReportVersion.month == month, ReportVersion.version == top
            )
        )
        assert current is not None
        fresh = _compute(session, practice, month, now, policy)
        summary.months += 1
        changed = _changed(current.content["patients"], fresh["patients"])
        if not changed:
            continue
        row = _store(session, practice, month, top + 1, ReportKind.amendment, fresh, changed, actor)
        summary.amended.append((pid, month, row.version))
        record(
            session,
            action="billing.month.amended",
            outcome=Outcome.success,
            actor=actor,
            organization_id=practice.organization_id,
            practice_id=pid,
            resource_type="BillingReport",
            resource_ids=[row.id, *changed],
            detail={"month": month, "version": row.version, "changed": len(changed)},
        )
    return summary


CSV_COLUMNS = (
    "patient_id",
    "mrn",
    "family_name",
    "given_name",
    "episode_id",
    "condition_code",
    "billing_practitioner_id",
    "code",
    "units",
    "date_of_service",
    "final",
    "basis",
    "evidence",
    "missing",
)


def _evidence(row: dict[str, Any], charge: dict[str, Any]) -> str:
    code = charge["code"]
    if code in ("99454", "99445", "99453", "99091"):
        period = next((p for p in row["device_periods"] if p["date_of_service"] == charge["date_of_service"]), None)
        if period is None:
            return ""
        if code == "99091":
            return f"{period.get('interpretation_minutes', 0)} physician minutes"
        return f"{period['days']} days: " + " ".join(period["qualifying_days"])
    time_ = row["time"]
    return f"{time_['minutes']} minutes, {time_['interactions']} interactive communications, entries " + " ".join(
        time_["entry_ids"]
    )


def to_csv(report: dict[str, Any]) -> str:
    """One line per charge; a patient with no charge gets one line saying what is missing."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report["patients"]:
        base = {k: row.get(k) for k in CSV_COLUMNS[:7]}  # the episode's practitioner, until a charge says
        missing = "; ".join(m["text"] for m in row["missing"])
        for charge in row["charges"] or [None]:
            line = dict(base, missing=missing)
            if charge is not None:
                line.update(
                    billing_practitioner_id=charge["billing_practitioner_id"],
                    code=charge["code"],
                    units=charge["units"],
                    date_of_service=charge["date_of_service"],
                    final=charge["final"],
                    basis=charge["basis"],
                    evidence=_evidence(row, charge),
                )
            writer.writerow({k: _cell(v) for k, v in line.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to spreadsheet programs (CSV injection); names
    # and staff text come from users, so such cells are quoted as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
