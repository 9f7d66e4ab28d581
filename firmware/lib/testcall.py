# The delivery-day test call (`boton test-call` runs testcall.test_call() from the REPL).
# Apart from app.py so that a normal boot never loads its code: the heap is the ESP32's
# tightest resource during an alert (issue 13).
import asyncio

import app
import hw
import store
from modem import ModemError


async def _test_alert(a, log, timeout_s):
    """The delivery-day test: a real alert marked PRUEBA, ended once the machine says
    the test is done (C4 answered and every recipient's SMS was accepted or refused,
    with the counts); it leaves no alert state behind."""
    # Unlike a real alert, the delivery-day test waits a little for a GPS fix, so that the
    # PRUEBA SMS shows the technician the location path works too (it goes ahead without).
    try:
        await asyncio.wait_for_ms(a.got_fix.wait(), int(90000 * hw.TIME_SCALE))
    except asyncio.TimeoutError:
        log.add("test_no_fix", "")
    a.post(("gesture", "alert"))
    try:
        await asyncio.wait_for(a.test_done.wait(), timeout_s)
        ok = True
    except asyncio.TimeoutError:
        ok = False
    try:
        await a.radio.modem.cmd(a.radio.dialect.HANGUP, 5000, check=False)
    except ModemError:
        pass
    store.remove(app.STATE_PATH)
    hw.rtc_memory(b"")  # the test alert's key: its sealed position on the flash goes with it
    ok = ok and not a.sms_failed
    log.add("test_result", "ok" if ok else "failed")
    return ok


def test_call(timeout_s=120):
    """Boot the firmware in test mode, run one PRUEBA alert; True if it passed."""
    return asyncio.run(app._main(test=lambda a, log: _test_alert(a, log, timeout_s)))
