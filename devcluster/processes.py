"""The control plane's child processes: spawned in their own process groups,
stopped with SIGTERM then SIGKILL, never left behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child, where dlopen could wait on a lock that
# another thread of the parent held at fork time.
_libc = ctypes.CDLL(None, use_errno=True)


def free_port() -> int:
    """A loopback port free right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel kills it when the process that
    # started it dies, even by SIGKILL, where atexit hooks never run. SIGKILL,
    # not SIGTERM: kube-apiserver can hang in its graceful shutdown when etcd
    # goes at the same moment, and a throwaway cluster has nothing to save.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _proc_status(pid: int) -> dict[str, str] | None:
    """/proc/PID/status as a dict, or None once the pid is reaped."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def start_ticks(pid: int) -> int | None:
    """When the pid started (clock ticks since boot): with the pid, a process's
    identity that a recycled pid cannot share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, after the comm


def exited(pid: int) -> bool:
    """True once every thread of ``pid`` is gone: it is reaped, or a zombie
    whose last thread has finished (its sockets and files are closed then).
    /proc/PID/exe vanishes earlier, while a Go binary's threads still run."""
    status = _proc_status(pid)
    if status is None:
        return True
    return status.get("State", "").startswith(("Z", "X")) and status.get("Threads", "1") == "1"


@dataclass
class Process:
    name: str
    pid: int
    log: Path
    exe: str = ""  # the binary, for messages and state files written before `started`
    #: start time of the pid (:func:`start_ticks`), so a recycled pid is never signalled
    started: int | None = None

    @classmethod
    def spawn(cls, name: str, argv: list[str], log: Path, *, cwd: Path,
              detach: bool = False) -> Process:
        """Start ``argv`` in a new session (its own process group), output to
        ``log``. Unless ``detach``, it dies with this process."""
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=cwd, preexec_fn=None if detach else _die_with_parent)
        # We reap it ourselves (alive()): keep Popen from warning about, or
        # reaping, a child it thinks it still owns.
        proc.returncode = 0
        return cls(name, proc.pid, log, os.path.realpath(argv[0]), start_ticks(proc.pid))

    def _ours(self) -> bool:
        if self.started is not None:
            return start_ticks(self.pid) == self.started
        if not self.exe:
            return True
        try:
            return os.path.realpath(f"/proc/{self.pid}/exe") == self.exe
        except OSError:  # no exe link: exiting, or not ours to read
            return not exited(self.pid)

    def alive(self) -> bool:
        """Until every thread has exited (a zombie whose threads are done counts
        as exited: its parent, not us, may be the one to reap it)."""
        # Reap it first if it is our child: an exited, unreaped child is gone.
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                return False
        return not exited(self.pid) and self._ours()

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; returns once
        the process has exited. Idempotent."""
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            self._kill_group(sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.05)

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
