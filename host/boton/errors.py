"""Exit codes and the error classes every `boton` module raises (no transport, no I/O).

A command fails with one of these: a one-line reason and an exit code by kind, so the CLI
never shows a traceback to a technician and scripts can tell the kinds apart. The codes
are part of the CLI's interface (docs/cli.md, scripts in the field): never renumber them.
"""

EXIT_OK = 0
EXIT_USAGE = 2      # bad input: a typo, a malformed number, a missing option
EXIT_CONNECT = 3    # no board answers on the port, or it went away
EXIT_DEVICE = 4     # the board answered with an error
EXIT_VERIFY = 5     # what was written does not read back the same; a registry file, backup
                    # or audit trail that is empty, foreign or damaged: investigate, not a typo
EXIT_TEST = 6       # the test call (C4 and the trusted contacts) failed
EXIT_CONFLICT = 7   # a well-formed request that the registry's contents refuse (duplicate,
                    # wrong state, number already on an active case, registry busy)
EXIT_ATTENTION = 8  # `boton reports`: one or more delivered buttons need a visit (no recent
                    # daily report, low battery, GPS not responding, no voice, a restart, alerts)
EXIT_INTERRUPTED = 130  # Ctrl-C: the step under way was cut short (the shell's 128 + SIGINT)


# What to do when the OS refuses a serial port (EACCES): flash, and every command on the REPL.
PORT_PERMISSION_HINT = ("no permission to open the port: add yourself to the dialout group "
                        "(sudo usermod -aG dialout $USER) and log in again")


class DeviceError(Exception):
    """The base of every `boton` failure: a one-line message and its exit code."""

    def __init__(self, message, exit_code=EXIT_DEVICE):
        super().__init__(message)
        self.exit_code = exit_code


class InputError(DeviceError):
    """Bad input from the technician (exit code 2), nothing changed."""

    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


class RegistryError(DeviceError):
    """Bad input for the registry: a one-line reason, exit code 2 unless told, nothing changed."""

    def __init__(self, message, exit_code=EXIT_USAGE):
        super().__init__(message, exit_code)


class RegistryConflict(RegistryError):
    """The request is well formed but the registry's contents refuse it (exit code 7)."""

    def __init__(self, message):
        super().__init__(message, EXIT_CONFLICT)


class RegistryKeyError(RegistryError):
    """The key is missing, malformed or not the one the case data was encrypted with."""


class MissingKeyError(RegistryKeyError):
    """No key at all: no BOTON_KEY and no key file at `path` (where it is looked for)."""

    def __init__(self, message, path):
        super().__init__(message)
        self.path = path


class PassphraseError(RegistryKeyError):
    """The key file has a passphrase that was not given, or not rightly: unlike a missing
    key, the technician can fix it at once, so nothing that would read her case goes on
    without it (a wipe would search the flash for less)."""
