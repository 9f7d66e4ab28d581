"""The registry key and what it protects: Fernet tokens for case data (bound to the
device's MAC), keyed HMAC digests for the uniqueness index, the audit chain's keys, and
the key's fingerprint. The key never enters the database (docs/registry.md)."""
import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import registry_audit as RA
from .errors import RegistryConflict, RegistryError, RegistryKeyError
from .registry_casedata import CaseData
from .registry_paths import KEY_NAME, default_key_file, expand_home


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
    path = default_key_file()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RegistryKeyError(f"no registry key: case data needs one. Create it once with "
                               f"`boton registry init-key` (writes {path}) and back it up, or "
                               "set BOTON_KEY") from None
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise RegistryKeyError(f"key file {path} is a folder, not a key file: set BOTON_KEY_FILE to "
                               f"the key file itself (e.g. {path / KEY_NAME})")
    if os.name == "posix" and st.st_mode & 0o077:
        raise RegistryKeyError(f"key file {path} is readable by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}): run chmod 600 {path}")
    try:
        text = path.read_text("ascii", errors="replace")
    except OSError as e:
        raise RegistryKeyError(f"cannot read key file {path}: {e.strerror}") from None
    return (*_parse_key(text, f"key file {path}"), f"key file {path}")


def create_key_file(path=None) -> Path:
    """Write a new random key with mode 0600; never overwrites. Returns the path."""
    path = expand_home(path, "--key-file") if path else default_key_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        why = "a file is in the way" if isinstance(e, FileExistsError) else (e.strerror or str(e))
        raise RegistryError(f"cannot create the folder of key file {path}: {why}; choose a folder you "
                            "may write to (--key-file or BOTON_KEY_FILE)") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise RegistryConflict(f"key file {path} already exists; refusing to overwrite it (the "
                               "case data encrypted with it would become unreadable)") from None
    except OSError as e:
        raise RegistryError(f"cannot create key file {path}: {e.strerror or e}; choose a folder you "
                            "may write to (--key-file or BOTON_KEY_FILE)") from None
    with os.fdopen(fd, "w") as f:
        f.write(Fernet.generate_key().decode() + "\n")
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
        except (InvalidToken, ValueError):
            raise RegistryKeyError(f"cannot decrypt the case data of {mac}: wrong BOTON_KEY or "
                                   f"key file? (using the key from {self.source})") from None
        if body.get("mac") != mac:
            raise RegistryError(f"the case data stored for {mac} belongs to another device: "
                                "the registry was tampered with")
        try:
            return CaseData.stored(body)
        except RegistryError:
            raise RegistryError(f"the case data stored for {mac} no longer validates") from None


def _hkdf(raw, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)
