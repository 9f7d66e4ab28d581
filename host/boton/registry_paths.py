"""Where the registry and its key live on the technicians' workstation.

* the registry: `BOTON_REGISTRY`, else `registry.sqlite3` in platformdirs' user data dir
  for "boton-seguro" (Linux: ~/.local/share/boton-seguro/); on a local disk (WAL mode).
* the key file: `BOTON_KEY_FILE`, else `registry.key` in the user config dir
  (~/.config/boton-seguro/ on Linux).
"""
import os
from pathlib import Path

import platformdirs

from . import paths
from .errors import RegistryError

APP = "boton-seguro"
DB_NAME = "registry.sqlite3"
KEY_NAME = "registry.key"


def expand_home(text, what) -> Path:
    """Path(text) with a leading ~ or ~user expanded; RegistryError naming `what` (the
    variable or option it came from) when there is no such home folder."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = str(text)[1:].split("/", 1)[0]
        who = f"user {user!r}" if user else "this user"
        raise RegistryError(f"{what} {text}: there is no home folder of {who} to put for "
                            f"~{user}; give the path in full") from None


def default_path() -> Path:
    env = os.environ.get("BOTON_REGISTRY")
    if env:
        return expand_home(env, "BOTON_REGISTRY")
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / DB_NAME


def registry_file(path=None) -> Path:
    """The registry's path: `path` (--registry) or default_path()."""
    return expand_home(path, "registry file (--registry or BOTON_REGISTRY)") if path else default_path()


def default_key_file() -> Path:
    env = os.environ.get("BOTON_KEY_FILE")
    if env:
        return expand_home(env, "BOTON_KEY_FILE")
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / KEY_NAME


def exposed_on_windows(path) -> str | None:
    """On Windows, why a file of hers at `path` is open to this PC's other accounts: no file
    there has an owner-only mode (chmod 0600 does nothing, every file reads 0666), and what
    keeps it private is the user's profile folder (the defaults are in it, under
    %LOCALAPPDATA%). None elsewhere, or inside the profile."""
    if not paths.WINDOWS:
        return None
    home = os.path.normcase(os.path.abspath(Path.home()))
    if os.path.normcase(os.path.abspath(path)).startswith(home.rstrip(os.sep) + os.sep):
        return None
    return (f"{path} is outside your user profile ({Path.home()}): on Windows no file mode keeps "
            "this PC's other accounts, or whoever holds that drive, from reading it (the "
            "defaults, under %LOCALAPPDATA%, are in the profile)")


def witness_path(path) -> Path:
    """The small file beside a registry that says one was created there (Registry._witness)."""
    path = Path(path)
    return path.with_name(f".{path.name}.created")


def registry_exists(path=None) -> bool:
    """Whether a registry is, or was (its witness is left), at `path` (default: where the
    registry lives): asked by commands that must not create one as a side effect."""
    path = registry_file(path)
    return path.exists() or witness_path(path).exists()


def folder_error(e) -> str:
    """What an OSError from making a file's folder means, in a few words (mkdir says "File
    exists" when a file has the folder's name)."""
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        return "a file is in the way"
    return e.strerror or str(e)


def remove_db_files(path) -> None:
    """Remove a scratch SQLite database and the files SQLite may have left beside it
    (WAL, shared memory, rollback journal); those already gone are fine."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass
