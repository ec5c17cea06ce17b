"""One spawn by a fresh Supervisor, closed at once: what a spawn does, or how it fails."""

from __future__ import annotations

import asyncio
from typing import Any

from longrun_cli.engine.launch import LaunchSpec
from longrun_cli.engine.process import Supervisor


def launch(spec: LaunchSpec) -> Any:
    async def main() -> Any:
        supervisor = Supervisor()
        try:
            return supervisor.spawn(spec)
        finally:
            supervisor.close()

    return asyncio.run(main())
