"""What a wipe must not lose if it is cut short between the erase and the end (a cable
pulled, a Ctrl-C, a power cut): the board profile's name (to reinstall the firmware) and,
with --keep-log, the event log's segments, the only record on the button of her alerts.
Saved on this computer, private (0600), beside the registry, before the erase; removed
once the wipe has put them back. The next wipe of the same button finds them.
The log holds no names, numbers or positions (firmware/lib/eventlog.py)."""
import base64
import json

from .registry_paths import registry_file
from .safe_write import write_file


def path_for(mac):
    """Where this button's copy goes, or None where there is no registry's folder (a
    mistyped BOTON_REGISTRY must not make one: the next command would use it)."""
    folder = registry_file().parent
    if not folder.is_dir():
        return None
    return folder / "wipe-kept" / (mac.replace(":", "").lower() + ".json")


def load(path):
    """(board id or None, {segment name: bytes}) from an earlier wipe cut short, or None."""
    try:
        data = json.loads(path.read_text())
        logs = {str(k): base64.b64decode(v) for k, v in (data.get("logs") or {}).items()}
        return data.get("board"), logs
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # damaged: as none (this wipe's own copy replaces it)


def save(path, board, logs):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"board": board, "logs": {k: base64.b64encode(v).decode() for k, v in logs.items()}}
    write_file(path, json.dumps(body).encode(), force=True, private=True, what="the wipe's spare copy")


def remove(path):
    path.unlink(missing_ok=True)
