# Runs first at every boot. /lib holds the firmware modules (boards add it to sys.path).
import gc

gc.collect()
