"""Models of the accountability endpoints (issue 12): a camera's status history, availability
figures, the outage report. What is counted and how: docs/accountability.md."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from .models import (
    SINCE_PATTERN,
    CameraId,
    CameraStatus,
    DocumentedPattern,
    ImageStatus,
    Maintenance,
    Model,
    QueryInt,
    Slug,
    StreamCursor,
    iso_datetime,
)

Instant = Annotated[datetime, BeforeValidator(iso_datetime), DocumentedPattern(SINCE_PATTERN)]
_INSTANT_HINT = "RFC 3339 date-time with a time zone, in the years 1970 to 2999 (no leap seconds)"


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


PERIOD_SECONDS = {Period.day: 86_400, Period.week: 7 * 86_400, Period.month: 30 * 86_400}


class GroupBy(StrEnum):
    camera = "camera"
    department = "department"
    carrier = "carrier"
    project = "project"
    network = "network"


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


# -- query strings -------------------------------------------------------------------------------


class HistoryQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: QueryInt = Field(100, ge=1, le=1000, description="Changes per page")
    cursor: StreamCursor | None = Field(None, description="`next_cursor` of the previous page")


class AvailabilityQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Period = Field(
        Period.month, description="The window: a day (24 h), a week (7 days) or a month (30 days)"
    )
    end: Instant | None = Field(
        None, description=f"The window's end (exclusive); default now. {_INSTANT_HINT}"
    )
    by: GroupBy = Field(GroupBy.network, description="One row per camera, or per group")
    network: Slug | None = Field(
        None, description="Only this network (counted only if the token is granted it)"
    )
    limit: QueryInt = Field(
        1000, ge=1, le=100_000, description="Rows at most (lowest share online first)"
    )


class OutageQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_minutes: QueryInt = Field(
        60,
        ge=0,
        le=525_600,
        description="Down (offline or degraded), or online with a faulty picture, at least this "
        "long",
    )
    format: ReportFormat = Field(
        ReportFormat.json,
        description="json; csv (UTF-8 with a BOM, for Excel); xlsx (a sheet of cameras and "
        "one of their changes)",
    )
    network: Slug | None = Field(None, description="Only this network (if granted)")
    history_days: QueryInt = Field(
        30, ge=1, le=366, description="How many days of each camera's changes to include"
    )


# -- answers -------------------------------------------------------------------------------------


class StatusChange(Model):
    at: datetime = Field(description="When (the writer's clock; never before the change before)")
    previous: CameraStatus | None = Field(description="null: the change that created the camera")
    status: CameraStatus
    error: str | None = Field(
        description="The record's last_error with the change (null where its network does not "
        "share last_error)"
    )


class StatusHistoryPage(Model):
    id: CameraId
    network: str
    status: CameraStatus | None = Field(
        description="Its status now (null, and no changes, where its network does not share status)"
    )
    retained_since: datetime | None = Field(
        description="The oldest change its network's history still holds (null: none); a "
        "camera with no change since has been in its status since before then"
    )
    items: list[StatusChange] = Field(description="Newest first")
    next_cursor: str | None = None


class Figures(Model):
    cameras: int = Field(description="Cameras counted")
    observed_s: float = Field(
        description="Seconds in a known status: online (with or without a faulty picture), "
        "degraded, offline"
    )
    online_s: float = Field(description="Seconds online, with a picture not judged faulty")
    online_faulty_s: float = Field(
        description="Seconds online with a picture the quality diagnosis judged faulty (counted "
        "where the caller sees `image`; else as online)"
    )
    degraded_s: float
    outage_total_s: float = Field(description="Seconds offline")
    unknown_s: float = Field(description="Seconds in status unknown (not observed)")
    share_online: float | None = Field(
        description="online_s / observed_s (time-weighted); null when nothing was observed"
    )
    outages: int = Field(description="Offline spans (one going on at the start counts)")
    outage_longest_s: float = Field(description="The longest, within the window")


class AvailabilityRow(Figures):
    key: str = Field(
        description="The camera's id, or the group's department, carrier, project or network; "
        "'' where a camera has none or its network does not share it"
    )
    network: str | None = Field(None, description="by=camera: its network")
    department: str | None = Field(None, description="by=camera (null: not shared)")
    carrier: str | None = Field(None, description="by=camera (null: not shared)")
    project: str | None = Field(None, description="by=camera (null: not shared)")


class Availability(Model):
    period: Period
    by: GroupBy
    start: datetime
    end: datetime
    observed_until: datetime = Field(description="min(end, now): the future is not observed")
    networks: list[str] = Field(description="The networks counted (granted, and asked for)")
    total: Figures = Field(description="Every camera counted")
    rows_total: int = Field(description="Rows before `limit`")
    rows: list[AvailabilityRow] = Field(description="Lowest share online first, then by key")


class OutageRow(Model):
    id: str
    network: str
    name: str | None
    category: str | None
    status: CameraStatus = Field(
        description="offline or degraded; online: its picture is faulty (`image`)"
    )
    since: datetime = Field(
        description="When it went down (offline or degraded, in any order); for an online "
        "camera, since when it has been online with a faulty picture"
    )
    since_exact: bool = Field(
        description="false: it was down before the oldest change held; `since` is that change"
    )
    down_s: float = Field(
        description="Seconds down (or online with a faulty picture) so far, as of generated_at"
    )
    department: str | None = Field(description="null where its network does not share it")
    carrier: str | None
    project: str | None
    maintenance: Maintenance | None = Field(
        description="Who fixes it: its own contact, else its category's and carrier's "
        "(null where none is set, or its network does not share `maintenance`)"
    )
    last_error: str | None
    outages_recent: int = Field(description="Offline spans within history_days")
    history: list[StatusChange] = Field(description="Changes within history_days, newest first")
    image: ImageStatus | None = Field(
        None, description="The quality diagnosis's verdict (null: none, or `image` not shared)"
    )
    failing: str | None = Field(
        None, description="Its failing checks, comma-separated (null: none, or not shared)"
    )


class OutageReport(Model):
    generated_at: datetime
    min_minutes: int
    history_days: int
    networks: list[str]
    total: int
    items: list[OutageRow] = Field(description="Longest down first")
