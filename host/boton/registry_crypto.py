"""The registry key and what it protects: Fernet tokens for case data (bound to the
device's MAC), keyed HMAC digests for the uniqueness index, the audit chain's keys, and
the key's fingerprint. The key never enters the database (docs/registry.md).

The key file holds the key itself (44 characters) or, protected by a passphrase, the key
encrypted under a key derived from it with scrypt (`WRAP_FORMAT`): a copy of the user's
files (a lost laptop, a backup of the home folder) then does not open her case data."""
import base64
import hashlib
import hmac
import itertools
import json
import os
import stat
import unicodedata
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from . import paths
from . import registry_audit as RA
from .errors import (EXIT_VERIFY, InputError, MissingKeyError, PassphraseError, RegistryConflict,
                     RegistryError, RegistryKeyError)
from .registry_casedata import CaseData
from .registry_paths import KEY_NAME, default_key_file, expand_home, folder_error


PASSPHRASE_ENV = "BOTON_KEY_PASSPHRASE"          # unlocks a protected key file without a prompt
NEW_PASSPHRASE_ENV = "BOTON_KEY_NEW_PASSPHRASE"  # the passphrase init-key / key-passphrase set
WRAP_FORMAT = "boton-registry-key/scrypt-fernet/v1"
# scrypt's cost (OWASP's recommendation for scrypt: N=2^17, r=8, p=1): 128 MB and about half a
# second per unlock on a laptop, so each guess at a copied key file costs the same.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 17, 8, 1
MIN_PASSPHRASE = 10
PROMPT_TRIES = 3

# How a passphrase that PASSPHRASE_ENV does not give is asked for: prompt(path, attempt) ->
# str (attempt > 0: the one before was wrong), or None where it cannot be asked (no
# terminal). The command line installs one; without it (a library) a protected key file is
# refused with a message saying how to give it.
passphrase_prompt = None
_unlocked = {}   # (path, file content) -> key text: one command asks, and pays scrypt, once


def _parse_key(text, source):
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            text = ""
    text = str(text).strip()
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii")) if len(text) == 44 else b""
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise RegistryKeyError(f"{source} is not a registry key: expected 44 characters of "
                               "url-safe base64 (as written by `boton registry init-key`)")
    return text, raw


def load_key(key=None):
    """(key text, 32 raw bytes, where it came from); RegistryKeyError if none or malformed."""
    if key is not None:
        return (*_parse_key(key, "the given key"), "the given key")
    env = os.environ.get("BOTON_KEY")
    if env:
        return (*_parse_key(env, "BOTON_KEY"), "BOTON_KEY")
    return read_key_file(default_key_file())


def read_key_file(path):
    """load_key for the key file at `path` (unlocked with its passphrase if it has one)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        # a registry that already holds case data says otherwise (missing_key_error)
        raise MissingKeyError(f"no registry key: case data needs one. Create it once with "
                              f"`boton registry init-key` (writes {path}) and back it up, or "
                              "set BOTON_KEY", path) from None
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RegistryKeyError(f"key file {path} is a folder, not a key file: set BOTON_KEY_FILE to "
                               f"the key file itself (e.g. {path / KEY_NAME})")
    if not stat.S_ISREG(st.st_mode):   # a FIFO blocked the read for good, a device read forever
        raise RegistryKeyError(f"key file {path} is not a regular file")
    if not paths.WINDOWS and st.st_mode & 0o077:   # Windows has no such modes: every file reads 0666
        raise RegistryKeyError(f"key file {path} is readable by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}): run chmod 600 {path}")
    try:
        text = path.read_text("ascii", errors="replace")
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    if is_wrapped(text):
        return (*_parse_key(_unwrap(text, path), f"key file {path}"),
                f"key file {path} (passphrase)")
    return (*_parse_key(text, f"key file {path}"), f"key file {path}")


def missing_key_error(fingerprint, path, what="this registry's") -> MissingKeyError:
    """No key where one is looked for, for a registry (or backup) whose case data is already
    encrypted with the key `fingerprint`: only that key opens it, so the office's key file
    goes in place from its backup; a new key (`init-key`) would only stand in its way."""
    return MissingKeyError(f"no registry key at {path}: {what} case data and audit trail are locked "
                           f"with key {fingerprint}, which no new key can open. Install the office's key file "
                           f"from its backup (the USB stick in the office safe) at {path}, mode 0600, "
                           "or set BOTON_KEY to that key", path)


def is_wrapped(text) -> bool:
    """Whether a key file's text is a key protected by a passphrase."""
    return str(text).lstrip().startswith("{")


