"""Writing an export or a factory image without destroying another file.

`boton devices export FILE` and `boton image -o FILE` write files of the technician's
choosing. A mistyped or tab-completed path must not cost the programme its registry:

* the file's folder must exist and be writable: checked with the rest before anything is
  recorded (`image` records the button as provisioning before it writes);
* an existing file is replaced only when asked (`--force`); otherwise refused, exit 7
  (as `boton registry backup` refuses an existing file);
* never, even with `--force` (exit 2): anything but a regular file (a device node, a named
  pipe, a folder: replacing it, or opening it to look inside, is never meant), the
  registry, the files SQLite keeps beside it (-wal, -shm, -journal), its witness, a copy
  `restore` kept (`.bak-...`), the registry key file, any SQLite database (a registry
  backup, wherever it is) or a file holding a registry key;
* the data goes to a temporary file that is renamed into place whole; whatever stops the
  write (an error, Ctrl-C) removes the temporary file, which may hold her data.
"""
import base64
import errno
import os
import stat
from pathlib import Path

from .errors import InputError, RegistryConflict
from .registry_paths import default_key_file, default_path, expand_home

SQLITE_HEADER = b"SQLite format 3\x00"
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}


def _forms(path):
    """The path as given (made absolute) and with every symlink followed."""
    p = expand_home(path, "the path")
    return {Path(os.path.abspath(p)), p.resolve()}


def _registry_prefixes(name):
    """Names beside the registry that are its: SQLite's -wal, -shm, -journal (and -mj...),
    a copy kept by restore (.bak-<time>), boton's hidden witness and scratch files."""
    return (f"{name}-", f"{name}.bak-", f".{name}.")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def protected(target, registry=None):
    """Why `target` may never be written over, even with --force; None if it may."""
    registry = expand_home(registry, "the path") if registry else default_path()
    key_file = default_key_file()
    what = (f"the registry {registry} or a file SQLite or boton keeps with it (all devices, her "
            "case data and the audit trail)")
    key = f"the registry key file {key_file} (without it her case data cannot be read)"
    for t in _forms(target):
        for r in _forms(registry):
            if t.parent == r.parent and (t.name == r.name or t.name.startswith(_registry_prefixes(r.name))):
                return what
        if t in _forms(key_file):
            return key
    target = expand_home(target, "the path")
    try:
        st = os.stat(target)
    except OSError:
        return None                   # nothing there, or out of reach: the folder check says why
    if not stat.S_ISREG(st.st_mode):  # a pipe would block the look inside below; a device or a
        return "not a regular file (a device, a pipe or a folder)"   # pipe is no file to replace
    if _same_file(target, registry) or _same_file(target, f"{registry}-wal"):
        return what
    if _same_file(target, key_file):
        return key
    try:
        with open(target, "rb") as f:
            head = f.read(100)
    except OSError:
        return None                   # unreadable: writing over it will say why, or --force decides
    if head.startswith(SQLITE_HEADER):
        return "an SQLite database (a registry or a backup of one?)"
    text = head.strip()
    if text.startswith(b'{"format": "boton-registry-key/'):
        return "a registry key protected by a passphrase (without it her case data cannot be read)"
    if len(text) == 44:
        try:
            if len(base64.urlsafe_b64decode(text)) == 32:
                return "a registry key (without it her case data cannot be read)"
        except ValueError:
            pass
    return None


def check_target(target, force=False, registry=None, what="the file"):
    """Refuse a target that must not or cannot be written: InputError (exit 2) if its
    folder is missing or not writable, or it is protected (whatever --force says);
    RegistryConflict (exit 7) if it exists and force is not set. Callers check before
    they record anything (`image` records the button as provisioning before it writes)."""
    target = expand_home(target, "the path")
    why = protected(target, registry)
    if why:
        raise InputError(f"refusing to write {what} to {target}: it is {why}; choose another file "
                         "name (--force never allows this)")
    why = _folder_problem(target.parent)
    if why:
        raise InputError(f"cannot write {what} to {target}: {why}")
    if not force and os.path.lexists(target):
        raise RegistryConflict(f"{target} already exists; refusing to write {what} over it "
                               "(give --force to replace it)")


def _folder_problem(folder):
    """Why no file can be made in `folder` (None: it can)."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return f"there is no folder {folder}"
    except OSError as e:
        return f"{folder}: {e.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"you may not write in {folder}"
    return None


def write_file(target, data: bytes, *, force=False, private=False, registry=None, what="the file",
               tmp=None):
    """Write `data` to `target` whole (a temporary file renamed into place), after
    check_target. private: mode 0600 from creation. tmp: the temporary file's name (a
    leftover of an interrupted earlier run is removed first); default a hidden name with
    this process's id. An OSError is left to the caller; the temporary file is removed
    whatever happens (an error, Ctrl-C)."""
    target = expand_home(target, "the path")
    check_target(target, force, registry, what)
    if tmp is None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    else:
        tmp = Path(tmp)
        if protected(tmp, registry):
            raise InputError(f"refusing to write {what} to {target}: its temporary file {tmp} "
                             "would be a file that must not be replaced; choose another file name")
        tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if private:
            os.chmod(tmp, 0o600)
        if force:
            os.replace(tmp, target)
        else:
            _link_new(tmp, target, what)
    finally:
        try:
            tmp.unlink()                       # gone after a rename; after a link, the spare name
        except FileNotFoundError:
            pass


def place_new(tmp, target) -> bool:
    """tmp becomes target only if target does not exist (a hard link never replaces a file
    that appeared meanwhile); on a filesystem without hard links (FAT: a USB stick), a
    rename after a last look. False if target exists (tmp is left as it was)."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
    if os.path.lexists(target):
        return False
    os.replace(tmp, target)
    return True


def _link_new(tmp, target, what):
    if not place_new(tmp, target):
        raise RegistryConflict(f"{target} already exists; refusing to write {what} over it "
                               "(give --force to replace it)")
