"""``--state-file``: read a task's saved budgets at start, save them on each change.

The file is JSON, one entry per task name, so a group's tasks (``[runner] state``)
and several longruns can share it. Every read-modify-write holds an flock on
``PATH.lock`` (the file itself is replaced by rename, so it cannot carry the lock),
given up after 2 s with a warning. Writes are atomic (a temporary file, fsync,
rename, fsync of the directory). They run, in order, on one thread shared by every
task, started at the change and awaited before the task ends: the next attempt
does not wait for the disk, and nothing blocks the event loop. A problem
(unreadable, corrupt, foreign, a full disk) is one warning: the task runs on
without the state, never fails for it. Imported only with ``--state-file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
        self._lock_fd: int | None = None

    def load(self) -> TaskState | None:
        """The saved state, if any; anything unusable is reported once and ignored."""
        try:
            with self._lock():
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

    def save(self, state: TaskState | None) -> None:
        """Record ``state`` (``None``: this task's entry removed, as after a success)."""
        if not self._writable or (state is None and not self.saved):
            return
        try:
            with self._lock():
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

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Before any lock file is made beside it: --state-file /dev/full must not leave
        # /dev/full.lock behind (nor, as root, have the device renamed over).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                raise _Unusable("not a regular file", ours=False)
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(
                    self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            except OSError as exc:
                raise _Unusable(
                    f"cannot open its lock file: {exc.strerror or exc}", ours=True
                ) from None
        give_up = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise _Unusable(
                        f"{self.path}.lock held by another process for {LOCK_PATIENCE:g}s",
                        ours=True,
                    ) from None
                time.sleep(0.01)  # on the state thread, never the event loop
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

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
        # One name, not one per process: written only under the lock, so a longrun
        # SIGKILLed mid-save leaves at most this one file, which the next save reuses.
        temporary = f"{self.path}.tmp"
        # Compact: the C encoder (an indented dump is Python's, 0.1 ms a save).
        data = (json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n").encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
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
        loop = asyncio.get_running_loop()
        rules = [rule.describe() for rule in spec.policy.rules]
        # The file is used on the state thread; its warnings are logged on the loop.

        def warn_on_loop(text: str) -> None:
            loop.call_soon_threadsafe(warn, text)

        self._file = StateFile(path, spec.name, rules, warn_on_loop)
        self._pending: Future[None] | None = None

    async def resume(self) -> tuple[Budgets, float, str | None]:
        """The budgets to start from, the seconds to wait first, and what to log about it."""
        fresh = Budgets.fresh(len(self._spec.policy.rules))
        state = await asyncio.wrap_future(_thread().submit(self._file.load))
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

    def record(self, decision: Decision, budgets: Budgets) -> None:
        """Start saving what ``decision`` left (in order, on the state thread)."""
        state = None
        if decision.verdict is not Verdict.SUCCESS and any(budgets.spent):
            now = self._wall()
            retry_at = None
            if decision.rule is not None:
                rule = self._spec.policy.rules[decision.rule]
                # Retried or not (a spent budget), the next attempt waits this rule's next
                # delay: a longrun restarted in a crash loop continues the curve.
                retry_at = now + to_seconds(rule.backoff.delay(decision.attempt))
            state = TaskState(budgets.spent, now, decision.rule, retry_at)
        self._pending = _thread().submit(self._file.save, state)

    async def finish(self) -> None:
        """Wait for the last save; the task's end must not outrun it."""
        if self._pending is not None:
            await asyncio.wrap_future(self._pending)
        await asyncio.wrap_future(_thread().submit(self._file.close))


@functools.cache
def _thread() -> ThreadPoolExecutor:
    """One thread for every state file of the process: saves stay in order, and a group of
    2,000 tasks does not get 2,000 threads."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="longrun-state")
