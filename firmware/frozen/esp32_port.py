# Manifest, not a frozen module: the ESP32 port's own boards/manifest.py, run as it is,
# except that its freeze() of the port's modules leaves _boot.py out: firmware/manifest.py
# freezes ours under that name. (One name frozen twice compiles to one .mpy, and which of
# the two files it is would be left to their timestamps.)
# port: the port's folder, ports/esp32 of the MicroPython checkout (boton.frozen passes it).
import os

options.defaults(port="")
if not options.port:
    raise ValueError("port=: the ESP32 port's folder (boton.frozen.esp32_image passes it)")
PORT = options.port
MPY = os.path.dirname(os.path.dirname(PORT))
port_freeze = freeze
replaced = []


def freeze_but_boot(path, script=None, opt=None):
    """freeze() for the port's manifest: a whole folder holding _boot.py, less that file."""
    top = path.replace("$(PORT_DIR)", PORT).replace("$(MPY_DIR)", MPY)
    if script is None and os.path.isfile(os.path.join(top, "_boot.py")):
        script = []
        for folder, _, names in os.walk(top, followlinks=True):
            for n in names:
                rel = os.path.relpath(os.path.join(folder, n), top)
                if n.endswith((".py", ".mpy")) and rel != "_boot.py":
                    script.append(rel)
        script.sort()
        replaced.append(top)
    port_freeze(path, script, opt)


with open(os.path.join(PORT, "boards", "manifest.py")) as f:
    exec(f.read(), dict(globals(), freeze=freeze_but_boot))
if not replaced:
    raise ValueError("the port's manifest froze no folder with a _boot.py for ours to replace")
