"""Where the registry and its key live on the technicians' workstation.

* the registry: `BOTON_REGISTRY`, else `registry.sqlite3` in platformdirs' user data dir
  for "boton-seguro" (Linux: ~/.local/share/boton-seguro/); on a local disk (WAL mode).
* the key file: `BOTON_KEY_FILE`, else `registry.key` in the user config dir
  (~/.config/boton-seguro/ on Linux).
"""
import os
from pathlib import Path

import platformdirs

APP = "boton-seguro"
DB_NAME = "registry.sqlite3"
KEY_NAME = "registry.key"


def default_path() -> Path:
    env = os.environ.get("BOTON_REGISTRY")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / DB_NAME


def default_key_file() -> Path:
    env = os.environ.get("BOTON_KEY_FILE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / KEY_NAME


def witness_path(path) -> Path:
    """The small file beside a registry that says one was created there (Registry._witness)."""
    path = Path(path)
    return path.with_name(f".{path.name}.created")


def registry_exists(path=None) -> bool:
    """Whether a registry is, or was (its witness is left), at `path` (default: where the
    registry lives): asked by commands that must not create one as a side effect."""
    path = Path(path) if path else default_path()
    return path.exists() or witness_path(path).exists()


def remove_db_files(path) -> None:
    """Remove a scratch SQLite database and the files SQLite may have left beside it
    (WAL, shared memory, rollback journal); those already gone are fine."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass
