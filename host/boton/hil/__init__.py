"""The HIL harness: one set of scenarios for the virtual rig and a real board.

dut.py (device under test), observer.py (the phone network), controls.py (button, faults,
GPS), refmodem.py (the reference modem over AT), simbench.py (simulated modems on a byte
stream), timeline.py (the per-test report). The fixtures are in boton.pytest_plugin.
"""
