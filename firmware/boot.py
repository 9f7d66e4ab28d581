# Runs first at every boot. lib/ holds the firmware as .mpy (boards put /lib on sys.path
# after the frozen modules; a frozen image needs none of it).
import gc
import os

# `boton deploy` swaps a verified lib.new/ in with two renames: lib -> lib.old, lib.new -> lib.
# Power lost between them leaves no lib/: go back to the old firmware, which is whole (the
# next deploy finds lib.new/ verified and switches again).
try:
    if "lib" not in os.listdir() and "lib.old" in os.listdir():
        os.rename("lib.old", "lib")
except OSError:
    pass
del os
gc.collect()