def check_passphrase(passphrase, source="the passphrase"):
    """InputError unless it is long enough to stand a guess per half-second for years."""
    if not isinstance(passphrase, str) or len(passphrase.strip()) < MIN_PASSPHRASE:
        raise InputError(f"{source} is too short: give at least {MIN_PASSPHRASE} characters (a few "
                         "words are easier to remember than symbols)")
    return passphrase


def _kek(passphrase, salt, n, r, p):
    # surrogateescape: an environment variable that is not UTF-8 arrives so, and wraps as it
    # unwraps
    raw = passphrase.encode("utf-8", "surrogateescape")
    key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(raw)
    return Fernet(base64.urlsafe_b64encode(key))


def wrap_key(text, passphrase) -> str:
    """The key file's content for key `text` protected by `passphrase`."""
    text, _ = _parse_key(text, "the key")
    check_passphrase(passphrase)
    salt = os.urandom(16)
    token = _kek(unicodedata.normalize("NFC", passphrase), salt, SCRYPT_N, SCRYPT_R,
                 SCRYPT_P).encrypt(text.encode())
    return json.dumps({"format": WRAP_FORMAT, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R,
                       "p": SCRYPT_P, "salt": base64.b64encode(salt).decode(),
                       "key": token.decode()}) + "\n"


def _scrypt_cost_ok(n, r, p):
    """JSON integers within bounds: a damaged or planted file must not make scrypt ask for
    gigabytes (nor a float reach it)."""
    return (all(type(v) is int for v in (n, r, p)) and 2 ** 14 <= n <= 2 ** 20
            and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4)


def _forms(passphrase):
    """The passphrase as typed, then its other Unicode forms: "ñ" is one code point on most
    keyboards and two (n + tilde) on others, and a key is wrapped with NFC now but was
    wrapped with the bytes as typed before. Only a passphrase with such letters costs more
    than one try."""
    forms = [passphrase]
    for norm in ("NFC", "NFD"):
        other = unicodedata.normalize(norm, passphrase)
        if other not in forms:
            forms.append(other)
    return forms


def _unwrap(text, path):
    """The key text inside a protected key file, with the passphrase from PASSPHRASE_ENV or
    the prompt (PROMPT_TRIES tries); PassphraseError if none opens it, RegistryKeyError if
    the file is damaged."""
    cached = _unlocked.get((str(path), text))
    if cached:
        return cached
    try:
        d = json.loads(text)
        if d.get("format") != WRAP_FORMAT or d.get("kdf") != "scrypt":
            raise ValueError
        n, r, p = (d[k] for k in ("n", "r", "p"))
        if not _scrypt_cost_ok(n, r, p):
            raise ValueError
        salt = base64.b64decode(d["salt"], validate=True)
        token = d["key"].encode("ascii")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeEncodeError, RecursionError):
        raise RegistryKeyError(f"key file {path} is damaged: it is neither a key nor a key "
                               "protected by a passphrase; use the key's backup") from None
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        tries = [env]
    elif passphrase_prompt is not None and (first := passphrase_prompt(path, 0)) is not None:
        # asked again only after a wrong one
        tries = itertools.chain([first], (passphrase_prompt(path, i) for i in range(1, PROMPT_TRIES)))
    else:
        raise PassphraseError(f"key file {path} is protected by a passphrase: type it at the "
                               f"prompt (run on a terminal), or set {PASSPHRASE_ENV}")
    for passphrase in tries:
        for form in _forms(str(passphrase)):
            try:
                key = _kek(form, salt, n, r, p).decrypt(token).decode("ascii")
            except (InvalidToken, UnicodeDecodeError):
                continue
            _unlocked[(str(path), text)] = key
            return key
    where = PASSPHRASE_ENV if env is not None else "the prompt"
    raise PassphraseError(f"wrong passphrase for key file {path} (from {where}); the key file "
                           "itself is unchanged")


