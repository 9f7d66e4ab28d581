"""The SMS examples of the beneficiary's guide, written by the firmware's own sms.py."""
import sys

from ..paths import FIRMWARE


def _sms_module():
    import importlib
    lib = str(FIRMWARE / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return importlib.import_module("sms")


def sms_examples_markdown():
    sms = _sms_module()
    point = dict(lat=21.88234, lon=-102.29143)
    ex = [
        ("Alerta, con GPS (a sus contactos y al C4)",
         sms.alert_text(alias="Luna", kind="gps", age_s=4, hdop=1.2, battery=86, device_id="BS-0042", **point)),
        ("Alerta sin GPS (por ejemplo dentro de un edificio): la celda del teléfono",
         sms.alert_text(alias="Luna", kind="cell", battery=86, device_id="BS-0042",
                        cell={"mcc": 334, "mnc": "020", "lac": "1A2B", "cellid": "3C4D"})),
        ("Si la red no deja llamar al C4 desde el botón (llame usted al 911)",
         sms.alert_text(alias="Luna", kind="gps", age_s=4, hdop=1.2, battery=86, device_id="BS-0042",
                        voice=False, **point)),
        ("Cada 5 minutos mientras dura la alerta",
         sms.alert_text(alias="Luna", kind="gps", age_s=2, hdop=1.0, battery=84, device_id="BS-0042",
                        update=True, **point)),
        ("Si el C4 no ha contestado sus llamadas (dos fallaron; llame usted al 911)",
         sms.alert_text(alias="Luna", kind="gps", age_s=2, hdop=1.0, battery=84, device_id="BS-0042",
                        update=True, unanswered=True, **point)),
        ("Ella canceló desde el botón",
         sms.cancel_text(alias="Luna", device_id="BS-0042", by="device")),
        ("El C4 cerró la alerta",
         sms.cancel_text(alias="Luna", device_id="BS-0042", by="c4")),
        ("Prueba del día de entrega",
         sms.alert_text(alias="Luna", kind="gps", age_s=3, hdop=1.2, battery=90, device_id="BS-0042", test=True,
                        **point)),
    ]
    if hasattr(sms, "low_battery_text"):
        ex.append(("Batería baja (a sus contactos)",
                   sms.low_battery_text(alias="Luna", battery=20, device_id="BS-0042")))
        ex.append(("Batería baja durante una alerta",
                   sms.low_battery_text(alias="Luna", battery=10, device_id="BS-0042", active=True)))
    out = []
    for title, text in ex:
        out += [f"*{title}:*", "", "```text", text, "```", ""]
    return "\n".join(out).strip()
