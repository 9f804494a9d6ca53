"""What every configuration table shares: the error type, frozen models that refuse unknown
keys, one Duration type, and the check for names written twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from monitor.clock import parse_duration


class ConfigError(Exception):
    """One or more problems, each already phrased for the person who wrote the file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def repeated(names) -> list[str]:
    """The names written more than once, in the order their repeats appear."""
    seen: set[str] = set()
    again: dict[str, None] = {}
    for name in names:
        if name in seen:
            again[name] = None
        seen.add(name)
    return list(again)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> Any:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(value)

# A length of time as written in the files ("90s", "5m", "48h", "3d"), read once here.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


MaybeDuration = Annotated[timedelta | None, BeforeValidator(_duration)]


class Listening(_Model):
    """A table with `listen = "host:port"` (port 0: any free port, for tests)."""

    listen: str

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen 应为 主机:端口，如 127.0.0.1:8080（收到 {v!r}）")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])
