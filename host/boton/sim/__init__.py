"""The virtual device: simulated SIM800, GPS, phone network and the rig that runs the
firmware on the MicroPython unix port."""
