"""The launcher: the first process of every run container, around the script.

Its source goes into the container on the command line (`python3 -I -S -c SOURCE ...`), so
it works with any image that has python3 and needs no file of roscoe's there; `plan.py`
falls back to coreutils `timeout` in an image without python3 (then the figures are null).
It is a program of its own: it imports nothing of roscoe's, runs on Python 3.7 and later,
and is kept small and fast (no json, no subprocess: its start is paid by every run).

    python3 -I -S -c SOURCE REPORT_DIR BACKSTOP_S MEMORY_BYTES PUMP -- COMMAND...

It forks COMMAND, waits for it (reaping every orphan that comes its way, as process 1 must),
and writes REPORT_DIR/report.json (temp file + rename) before it exits with the script's
exit status (128 + N when signal N ended it):

  exit, signal    how the script ended (one of them is null)
  user_s, system_s, max_rss_kb
                  getrusage(RUSAGE_CHILDREN): the CPU time of the script and every
                  descendant waited for, and the largest resident set among them
  oom_kills       kills at the memory limit in the container's memory cgroup during the
                  run; null when the cgroup in view is not this container's own (its limit
                  is not MEMORY_BYTES: gVisor shows none, rootless Podman on cgroup v1 the host's)
  stopped         "backstop" when BACKSTOP_S passed (roscoe was not there to stop it), "asked"
                  when SIGUSR1 asked it to stop (roscoe's timeout or cancel); else null

REPORT_DIR/started is written first: roscoe then knows SIGUSR1 will be heard. On SIGUSR1 or
at the backstop every other process of the container is killed, and the report still
written, so a run that was stopped says what it used. PUMP=1 copies the script's stdout and
stderr through pipes of the launcher's own: gVisor cuts writes to the container's output short,
and Python drops the rest of a short write when its output is unbuffered.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys

CHUNK = 65536


def cgroup_oom_kills(limit: int) -> int | None:
    """The container's memory cgroup kill count, if the cgroup in view enforces `limit`."""
    for limit_file, events_file, key in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.events", "oom_kill"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.oom_control",
            "oom_kill",
        ),
    ):
        try:
            with open(limit_file) as handle:
                found = int(handle.read().strip())
            if not limit - (1 << 16) < found <= limit:  # the kernel rounds to pages
                continue
            with open(events_file) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                select.select([], [fd], [])
                continue
            return  # the reader is gone: nothing more can be delivered


class Launcher:
    def __init__(self, argv: list[str]) -> None:
        self.report_dir, backstop, limit, pump = argv[1:5]
        self.command = argv[6:]
        self.backstop = float(backstop)
        self.limit = int(limit)
        self.pump = pump == "1"
        self.stopped: str | None = None
        self.child = 0
        self.status: int | None = None
        self.oom_before: int | None = None
        self.wake = -1
        self.sources: dict[int, int] = {}  # the script's pipe -> the container's stream

    def start(self) -> None:
        self.oom_before = cgroup_oom_kills(self.limit)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGUSR1, self.stop_asked)
        signal.signal(signal.SIGALRM, self.stop_backstop)
        self.wake = wake_read
        # Only now: process 1 ignores a signal it has no handler for, and roscoe sends
        # SIGUSR1 once it sees this.
        self.touch("started")
        pipes = [os.pipe(), os.pipe()] if self.pump else []
        self.child = os.fork()
        if self.child == 0:
            self.exec_script(pipes)
        for read_end, write_end in pipes:
            os.close(write_end)
            os.set_blocking(read_end, False)
        self.sources = {read_end: target for (read_end, _), target in zip(pipes, (1, 2))}
        signal.setitimer(signal.ITIMER_REAL, self.backstop)

    def exec_script(self, pipes: list[tuple[int, int]]) -> None:
        try:
            for name in ("SIGPIPE", "SIGXFSZ", "SIGINT", "SIGUSR1", "SIGALRM", "SIGCHLD"):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            if os.getpid() != 1:
                os.setpgid(0, 0)
            for (read_end, write_end), target in zip(pipes, (1, 2)):
                os.dup2(write_end, target)
                os.close(write_end)
                os.close(read_end)
            os.execvp(self.command[0], self.command)
        except BaseException as exc:
            write_all(2, f"roscoe: cannot run {self.command[0]}: {exc}\n".encode())
        os._exit(127)

    def stop_asked(self, *_: object) -> None:
        self.stop("asked")

    def stop_backstop(self, *_: object) -> None:
        self.stop("backstop")

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            try:
                if os.getpid() == 1:  # every other process in the container
                    os.kill(-1, signal.SIGKILL)
                else:  # not a container's first process (its tests): the script's group
                    os.killpg(self.child, signal.SIGKILL)
            except OSError:
                pass

    def run(self) -> None:
        while self.status is None:
            readable = [*self.sources, self.wake]
            try:
                ready = select.select(readable, [], [])[0]
            except InterruptedError:
                ready = []
            for fd in ready:
                if fd == self.wake:
                    self.drain_wake()
                else:
                    self.forward(fd)
            self.reap()
        for fd in list(self.sources):  # what the script wrote before it ended
            while self.forward(fd):
                pass

    def drain_wake(self) -> None:
        try:
            while os.read(self.wake, 512):
                pass
        except OSError:
            pass

    def forward(self, fd: int) -> bool:
        """One chunk from the script's pipe to the container's stream; False at its end."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        if not data:
            del self.sources[fd]
            os.close(fd)
            return False
        write_all(self.sources[fd], data)
        return True

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.child:
                self.status = status

    def finish(self) -> int:
        import resource

        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.stopped is not None:
            self.reap_all()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        status = self.status if self.status is not None else 0
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        after = cgroup_oom_kills(self.limit)
        kills = None
        if self.oom_before is not None and after is not None:
            kills = after - self.oom_before
        fields = [
            ("exit", code),
            ("signal", killed if code is None else None),
            ("user_s", round(used.ru_utime, 3)),
            ("system_s", round(used.ru_stime, 3)),
            ("max_rss_kb", used.ru_maxrss),
            ("oom_kills", kills),
            ("stopped", self.stopped),
        ]
        text = "{" + ", ".join(f'"{k}": {as_json(v)}' for k, v in fields) + "}\n"
        self.write("report.json", text)
        return code if code is not None else 128 + killed

    def reap_all(self) -> None:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
            except InterruptedError:
                continue

    def touch(self, name: str) -> None:
        self.write(name, "")

    def write(self, name: str, text: str) -> None:
        path = os.path.join(self.report_dir, name)
        temp = path + ".tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            try:
                write_all(fd, text.encode())
            finally:
                os.close(fd)
            os.rename(temp, path)
        except OSError:
            pass  # no report: roscoe says null for every figure, and classifies without it


def as_json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def main(argv: list[str]) -> int:
    launcher = Launcher(argv)
    launcher.start()
    launcher.run()
    return launcher.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
