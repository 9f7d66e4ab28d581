"""Heap frugality of gsm7.py and store.py, and what the memory bench loads as `hw`
(issue 13 item 3: the .mpy worst alert within 96 KB on the 32-bit build)."""
import ast
import sys

import pytest

from boton import frozen
from boton.bench import memory
from boton.paths import FIRMWARE

sys.path.insert(0, str(FIRMWARE / "lib"))
import gsm7  # noqa: E402

MULTI = "5\u20ac stra\u00dfe \u00c6ther\u2026 \u00a3 \u00a5 \u00a7 \u0153uf \u0152"


def test_multi_character_transliterations_on_micropython_match_cpython(mpy):
    got = mpy.json("import json, gsm7\nprint(json.dumps(gsm7.to_gsm7(%r)))" % MULTI)
    assert got == "5EUR strasse AEther... L Y S oeuf OE"
    assert got == gsm7.to_gsm7(MULTI)


def test_an_already_safe_text_is_returned_without_a_copy(mpy):
    # the usual case (her alias, the device id, an SMS text) allocates nothing
    got = mpy.json("import json, gsm7\n"
                   "t = 'Luna pidio ayuda. Bat 87% BS-0042.'\n"
                   "u = 'Bego\\u00f1a a\\u00fan \\u00e1gil'\n"
                   "print(json.dumps([gsm7.to_gsm7(t) is t, gsm7.to_gsm7(u) is u, gsm7.to_gsm7(u)]))")
    assert got == [True, False, "Begoña aun agil"]


def test_store_streams_json_both_ways_on_micropython(mpy, tmp_path):
    state = {"phase": "calling", "contacts": ["+524491112233"] * 5, "pos": [218823449, -1022914351],
             "text": "ALERTA Boton Seguro: " + "x" * 300}
    (tmp_path / "bad.json").write_text('{"phase": ')
    got = mpy.json(
        "import json, store\n"
        "store.write_json('s.json', %r)\n"
        "back = store.read_json('s.json')\n"
        "try:\n    store.read_json('bad.json')\n    bad = None\n"
        "except ValueError as e:\n    bad = str(e)\n"
        "print(json.dumps([back, store.read_json('missing.json', 7), bad]))" % (state,),
        cwd=tmp_path)
    assert got == [state, 7, "corrupt bad.json"]
    assert not (tmp_path / "s.json.tmp").exists()


def test_store_streams_json_on_cpython_too(tmp_path, monkeypatch):
    import store
    monkeypatch.chdir(tmp_path)
    store.write_json("a.json", {"n": [1, 2, "ñ"]})
    assert store.read_json("a.json") == {"n": [1, 2, "ñ"]}
    assert store.read_json("nope.json") is None
    (tmp_path / "b.json").write_text("[1,")
    with pytest.raises(ValueError, match="corrupt b.json"):
        store.read_json("b.json")


TOOLS, WHY_NOT = frozen.tooling()


@pytest.mark.skipif(TOOLS is None, reason=f"{WHY_NOT} (CI has it beside the clone)")
def test_bench_outside_loads_hw_esp32_as_a_board_does(tmp_path):
    """With .mpy files the worst alert runs over hw.py + hw_esp32.mpy (machine stood in),
    not over the virtual device's hw_sim, and completes all of it."""
    plain = frozen.unix32(frozen=False)
    r = memory.outside(tmp_path, search=False, exe=plain.exe, lib="mpy")
    assert r["hw"] == "hw_esp32"
    assert r["missing"] == ""
    # her alert and one update to each contact, C4's alert and UBICACION reply, and the
    # modem's supply warning's position first to those whose update had gone (2)
    assert r["seen"]["dial"] == 2 and r["seen"]["sms"] == 2 * len(memory.CONTACTS) + 4


def _self_assigned(fn):
    names = set()
    for node in ast.walk(fn):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for e in ast.walk(t):
                if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self":
                    names.add(e.attr)
    return names


def test_firmware_objects_make_every_attribute_when_built():
    # On MicroPython an instance's attributes are a dict whose table is replaced by a
    # bigger one when it is full: an attribute first set mid-alert (AlertMachine's 30th,
    # 296 bytes) took that table at the heap's peak, a MemoryError on a 56 KB heap. So
    # every attribute a method sets is made by __init__ or what it calls.
    late = []
    for path in sorted((FIRMWARE / "lib").glob("*.py")):
        for cls in (n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)):
            methods = {m.name: m for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
            built, todo, seen = set(), ["__init__"], set()
            while todo:
                name = todo.pop()
                if name in seen or name not in methods:
                    continue
                seen.add(name)
                built |= _self_assigned(methods[name])
                todo += [c.func.attr for c in ast.walk(methods[name]) if isinstance(c, ast.Call)
                         and isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name)
                         and c.func.value.id == "self"]
            if "__init__" not in methods:
                continue
            for name, m in methods.items():
                late += [f"{path.name} {cls.name}.{a} (in {name})" for a in _self_assigned(m) - built]
    assert late == []
