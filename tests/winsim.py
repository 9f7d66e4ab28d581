"""Run `boton` as on Windows, on Linux (from the portability review's harness): the
POSIX-only stdlib unimportable, `signal` with Windows' signals only, os.open refusing a
folder as Windows' _wopen does, and boton's own Windows switch on (paths.WINDOWS).

    python tests/winsim.py ARGS...   # what `boton ARGS...` does on a technician's Windows laptop

Third-party packages have their own Windows back-ends (serialwin32, msvcrt): they are
imported as on Linux first. Used by tests/test_windows.py."""
import errno
import os
import shutil
import signal
import sys

import click, cryptography, rich.console, serial, serial.tools.list_ports, sqlite3  # noqa: E401,F401

try:
    import esptool, mpremote, mpremote.console, mpremote.main, mpremote.transport_serial  # noqa: E401,F401
except Exception:  # noqa: BLE001 - only imported ahead of the cut
    pass

for m in ("fcntl", "termios", "pwd", "grp", "resource", "tty", "pty"):
    sys.modules[m] = None   # import raises ModuleNotFoundError, as on Windows
WIN_SIGNALS = {"SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV", "SIGTERM", "SIGBREAK"}
for name in list(vars(signal)):
    if name.startswith("SIG") and not name.startswith("SIG_") and name not in WIN_SIGNALS:
        delattr(signal, name)
signal.SIGBREAK = 10  # SIGUSR1 here: Ctrl-Break, sent to the process as a test would
for a in ("setitimer", "alarm", "pause", "siginterrupt", "pthread_kill", "pthread_sigmask", "sigwait"):
    if hasattr(signal, a):
        delattr(signal, a)
for a in ("getuid", "geteuid", "getgid", "fchmod", "fork", "setsid", "killpg", "getpgid", "sync",
          "O_NOFOLLOW", "O_DIRECTORY", "getloadavg"):
    if hasattr(os, a):
        delattr(os, a)
_real_open = os.open


def _win_open(path, flags, mode=0o777, *, dir_fd=None):
    # Windows' _wopen cannot open a folder: EACCES (NicolasLM/bplustree#3)
    if os.path.isdir(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    return _real_open(path, flags, mode)


os.open = _win_open
shutil._use_fd_functions = False   # Windows' rmtree walks by name: it never opens a folder
import boton.paths  # noqa: E402

boton.paths.WINDOWS = True

if __name__ == "__main__":
    from boton.cli import main

    sys.argv[0] = "boton"
    main()
