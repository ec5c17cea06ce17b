"""``--state-file``: read a task's saved budgets at start, save them on each change.

The file is JSON, one entry per task name, so a group's tasks (``[runner] state``)
and several longruns can share it. Every read-modify-write holds an flock on
``PATH.lock`` (the file itself is replaced by rename, so it cannot carry the lock),
taken without blocking the event loop and given up after 2 s with a warning.
Writes are atomic (a temporary file, fsync, rename, fsync of the directory). A
problem (unreadable, corrupt, foreign, a full disk) is one warning: the task runs
on without the state, never fails for it. Imported only with ``--state-file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from longrun_cli.policy.decision import Verdict
from longrun_cli.policy.duration import format_duration, to_seconds
from longrun_cli.policy.state import (
    FORMAT,
    VERSION,
    TaskState,
    check_document,
    new_document,
    read_task,
    write_task,
)
from longrun_cli.policy.tracker import Budgets

if TYPE_CHECKING:
    from longrun_cli.policy.decision import Decision
    from longrun_cli.policy.taskspec import TaskSpec

LOCK_PATIENCE = 2.0  # seconds a save waits for another holder of the lock
_MAX_SIZE = 4 << 20  # a state file bigger than this is not ours


class StateFile:
    def __init__(self, path: str, task: str, rules: list[str], warn: Callable[[str], None]) -> None:
        self.path = path
        self._task = task
        self._rules = rules
        self._warn = warn
        self._writable = True  # False once the path turned out to be something else's
        self.saved = False  # an entry of this task is in the file

    async def load(self) -> TaskState | None:
        """The saved state, if any; anything unusable is reported once and ignored."""
        try:
            async with self._lock():
                document = self._read()
        except _Unusable as exc:
            self._writable = exc.ours  # never overwrite what another program (or version) wrote
            self._warn(f"state file {self.path}: {exc}; starting afresh")
            return None
        found = read_task(document, self._task, self._rules)
        if isinstance(found, str):
            self._warn(f"state file {self.path}: ignored: {found}")
            return None
        self.saved = found is not None
        return found

    async def save(self, state: TaskState | None) -> None:
        """Record ``state`` (``None``: this task's entry removed, as after a success)."""
        if not self._writable or (state is None and not self.saved):
            return
        try:
            async with self._lock():
                try:
                    document = self._read()
                except _Unusable as exc:
                    if not exc.ours:
                        raise
                    document = new_document()  # ours but corrupt: start it again
                self._write(write_task(document, self._task, self._rules, state))
        except _Unusable as exc:
            self._writable = exc.ours
            self._warn(f"state file {self.path}: not saved: {exc}")
            return
        except OSError as exc:
            self._warn(f"state file {self.path}: not saved: {exc.strerror or exc}")
            return
        self.saved = state is not None

    @contextlib.asynccontextmanager
    async def _lock(self) -> AsyncIterator[None]:
        # Before any lock file is made beside it: --state-file /dev/full must not leave
        # /dev/full.lock behind (nor, as root, have the device renamed over).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise _Unusable("not a regular file", ours=False)
        try:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _Unusable(
                f"cannot open its lock file: {exc.strerror or exc}", ours=True
            ) from None
        try:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + LOCK_PATIENCE
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() >= give_up:
                        raise _Unusable(
                            f"{self.path}.lock held by another process for {LOCK_PATIENCE:g}s",
                            ours=True,
                        ) from None
                    await asyncio.sleep(0.01)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return new_document()
        except OSError as exc:
            raise _Unusable(exc.strerror or str(exc), ours=False) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Unusable("not a regular file", ours=False)
            if info.st_size > _MAX_SIZE:
                raise _Unusable("not a longrun state file (too large)", ours=False)
            raw = os.read(fd, _MAX_SIZE + 1)
        finally:
            os.close(fd)
        if not raw.strip():
            return new_document()
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            ours = b'"longrun-state"' in raw[:200]
            raise _Unusable(
                "corrupt (not JSON)" if ours else "not a longrun state file", ours=ours
            ) from None
        reason = check_document(document)
        if reason is not None:
            ours = (
                isinstance(document, dict)
                and document.get("format") == FORMAT
                and document.get("version") == VERSION
            )
            raise _Unusable(reason, ours=ours)
        return dict(document)

    def _write(self, document: dict[str, Any]) -> None:
        directory = os.path.dirname(self.path) or "."
        temporary = f"{self.path}.{os.getpid()}.tmp"
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


class _Unusable(Exception):
    """The file cannot be used; ``ours``: it is a longrun state file (so may be rewritten)."""

    def __init__(self, message: str, *, ours: bool) -> None:
        super().__init__(message)
        self.ours = ours


class StateKeeper:
    """A task's side of the state file: budgets resumed at start, and each decision saved."""

    def __init__(
        self, path: str, spec: TaskSpec, wall: Callable[[], float], warn: Callable[[str], None]
    ) -> None:
        self._spec = spec
        self._wall = wall
        rules = [rule.describe() for rule in spec.policy.rules]
        self._file = StateFile(path, spec.name, rules, warn)

    async def resume(self) -> tuple[Budgets, float, str | None]:
        """The budgets to start from, the seconds to wait first, and what to log about it."""
        fresh = Budgets.fresh(len(self._spec.policy.rules))
        state = await self._file.load()
        if state is None:
            return fresh, 0.0, None
        budgets = Budgets(state.spent)
        longest = 0.0
        rule_text = "no rule"
        if state.rule is not None:
            rule = self._spec.policy.rules[state.rule]
            rule_text = rule.matcher.describe()
            longest = to_seconds(rule.backoff.delay(max(0, state.spent[state.rule] - 1)))
        wait = state.wait(self._wall(), longest)
        message = (
            f"resumed from {self._file.path}: {sum(state.spent)} failure(s) in a row "
            f"(last: {rule_text}); next attempt in {format_duration(round(wait * 1e9))}"
        )
        return budgets, wait, message

    async def record(self, decision: Decision, budgets: Budgets) -> None:
        if decision.verdict is Verdict.SUCCESS or not any(budgets.spent):
            await self._file.save(None)
            return
        now = self._wall()
        retry_at = None
        if decision.rule is not None:
            rule = self._spec.policy.rules[decision.rule]
            # Retried or not (a spent budget), the next attempt waits this rule's next
            # delay: a longrun restarted in a crash loop continues the curve.
            retry_at = now + to_seconds(rule.backoff.delay(decision.attempt))
        await self._file.save(TaskState(budgets.spent, now, decision.rule, retry_at))

    async def clear(self) -> None:
        await self._file.save(None)
