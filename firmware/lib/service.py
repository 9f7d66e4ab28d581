# Technician service calls, run over the REPL by `boton provision` / `boton status`
# while the firmware is stopped. Each prints one JSON line and returns.
import asyncio
import binascii
import gc
import hashlib
import json
import sys
import time

import micropython

import atparse
import hw
import store
from version import VERSION, build
from eventlog import EventLog
from modem import ModemError
from nmea import NMEAParser


def _hash(path):
    h = hashlib.sha256()
    buf = bytearray(256)  # a file read whole needs its size in one piece of the heap
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
    except OSError:
        return None
    return binascii.hexlify(h.digest()).decode()


async def _query(modem, cmd, prefix=None):
    try:
        _, _, lines = await modem.cmd(cmd, 5000, expect=prefix)
    except ModemError:
        return None
    return lines[0] if lines else None


async def _modem_facts(board, find_voice=False):
    """What the modem says about itself and its network. family, rat ("GSM", "LTE" or
    None), voice (True, False: registered for SMS only, None: unknown) and voice_via
    ("2G", "VoLTE" or None) tell the host whether the button can call C4 at all.
    find_voice: registered for SMS only on LTE, try what the firmware would (the GSM
    fallback, modemup.find_voice) and report what it found; else only observe."""
    from radio import Radio  # here: heap() measures the firmware, not the service
    import modemup
    radio = Radio(board, EventLog(echo=False), lambda ev: None)
    radio.modem.on_urc = lambda n, a: None  # observe only: an SMS waits for the firmware
    modem, d = radio.modem, radio.dialect
    reader = asyncio.create_task(modem.reader())
    # The firmware may have been stopped before it powered the module (a T-A7670X's has
    # no supply until its enable goes high): bring it up as boot does, pressing PWRKEY
    # only on a module known to be off, after the full boot probe (no hurry here).
    facts = {"modem": await modemup.power_up(radio, d.BOOT_MS), "family": d.FAMILY, "rat": None,
             "voice": None, "voice_via": None}
    if facts["modem"]:
        await modem.cmd("ATE0", 2000, check=False)
        facts["imei"] = await _query(modem, "AT+GSN")
        # "+CGMR: A011B07A7670M7" (A7670), "Revision:1418B04SIM800L24" (SIM800): the host
        # knows module firmware that drops calls
        rev = await _query(modem, "AT+CGMR")
        facts["modem_rev"] = rev.split(":", 1)[-1].strip() if rev else None
        iccid = await _query(modem, "AT+CCID")
        facts["iccid"] = iccid.replace("+CCID:", "").strip() if iccid else None
        # the SIM's own state and the network's answer, for the technician's words
        # (rules.sim_problem): a SIM with a PIN still gives its ICCID
        try:
            facts["sim"] = (await modem.cmd("AT+CPIN?", 5000, expect="+CPIN"))[2][0]
        except (ModemError, IndexError) as e:
            facts["sim"] = e.reply() if isinstance(e, ModemError) else None
        creg = atparse.parse_creg(await _query(modem, "AT+CREG?", "+CREG") or "")
        facts["creg"] = creg[0] if creg else None
        cops = await _query(modem, "AT+COPS?", "+COPS")
        facts["operator"] = cops.split('"')[1] if cops and '"' in cops else None
        csq = atparse.parse_csq(await _query(modem, "AT+CSQ", "+CSQ") or "")
        facts["rssi"] = csq[0] if csq else None
        facts["battery"] = d.battery_pct(await _query(modem, *d.BATTERY_QUERY) or "")
        state = await modemup.reg_state(radio)
        facts["registered"] = state is not None
        if d.RAT_QUERY:
            rat = await _query(modem, *d.RAT_QUERY)
            facts["rat"] = d.rat_of([rat] if rat else [])
        else:
            facts["rat"] = d.rat_of([])
        facts["voice"], facts["voice_via"] = d.voice_of(state, facts["rat"])
        if find_voice and state == "sms_only" and facts["rat"] == "LTE":
            facts["voice"], facts["voice_via"] = await modemup.find_voice(radio, state, True)
            rat = await _query(modem, *d.RAT_QUERY)
            facts["rat"] = d.rat_of([rat] if rat else [])
    reader.cancel()
    return facts


