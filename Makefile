# Botón Seguro — the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test soak bench mpy docs clean firmware unix32

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Main job: boot a virtual device, deploy, provision, press the button, show the phone network.
demo: venv
	$(BIN)/boton demo

# Whole suite, on the MicroPython unix port and CPython. The rig's tests mostly wait on the
# simulated parts' real timing (a serial run keeps 2 cores about 2 % busy and takes ~25 min),
# so pytest-xdist runs TEST_WORKERS of them at once: ~11 min on 2 cores. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
test: venv
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

# Rehearsal soak: her alert under random mixes of faults, per modem family, for SEEDS ("N":
# seeds 0..N-1, or "A:B"); tests/scenarios/test_sc_soak.py, of which `make test` runs 3.
# SEEDS=100: about 25 minutes on 2 cores.
SEEDS ?= 100
soak: venv
	BOTON_SOAK_SEEDS=$(SEEDS) $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal \
		tests/scenarios/test_sc_soak.py

bench: venv
	$(BIN)/python -m boton.bench

mpy: venv
	$(BIN)/boton build --out build/mpy

# The release image: firmware/manifest.py frozen into MicroPython's ESP32 port (needs ESP-IDF
# and a full MicroPython checkout in $$BOTON_MICROPYTHON_SRC; otherwise one line says why).
firmware: venv
	@$(BIN)/python -m boton.frozen esp32 --board "$(BOARD)"

# The virtual device's 32-bit interpreter with the firmware frozen in (../shared/micropython).
unix32: venv
	@$(BIN)/python -m boton.frozen unix32

# Regenerate the docs from the code (wiring from boards/, command outputs captured on a
# virtual device, SMS examples) and build build/docs/guia-beneficiaria.pdf (one page).
docs: venv
	$(BIN)/python -m boton.docs_build

clean:
	rm -rf $(VENV) build .pytest_cache
