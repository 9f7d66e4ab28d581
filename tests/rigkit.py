"""Shared helpers for tests that drive a virtual device."""
import contextlib

from boton.provision import build_config
from boton.sim.flashdir import install
from boton.sim.rig import DEFAULT_C4, DEFAULT_CONTACT, VirtualDevice

FAST = 0.1  # simulated parts run ten times faster than the real modem/GPS


def demo_config(**kw):
    args = dict(alias="Luna", contacts=[DEFAULT_CONTACT], c4=[DEFAULT_C4], device_id="BS-0042",
                hold_ms=800)
    args.update(kw)
    return build_config(**args)


@contextlib.contextmanager
def provisioned_device(tmp_path, config=None, board="tcall_sim800l", **rig_kw):
    """A virtual device with firmware and config already on its flash, booted and ready."""
    flash = tmp_path / "flash"
    install(flash, board, config if config is not None else demo_config())
    rig_kw.setdefault("time_scale", FAST)
    vd = VirtualDevice(flash, board=board, network_log=tmp_path / "net.jsonl", **rig_kw)
    vd.start()
    try:
        vd.wait_console("EV ready", timeout=60)
        yield vd
    finally:
        vd.stop()
