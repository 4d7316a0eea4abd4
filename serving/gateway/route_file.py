"""Routes from a YAML or JSON file (``--routes FILE``), followed as it changes.

The folder is watched rather than the file, so editors and Kubernetes ConfigMap
volumes that replace the file by rename are seen too. A change that does not parse
is refused with a log line and a metric, and the routes in force stay as they were.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import yaml
from watchfiles import awatch

from ..contract.routes import InvalidRoutes, RouteTable, parse_route_table
from .state import RouteState

log = logging.getLogger("modelrollout.gateway")


class RouteFile:
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    async def load(self) -> RouteTable:
        """The file's table now; raises InvalidRoutes or OSError when it cannot be used."""
        text = await asyncio.to_thread(self.path.read_text)
        try:
            doc = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
        except yaml.YAMLError as exc:
            raise InvalidRoutes(f"{self.path} is not valid YAML or JSON: {exc}") from None
        return parse_route_table(doc)

    async def follow(self, state: RouteState) -> None:
        last = await self._signature()
        async for _ in awatch(
            self.path.parent, watch_filter=self._concerns_us, step=50, debounce=400, recursive=False
        ):
            signature = await self._signature()
            if signature == last:
                continue
            last = signature
            try:
                table = await self.load()
            except (InvalidRoutes, OSError) as exc:
                state.reject(self.name, str(exc))
                continue
            state.update(table, self.name)

    def _concerns_us(self, _change, path: str) -> bool:
        # Our file, or the "..data" link a ConfigMap volume swaps to replace all its files.
        name = Path(path).name
        return name == self.path.name or name.startswith("..")

    async def _signature(self) -> tuple | None:
        try:
            stat = await asyncio.to_thread(self.path.stat)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
