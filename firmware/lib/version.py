# The firmware release: its own module, so that the service calls (service.py) can report
# it without importing the whole firmware (app) into the heap the modem check needs.
VERSION = "0.1.0"
