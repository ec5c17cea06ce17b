"""The prose of the manual pages: what no click option says (statuses, signals, keys).

Kept apart from the generator (manpage.py), which puts it together with the live CLI.
"""

from __future__ import annotations

EXIT_STATUS = [
    ("0", "Success: every attempt that mattered ended successfully."),
    ("the command's status", "Permanent failure, or retries exhausted."),
    ("128+N", "The failing attempt was killed by signal N."),
    ("124", "The attempt timed out (--timeout) or the --deadline passed."),
    (
        "unhealthy",
        "An attempt stopped by its failing --health probe ends with the command's own "
        "status after the stop (143 for a TERM), or 1 if that was 0.",
    ),
    ("125", "longrun itself failed: bad usage or an invalid value, named on stderr."),
    (
        "75",
        "--lock: the lock was held elsewhere for all of --lock-wait, or a one-shot task "
        "(or a group) lost it.",
    ),
    ("126", "The command was found but could not be executed."),
    ("127", "The command was not found."),
    (
        "by signal",
        "On SIGTERM, SIGINT, SIGHUP or SIGQUIT the command is stopped gracefully, the "
        "shutdown hook runs, and longrun re-raises the same signal so that its caller "
        "sees it (a shell reports 128+N; systemd sees a clean stop).",
    ),
]

SIGNALS = """\
TERM, INT, HUP and QUIT stop the task gracefully: the stop signal goes to the \
command's process group (followed by SIGCONT, so that a suspended command acts \
on it), SIGKILL follows after --kill-after, then the shutdown \
hook runs and longrun dies by the signal it received. A second TERM or INT while \
stopping kills the command at once, with whatever it left in its process group. \
ALRM, VTALRM, PROF, XCPU, XFSZ, PWR, STKFLT, \
SYS, TRAP and ABRT, which would otherwise kill longrun on the spot, stop it \
gracefully the same way (PWR is how LXC and Incus stop a container). INT, QUIT \
and HUP that the caller ignored (a background job, nohup) stay ignored, for \
longrun and the command. Signals the caller blocked are unblocked in longrun and \
blocked again for the command. USR1 and USR2 are forwarded to the command's main \
process (not its helpers, which would die of them); WINCH to its process group, \
and not with --foreground, where the terminal already delivers it. A command \
stopped by SIGTTIN or SIGTTOU (it wants the terminal) is reported with a warning \
that suggests --foreground.

longrun is a child subreaper: a daemon that leaves its process group with setsid \
is adopted by longrun and, when longrun ends, gets the stop signal and then \
SIGKILL after --kill-after; the search is repeated until none is left, so a \
daemon's own escaped helpers go too. If such a daemon still holds the command's \
output pipe, longrun stops waiting for that pipe once the command has exited and \
the pipe has been idle for --kill-after (at least 0.5 s), and keeps copying it. \
Every process longrun starts carries LONGRUN_MARK in its environment. If longrun \
itself is killed with SIGKILL, a watcher process (one sh per run, in its own \
session) kills the process groups that were running, then every process that \
carries the mark, until two searches 0.1 s apart find none."""

ENVIRONMENT = [
    ("LONGRUN_TASK", "Set for the command and the hook: the task name."),
    (
        "LONGRUN_ATTEMPT",
        "Set for the command: 1 for the first try of a failure streak, 2 for the first retry, …",
    ),
    ("LONGRUN_RUN", "Set for the command: how many times it has been invoked, this one included."),
    (
        "LONGRUN_REPLICA",
        "Set for a group's commands: K for replica NAME.K, 1 for a task not scaled.",
    ),
    (
        "PORT",
        "Set for -t and --procfile tasks (and TOML tasks with [runner] port): the base port "
        "+100 per task in declaration order +1 per replica, as foreman assigns it.",
    ),
    (
        "LONGRUN_PLATFORM",
        "portable: take the path longrun takes off Linux (macOS): no child subreaper, no /proc, "
        "default pipe sizes. Process groups and the watcher still stop everything longrun "
        "started; a daemon that left its group with setsid is not found.",
    ),
    ("TZ", "The zone of a --schedule that names none (else /etc/localtime)."),
    (
        "JOURNAL_STREAM",
        "When it names stderr's device and inode (systemd's journal), text log lines carry no "
        "time=, which journald adds itself.",
    ),
    (
        "LONGRUN_MARK",
        "Set for the command, hooks and probes: this longrun's mark (and those of the longruns"
        " around it), by which the watcher finds what survives a SIGKILL of longrun.",
    ),
    (
        "LONGRUN_STATUS",
        "Set for the shutdown and failure hooks: succeeded, failed, exhausted, deadline or "
        "stopped.",
    ),
    (
        "LONGRUN_EXIT_STATUS",
        "Set for the shutdown and failure hooks: the status longrun will exit with.",
    ),
    ("LONGRUN_ATTEMPTS", "Set for the failure hook (--on-failure): how many runs there were."),
    (
        "LONGRUN_STDERR_TAIL_FILE",
        "Set for the failure hook: a private file with the failing attempt's last 50 stderr "
        "lines (at most 64 KiB), removed once the hook has run.",
    ),
    ("NO_COLOR, FORCE_COLOR", "Turn colour off or on for --log-format auto."),
    (
        "TRACEPARENT, TRACESTATE",
        "With tracing on: the parent of longrun's spans; each command gets its own "
        "invocation's context in these variables.",
    ),
    (
        "OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT, "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, "
        "OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_SERVICE_NAME, "
        "OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED",
        "Standard OpenTelemetry configuration. Tracing is on when an exporter or an "
        "endpoint is set; spans are flushed within 5 seconds on every way out.",
    ),
    (
        "LONGRUN_TRACE_COMMAND_ARGS",
        "Set to 1 to send the command's full argv (process.command_args) on every span. "
        "Off by default: command lines often carry passwords and tokens; spans carry "
        "only process.executable.name.",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
        "systemd notification: READY=1 once started (a group: once every task is "
        "ready or has succeeded; never when a probe failed or a stop came first), "
        "STATUS= on retries and when the retry runs, STOPPING=1 once on shutdown, "
        "WATCHDOG=1 every half WATCHDOG_USEC.",
    ),
]

