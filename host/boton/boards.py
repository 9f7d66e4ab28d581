"""Board profiles (boards/*.json): by name, or a path to a profile of one's own."""
import json
from pathlib import Path

from .device import EXIT_USAGE, DeviceError
from .paths import BOARDS


def board_file(board: str) -> Path:
    path = Path(board) if str(board).endswith(".json") else BOARDS / f"{board}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        raise DeviceError(f"unknown board {board!r} (known: {known})", EXIT_USAGE)
    return path


def load_board(board: str) -> dict:
    try:
        return json.loads(board_file(board).read_text())
    except ValueError as e:
        raise DeviceError(f"board profile {board!r} is not valid JSON: {e}", EXIT_USAGE) from None
