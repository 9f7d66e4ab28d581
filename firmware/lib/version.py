# The firmware release: its own module, so that the service calls (service.py) can report
# it without importing the whole firmware (app) into the heap the modem check needs.
VERSION = "0.1.0"


def build():
    """VERSION+<12 hex of the content frozen into this image> on a release image, so that
    the boot log and `boton status` tell one release from the next (VERSION alone is the
    same in all of them); VERSION alone for .mpy files (development)."""
    try:
        from boton_frozen import CONTENT_SHA256
    except ImportError:
        return VERSION
    return VERSION + "+" + CONTENT_SHA256[:12]