VALUE_SYNTAX = [
    ("DURATION", "Go style: 250ms, 2s, 1m30s, 1.5h, 1us; a bare number is seconds."),
    (
        "CODES",
        "75, 75,111 or 64-78; each 1..255. A list or range makes one rule per code, "
        "each with its own retry budget.",
    ),
    ("RETRIES", "An integer >= 1, or inf. Omitted or empty: 3."),
    (
        "BACKOFF",
        "INITIAL[,MAX[,MULTIPLIER]]. MAX defaults to 30s (0 = no cap), MULTIPLIER to 2. "
        "The delay before retry n (0-based within the rule's streak) is "
        "INITIAL x MULTIPLIER^n, capped at MAX.",
    ),
    (
        "REGEX",
        "RE2 syntax (linear-time: no pattern can stall longrun), searched in each line of "
        "the attempt's stderr. Write a colon that belongs to the regex as \\:.",
    ),
    ("SIGNALS", "Names with or without SIG (KILL,SEGV) or numbers."),
]

EXAMPLES = [
    (
        "Run ./check.sh now and every 30s; exit 75 is retried up to 5 times in a row "
        "after 2s, 6s, 18s, 54s and 1m0s; any other failure ends longrun with that code:",
        "longrun exec --interval 30s --retry-exit-code 75:5:2s,60s,3 -- ./check.sh",
    ),
    (
        "Bound each attempt to 5 minutes and retry timeouts twice:",
        "longrun exec --timeout 5m --retry-timeout 2 -- ./migrate --up",
    ),
    (
        "Retry a connection error forever with a quick backoff:",
        "longrun exec --retry-stderr 'connection refused:inf:100ms,2s' -- ./worker",
    ),
    (
        "Show the resolved plan without running anything:",
        "longrun exec --dry-run --retry-exit-code 64-78:5 -- ./job",
    ),
    (
        'The same plan as one JSON document; its "arguments" are the canonical '
        "exec options that build exactly this plan again:",
        "longrun exec --dry-run --log-format json --retry-exit-code 64-78:5 -- ./job",
    ),
]


TOML_SCHEMA = """\
[runner]
shutdown_timeout = "30s"     # all hooks together
kill_after = "10s"           # default grace period before SIGKILL
name = "shop"                # for longrun ctl (default: this file's directory's name)
control = "/run/shop.sock"   # the control socket (default: see longrun-ctl(1))
log_lines = 1000             # lines of each task kept for longrun ctl logs
env_file = ".env"            # or a list: for every task
port = 8000                  # PORT: +100 per task, +1 per replica

[tasks.migrate]
command = ["./migrate", "--up"]          # list = argv; string = a command line
retry = [
  { exit_codes = [75], retries = 5, backoff = "2s,60s,3" },
  { stderr = "connection refused", retries = "inf", backoff = "100ms,2s" },
  { timeout = true, retries = 2 },
  { signals = ["KILL"], retries = 1 },
]
timeout = "5m"

[tasks.web]
command = "gunicorn app:app"
depends_on = { migrate = "succeeded" }   # started | ready | succeeded
ready = { stderr = "Listening at" }      # gunicorn logs on stderr
# or { stdout|output = "REGEX" }, { command = "..." }, { http = "http://127.0.0.1:8000/health" },
# { tcp = "127.0.0.1:8000" }, each with interval = "1s", timeout = "30s"
shutdown = "curl -fsS -X POST localhost:8000/drain"
env = { GREETING = "hi" }
env_file = "web.env"                     # or a list
scale = 2                                # web.1 and web.2
cwd = "services/web"                     # relative to the file

[tasks.poll]
command = ["./poll.sh"]
interval = "10s"

[tasks.report]
command = "./report.sh"
schedule = "30 2 * * *"                  # cron; timezone = "Europe/Berlin"
"""

