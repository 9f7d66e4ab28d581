# Persistence on flash: every file is replaced whole (write a temp, rename over), so a
# reset or a flat battery mid-write leaves the old version, never half of the new one.
import json
import os


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def write_json(path, obj):
    write_atomic(path, json.dumps(obj).encode())


def read_json(path, default=None):
    """The decoded file, `default` if it is missing, or raise ValueError if it is corrupt."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError("corrupt " + path)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
