"""Stopping a virtual device mid-alert, with timers pending, leaves nothing behind: no
error in the log, no watchdog armed, the network log closed. Scenarios tear one rig down
and start the next one right away, so a late callback would land in the next test."""
import gc
import logging
import threading
import time

import pytest

from boton.sim.rig import RigError
from rigkit import demo_config, provisioned_device


def _alerting_device(tmp_path):
    cfg = demo_config()
    cfg["watchdog_s"] = 3  # the firmware arms the rig's watchdog and feeds it every second
    return provisioned_device(tmp_path, config=cfg)


def _start_alert(vd):
    mark = len(vd.events)
    vd.press(hold_s=1.0)
    # A call is being set up: network, modem and watchdog timers are all pending now.
    vd.wait_event(lambda e: e["kind"] == "call_start", after=mark, timeout=30)


def _problems(caplog):
    gc.collect()  # a task or transport the loop left behind complains when collected
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def test_stop_mid_alert_logs_nothing_and_disarms_everything(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with _alerting_device(tmp_path) as vd:
        _start_alert(vd)
        assert vd._wdt_handle is not None
        network = vd.network
    assert vd._wdt_handle is None
    assert network._log is None  # the JSON-lines file is closed, not left to the GC
    assert _problems(caplog) == []


def test_a_feed_arriving_after_stop_gave_up_waiting_is_harmless(tmp_path, caplog):
    # The rig's loop is held up (a loaded machine), so stop() stops waiting for it; the
    # firmware's watchdog feed is still in the socket and is handled once the loop runs
    # again. That feed used to reach a loop reference stop() had already cleared:
    # "'NoneType' object has no attribute 'call_later'".
    caplog.set_level(logging.WARNING)
    with _alerting_device(tmp_path) as vd:
        _start_alert(vd)
        loop = vd._loop
        hold = threading.Event()
        loop.call_soon_threadsafe(hold.wait, 30)
        with pytest.raises(RigError, match="did not stop within"):
            vd.stop(timeout=0.2)
        feeds = vd.wdt_feeds
        loop.call_soon_threadsafe(vd._gpio_from_device, b"FEED\n")
        hold.set()
        vd.stop()
    assert vd.wdt_feeds > feeds     # feeds were handled after the stop was asked for
    assert vd._wdt_handle is None     # and armed nothing: the board is off
    assert _problems(caplog) == []


def test_a_simulated_part_that_raises_stops_every_wait_at_once_with_its_traceback(tmp_path):
    """The rig's A7670 once raised on the network's time (a TypeError in its URC code):
    simulated time stopped, the firmware saw a silent modem and tried to bring it back,
    and the test timed out a minute later on what looked like the firmware's failure."""
    def broken_part():
        raise TypeError("a bug in a simulated part")

    with provisioned_device(tmp_path) as vd:
        vd.call(lambda: vd.sched.after(0, broken_part))
        t0 = time.monotonic()
        with pytest.raises(RigError) as e:
            vd.wait_console("printed only after a minute", timeout=60)
        assert "a bug in the rig, not in the firmware" in str(e.value)
        assert "TypeError: a bug in a simulated part" in str(e.value)
        for wait in (lambda: vd.wait_event(lambda ev: False, timeout=60),
                     lambda: vd.wait_pin(99, 1, timeout=60),
                     lambda: vd.wait_asleep(1e9, timeout=60),
                     lambda: vd.wait_rtc_memory(lambda mem: False, timeout=60)):
            with pytest.raises(RigError):
                wait()
        assert time.monotonic() - t0 < 30   # at once, not at the timeouts
