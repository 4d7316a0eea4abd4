"""How the server and the gateway stop (serving/hosting.py, gateway/frontend.py): on SIGTERM
the process turns unready, after ``drain_seconds`` the listener closes, and requests in
flight get ``grace_seconds``. Embedded in both settings: both take the same two flags. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.settings_fields import check_bounds, setting


@dataclass(frozen=True)
class Shutdown:
    drain_seconds: float = setting(
        0.0, at_least=0, help="After SIGTERM, stay up but unready this long before closing the listener.")
    grace_seconds: float = setting(
        30.0, at_least=0, help="After the listener closes, how long in-flight requests may take.")

    def __post_init__(self) -> None:
        check_bounds(self)
