"""Lay firmware and config straight into a virtual device's flash folder.

This is the virtual twin of a factory image: tests that are about the alert (not about
deploying) start from a provisioned device in milliseconds instead of a serial upload.
"""
import json
import shutil
from pathlib import Path

from ..release import firmware_files
from ..rules import CONFIG_PATH, config_bytes


def install(flash_dir, board="tcall_sim800l_axp192", config=None, frozen=False):
    """What `boton deploy` leaves on a board (frozen=True: on one whose image has this
    release frozen in, so no lib/), plus her config if given."""
    flash = Path(flash_dir)
    flash.mkdir(parents=True, exist_ok=True)
    for path, data in firmware_files(board, frozen=frozen):
        dest = flash / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    if config is not None:
        (flash / CONFIG_PATH).write_bytes(config_bytes(config))
    return flash


def wipe(flash_dir):
    shutil.rmtree(flash_dir, ignore_errors=True)


def read_json(flash_dir, name):
    p = Path(flash_dir) / name
    return json.loads(p.read_text()) if p.exists() else None
