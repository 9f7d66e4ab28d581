"""The release: the files `deploy` puts on a board and the one hash the registry records
for them (pure: built from the repository, no device)."""
import json

from . import build
from .boards import board_file, board_names
from .rules import device_json

BOARD_PATH = "board.json"


# A profile's documentation, which stays in boards/: neither the firmware nor the host
# reads it from a device, and the firmware keeps board.json on its heap.
BOARD_DOC_KEYS = ("name", "notes")


def board_json(board: str) -> bytes:
    """board.json as deploy writes it: the profile without BOARD_DOC_KEYS, compact."""
    profile = json.loads(board_file(board).read_text())
    for key in BOARD_DOC_KEYS:
        profile.pop(key, None)
    return device_json(json.dumps(profile, separators=(",", ":")).encode(),
                       f"the board profile {board} (board.json)", "shorten the profile")


def firmware_files(board: str, mpy=True, frozen=False):
    """(device path, bytes) of everything `deploy` puts on a board: the flash root (boot.py,
    main.py, bootcheck.mpy, safe.mpy, board.json) and lib/*.mpy, unless the board's image
    has the firmware frozen in (frozen=True: what a frozen-mode deploy leaves)."""
    files = [f for f in build.firmware_modules(mpy) if not (frozen and f[0].startswith("lib/"))]
    files.append((BOARD_PATH, board_json(board)))
    return files


def release_hash(board: str, mpy=True) -> str:
    """One hash for everything deploy puts on a board: what the registry records."""
    return build.files_digest(firmware_files(board, mpy))


def firmware_state(firmware_hash, board, current: dict) -> str | None:
    """"this release" or "another release" for the firmware hash the registry recorded
    (None: none recorded). current: board_names() -> release_hash; the board's own if the
    registry knows the board, else any of them."""
    if not firmware_hash:
        return None
    ours = {current[board]} if board in current else set(current.values())
    return "this release" if firmware_hash in ours else "another release"
