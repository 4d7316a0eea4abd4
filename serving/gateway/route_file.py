"""Routes from a YAML or JSON file (``--routes FILE``), followed as it changes.

The folder is watched rather than the file, so editors and Kubernetes ConfigMap
volumes that replace the file by rename are seen too. A change that does not parse
is refused with a log line and a metric, and the routes in force stay as they were.

A file is parsed off the event loop and as JSON first: PyYAML takes about a second for a
1,000-model table on a small machine (json, a few ms), and on the loop that second would
stall every request in flight (bench/bench_gateway_scale.py).
"""

from __future__ import annotations

import asyncio
import json
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
        return await asyncio.to_thread(parse_text, text, self.path)

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


def parse_text(text: str, where: Path) -> RouteTable:
    """A route file's table: JSON when it is JSON (fast), else YAML (a superset of JSON)."""
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidRoutes(f"{where} is not valid YAML or JSON: {exc}") from None
    return parse_route_table(doc)