def create_key_file(path=None, passphrase=None) -> Path:
    """Write a new random key with mode 0600, protected by `passphrase` if given; never
    overwrites. Returns the path."""
    key = Fernet.generate_key().decode()
    content = wrap_key(key, passphrase) if passphrase is not None else key + "\n"
    path = expand_home(path, "--key-file") if path else default_key_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise RegistryError(f"cannot create the folder of key file {path}: {folder_error(e)}; choose a "
                            "folder you may write to (--key-file or BOTON_KEY_FILE)") from None
    if path.exists():   # said before writing anything; _write_key_file checks again, atomically
        raise _key_exists(path)
    try:
        placed = _write_key_file(path, content, replace=False)
    except OSError as e:
        raise RegistryError(f"cannot create key file {path}: {e.strerror or e}; nothing was written "
                            "(choose a folder you may write to: --key-file or BOTON_KEY_FILE)") from None
    if not placed:
        raise _key_exists(path)
    return path


def _key_exists(path):
    return RegistryConflict(f"key file {path} already exists; refusing to overwrite it (the "
                            "case data encrypted with it would become unreadable)")


def _write_key_file(path, content, replace):
    """The key file whole or not at all: written under a temporary name (mode 0600 from
    creation), synced, then renamed over it (replace) or linked into place only if no file
    is there (False if one is). Never an empty or half-written key at `path`: a key lost
    that way makes every case unreadable. OSError is left to the caller; the temporary
    file is removed whatever happens."""
    from .safe_write import place_new

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            placed = True
        else:
            placed = place_new(tmp, path)
        if placed and not paths.WINDOWS:   # the new name survives a power cut (Windows opens no folder)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return placed
    finally:
        tmp.unlink(missing_ok=True)


def rewrap_key_file(path=None, passphrase=None) -> Path:
    """Protect the key file's key with `passphrase` (None: no passphrase), unlocking it
    first. The key itself is unchanged, so the registry and its backups open as before.
    The new file is written beside the old one and renamed over it."""
    path = expand_home(path, "--key-file") if path else default_key_file()
    text, _, _ = read_key_file(path)
    content = wrap_key(text, passphrase) if passphrase is not None else text + "\n"
    # not safe_write.write_file: it refuses the key file on purpose (exports must never hit it)
    try:
        _write_key_file(path, content, replace=True)
    except OSError as e:
        raise RegistryError(f"cannot rewrite key file {path}: {e.strerror or e}; it is "
                            "unchanged") from None
    return path


class CaseCipher:
    """Fernet for the case tokens, HMAC digests for the uniqueness index, a fingerprint."""

    def __init__(self, key=None):
        text, raw, self.source = load_key(key)
        self._fernet = Fernet(text.encode())
        self._index_key = _hkdf(raw, b"boton-seguro/index/v1")
        self.audit_key = _hkdf(raw, RA.AUDIT_INFO)
        self.anchor_key = _hkdf(raw, RA.ANCHOR_INFO)
        self.fingerprint = hmac.new(_hkdf(raw, b"boton-seguro/fingerprint/v1"), b"registry key",
                                    hashlib.sha256).hexdigest()[:16]

    def __repr__(self):
        return f"<registry key {self.fingerprint} from {self.source}>"

    def digest(self, kind, value):
        return hmac.new(self._index_key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()

    def seal(self, mac, case: CaseData) -> bytes:
        body = {"v": 1, "mac": mac, **case.to_dict()}
        return self._fernet.encrypt(json.dumps(body, ensure_ascii=False).encode())

    def open(self, mac, token) -> CaseData:
        try:
            body = json.loads(self._fernet.decrypt(bytes(token)))
        except (InvalidToken, ValueError, TypeError):
            # the key is this registry's (Registry.cipher checks its fingerprint first): the
            # stored case is what is damaged
            raise RegistryError(f"the case data stored for {mac} is damaged: it does not decrypt "
                                f"with this registry's key (from {self.source}); restore the "
                                "registry from a backup (boton registry restore)", EXIT_VERIFY) from None
        if body.get("mac") != mac:
            raise RegistryError(f"the case data stored for {mac} belongs to another device: "
                                "the registry was tampered with")
        try:
            return CaseData.stored(body)
        except RegistryError:
            raise RegistryError(f"the case data stored for {mac} no longer validates") from None


def _hkdf(raw, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)