async def _gps_fact(board, wait_ms):
    g = board["gps"]
    if g.get("enable") is not None:
        hw.Pin(g["enable"], hw.Pin.OUT, value=1)  # the firmware may have switched it off to save power
    reader = asyncio.StreamReader(hw.UART(g["uart"], g["baud"], g["tx"], g["rx"]))
    parser = NMEAParser(queue=0)
    buf = bytearray(64)
    deadline = time.ticks_add(time.ticks_ms(), wait_ms)
    while parser.fix is None and time.ticks_diff(deadline, time.ticks_ms()) > 0:
        try:
            n = await asyncio.wait_for_ms(reader.readinto(buf), max(1, time.ticks_diff(deadline, time.ticks_ms())))
        except asyncio.TimeoutError:
            break
        if n:
            parser.feed(memoryview(buf)[:n])
    f = parser.fix
    return {"gps_sentences": parser.stats.checksum_ok,  # garbage (a wrong baud) has "$" too
            "gps_fix": None if f is None else {"sats": f.sats, "hdop": f.hdop, "quality": f.quality}}


def identity():
    """ESP32 unique id, IMEI, ICCID, operator and signal: what the registry records."""
    board = store.read_json("board.json")
    out = {"uid": binascii.hexlify(hw.unique_id()).decode(), "fw": build()}
    out.update(asyncio.run(_modem_facts(board, find_voice=True)))
    print(json.dumps(out))


def _battery(board, modem_pct):
    """The battery as the firmware acts on it (App.poll_status): the board's own gauge
    where it has one that reads a cell, else the modem's AT+CBC (modem_pct)."""
    import pmu
    from powerpolicy import battery_pct
    _, spec = pmu.expected(board)
    try:
        chip = pmu.detect(spec["sda"], spec["scl"]) if spec else None
    except OSError:
        chip = None
    mv = pmu.gauge_mv(board, chip, spec)
    if mv is None or mv < pmu.GAUGE_MIN_MV:
        source = "modem" if mv is None else "modem; the board's gauge reads %d mV: no cell" % mv
        return {"battery": modem_pct, "battery_source": source}
    return {"battery": battery_pct(mv), "battery_source": "board's gauge"}


def heap():
    """Free heap (gc.mem_free()) after a gc.collect(), with the firmware imported. The
    largest free block has no API: mem_info() prints it ("max free sz", in GC blocks of
    heap_block bytes) just before the JSON line, for the host to read."""
    gc.collect()
    micropython.mem_info()
    return {"heap_free": gc.mem_free(), "heap_block": 16 if sys.maxsize >> 32 == 0 else 32}


def status(gps_wait_ms=3000):
    """Firmware, config hash, free heap, battery, signal, GPS and the last alerts."""
    mem = heap()  # first: before the modem and GPS checks allocate
    board = store.read_json("board.json")
    if not isinstance(board, dict):
        raise OSError("no board profile (board.json) on the device: run boton deploy --board ...")
    log = EventLog(echo=False)
    out = {"fw": build(), "config_sha256": _hash("config.json"), "board": board.get("id"),
           "log_entries": log.seq}
    out.update(mem)

    async def gather():
        facts = await _modem_facts(board)
        facts.update(await _gps_fact(board, gps_wait_ms))
        return facts
    out.update(asyncio.run(gather()))
    out.update(_battery(board, out.get("battery")))
    alerts, gps = [], None
    for e in log.each():  # the last five, without the whole log at once
        k = e.split(" ")[2]
        if k in ("alert", "cancel", "test_result", "crash", "safe_mode"):
            alerts = alerts[-4:] + [e]
        elif k == "gps":
            gps = e  # its last change: "gps silent" is no NMEA while the firmware listened
    out["last_events"] = alerts
    out["gps_log"] = gps
    print(json.dumps(out))
