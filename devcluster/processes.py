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


@dataclass
class Process:
    name: str
    pid: int
    log: Path
    exe: str = ""  # the binary, so a recycled pid is never signalled

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
        return cls(name, proc.pid, log, os.path.realpath(argv[0]))

    def _ours(self) -> bool:
        if not self.exe:
            return True
        try:
            return os.path.realpath(f"/proc/{self.pid}/exe") == self.exe
        except OSError:
            return False

    def alive(self) -> bool:
        # Reap it first if it is our child: an exited, unreaped child is gone.
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return self._ours()

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``. Idempotent."""
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
