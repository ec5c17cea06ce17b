"""What the engine reports as it goes; renderers and telemetry consume these."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, NamedTuple, Protocol


class Level(Enum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class Event(NamedTuple):
    """One log-worthy moment; ``fields`` keep their order for key=value output."""

    name: str
    task: str
    level: Level
    message: str
    fields: tuple[tuple[str, object], ...] = ()


if TYPE_CHECKING:  # types only: a Protocol class costs ~0.3 M instructions to build

    class EventSink(Protocol):
        def emit(self, event: Event) -> None: ...


class RecordingSink:
    """Keeps every event, for tests and for callers that render later."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [event.name for event in self.events]