GROUP_KEYS = [
    (
        "command",
        "A list (argv, no shell) or a string: plain words run directly, anything a shell "
        "must interpret (quotes, $, |, &&, redirections, globs) under sh -c. Required.",
    ),
    (
        "interval, delay, timeout, deadline, stop_signal, kill_after, jitter, "
        "shutdown, shutdown_timeout, foreground",
        "As the longrun exec options of the same name.",
    ),
    (
        "retry",
        'A list of rules: exit_codes (list or "64-78"), stderr (regex), signals, '
        "timeout = true or unhealthy = true; with retries and backoff. exit_codes and "
        "stderr in one rule must both match.",
    ),
    (
        "retry_exit_code, retry_stderr, retry_signal, retry_timeout, retry_unhealthy",
        "The longrun exec spec strings, one or a list.",
    ),
    ("success_exit_codes", "Extra exit codes that count as success."),
    (
        "depends_on",
        '{ name = "started" | "ready" | "succeeded" }, or a list of names (started). '
        "A dependency that can no longer meet its condition fails the task (exit 1).",
    ),
    (
        "ready",
        "One probe: { stdout = REGEX }, { stderr = REGEX }, { output = REGEX } (either "
        'stream), { command = "..." } (exit 0), { http = "http://HOST:PORT/PATH" } (2xx or '
        '3xx, redirects not followed), { tcp = "HOST:PORT" } (a connection accepted); the '
        "last three are tried every interval (default 1s); all within timeout (default "
        "30s), after which dependents fail. Without it a task is ready once started. A task "
        "waiting for its dependencies says every 5 s what it waits for. A probe string as "
        'longrun-exec(1) --ready writes it works too: ready = "tcp:127.0.0.1:5432".',
    ),
    (
        "health",
        "A liveness probe, as longrun-exec(1) --health: a probe string, or a table with "
        "one probe key and interval (10s), timeout (5s), failures (3). Checks start once "
        "the task is ready; an unhealthy task is retried only by retry_unhealthy or an "
        "unhealthy = true rule. No WATCHDOG=1 while any task's last check failed.",
    ),
    (
        "on_failure",
        "A command run by sh -c once when the task ends failed, exhausted or past its "
        "deadline, with its stderr tail (see longrun-exec(1) --on-failure).",
    ),
    ("ping", "A healthchecks.io check URL, as longrun-exec(1) --ping."),
    (
        "circuit_breaker",
        "COOLDOWN[,MAX] for an interval or scheduled task, as longrun-exec(1) "
        "--circuit-breaker: where the task would end, its circuit opens instead.",
    ),
    ("env", "Extra environment variables, over env files and the assigned PORT."),
    (
        "env_file",
        "A dotenv file or a list of them, relative to the file (python-dotenv's syntax: "
        "export, quotes, comments, ${VAR}); in [runner] for every task. Precedence, lowest "
        "first: longrun's environment, [runner] env_file, --env-file, the task's env_file, "
        "PORT, env. A missing file or a line that is not dotenv is an error naming file "
        "and line.",
    ),
    (
        "scale",
        "Run N replicas, NAME.1 ... NAME.N, each a full task with its own budgets and "
        "LONGRUN_REPLICA=K; a depends_on on NAME waits for every replica.",
    ),
    (
        "port",
        "In [runner]: every task gets PORT, this base +100 per task in declaration order "
        "+1 per replica (foreman's rule). -t and --procfile groups always get PORT, from "
        "--port, else PORT from the environment or .env, else 5000.",
    ),
    (
        "schedule, timezone",
        "Run at each fire time of a five-field cron expression or @hourly, @daily, @weekly, "
        "@monthly, @yearly (a CRON_TZ=Zone prefix, or timezone, names the zone; default "
        "local time), as longrun-exec(1) --schedule does: no overlap, retries as for "
        "interval. Exclusive with interval.",
    ),
    ("cwd", "Working directory, relative to the file; PWD names it, as sh sets it."),
    (
        "lock, lock_wait, lock_ttl",
        "In [runner]: the whole group runs only while holding this lock, as longrun-group(1) "
        "--lock, --lock-wait and --lock-ttl.",
    ),
    (
        "state",
        "In [runner]: one state file for every task, an entry per task, as longrun-exec(1) "
        "--state-file (relative to the file).",
    ),
]
