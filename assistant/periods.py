"""Periods and channels of the conversation log, as the commands and the console name them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from assistant.errors import InvalidOption

CHANNELS = ("web", "api", "cli", "eval")
CUSTOMER_CHANNELS = ("web", "api", "cli")
"""Every channel but `eval`: evaluation turns are the test set talking, not customers."""


@dataclass(frozen=True)
class Period:
    """Conversations started in `[since, until)` on one of `channels`."""

    since: datetime | None = None
    until: datetime | None = None
    channels: tuple[str, ...] = CUSTOMER_CHANNELS

    def describe(self) -> str:
        """The period in words, for messages and report titles."""
        start = self.since.isoformat(timespec="minutes") if self.since else "the first conversation"
        end = self.until.isoformat(timespec="minutes") if self.until else "now"
        return f"{start} to {end}, channels {', '.join(self.channels)}"


def parse_moment(value: str | None, option: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time as UTC (no offset means UTC); a bare date with `end_of_day` means the next midnight."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidOption(f"{option} {value!r} is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM "
                            "(UTC unless it carries an offset such as +02:00)") from err
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_channels(value: str | None) -> tuple[str, ...]:
    """Comma-separated channel names; none given means every channel but `eval`."""
    if value is None:
        return CUSTOMER_CHANNELS
    names = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in CHANNELS]
    if unknown or not names:
        shown = ", ".join(repr(name) for name in unknown) or "nothing"
        raise InvalidOption(f"--channel {shown} is not a channel: give one or more of {', '.join(CHANNELS)}, "
                            "comma-separated (e.g. --channel web,api)")
    return names


def parse_period(since: str | None = None, until: str | None = None, channel: str | None = None) -> Period:
    """A period from the command line's text (a bare `--until` date includes that day); bad values are clear errors."""
    start, end = parse_moment(since, "--since"), parse_moment(until, "--until", end_of_day=True)
    if start is not None and end is not None and start >= end:
        raise InvalidOption(f"--since {since} is not before --until {until}: nothing can lie between them")
    return Period(start, end, parse_channels(channel))
