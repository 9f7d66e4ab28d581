# The hardware layer: the firmware talks to these names only. On an ESP32 they are
# machine's own; on the virtual device they are sockets to the rig. One import decides.
import sys

if sys.platform == "esp32":
    from hw_esp32 import *  # noqa: F401,F403
else:
    from hw_sim import *  # noqa: F401,F403
