# Runs at every boot after boot.py: the panic button's firmware. If it cannot start (a
# module missing, corrupt or too big for the heap; no usable board profile), safe.py runs
# instead: the button still calls C4. Safe mode is loaded only then: its code would take
# heap the firmware's import needs.
import sys

try:
    import bootcheck
except Exception as e:  # the check itself is damaged: start the firmware as before
    sys.print_exception(e)
    why = None
else:
    why = bootcheck.check()  # imports the firmware
    if why is None:
        del sys.modules["bootcheck"], bootcheck  # its heap goes back to the firmware
if why is None:
    import app

    app.main()  # runs forever; a crash is logged and the board restarts
else:
    import safe

    try:
        safe.run(why)
    except Exception as e:  # safe mode itself stopped: again, on the pins the image was
        sys.print_exception(e)  # built for (else the T-Call's), with her C4 numbers
        plan = bootcheck.PLAN or bootcheck.plan()[0]
        bootcheck.PLAN = (bootcheck.frozen_board() or bootcheck.DEFAULT_BOARD,) + tuple(plan[1:])
        safe.run("safe_%s" % type(e).__name__)
