# Runs at every boot after boot.py: the panic button's firmware. If it cannot start (a
# module missing, corrupt or too big for the heap; no usable board profile), safe.py runs
# instead: the button still calls C4.
import sys

try:
    import safe
except Exception as e:  # safe mode itself is damaged: start the firmware as before
    sys.print_exception(e)
    why = None
else:
    why = safe.check()  # imports the firmware
    if why is None:
        del sys.modules["safe"], safe  # its heap goes back to the firmware
if why is None:
    import app

    app.main()  # runs forever; a crash is logged and the board restarts
else:
    safe.run(why)
