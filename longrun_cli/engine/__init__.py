"""asyncio engine: processes, the task loop and (later) the runner."""
