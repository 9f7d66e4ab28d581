"""Device operations of provisioning, over a connected board (device.Device): deploy the
firmware, write and read back her configuration, identity, power chip, network wait, the
event log, wipe.

The rules these follow are pure and live elsewhere: rules.py (numbers, alias, config,
test-call verdicts), release.py (what deploy puts on a board), eventlog_check.py (the
event log's chain and anchors).
"""
import hashlib
import json
import time

from .boards import board_names
from .errors import EXIT_DEVICE, EXIT_USAGE, EXIT_VERIFY, DeviceError
from .release import BOARD_PATH, board_json, firmware_files
from .rules import CONFIG_PATH, config_bytes, config_hash, judge_power_chip

REGISTRATION_POLL_S = 1.0
# service.identity() on an A7670 registered SMS-only tries 2G (AT+CNMP=13) before it reports
# voice: up to ~40 s to switch and ~60 s to register on a real board, plus the queries.
IDENTITY_TIMEOUT_S = 150


def write_config(dev, config: dict):
    """Atomically write the config, read it back, and compare: the registry trusts only this."""
    data = config_bytes(config)
    dev.write_file_atomic(CONFIG_PATH, data)
    back = dev.read_file(CONFIG_PATH)
    if back != data:
        raise DeviceError("config read back from the device differs from what was written", EXIT_VERIFY)
    return config_hash(data)


# The eFuse MAC from the firmware's hardware layer (the virtual board's comes from the rig),
# else from machine (a board with no firmware yet: a chip's, or the virtual board's stand-in,
# board_seal); None where neither can tell (a MicroPython without machine.unique_id).
_MAC = ("import json,binascii\ntry:\n import hw as m\nexcept ImportError:\n import machine as m\n"
        "try:\n u=binascii.hexlify(m.unique_id()).decode()\nexcept AttributeError:\n u=None\n"
        "print(json.dumps(u))")


def device_mac(dev, missing_ok=False) -> str | None:
    """The chip's eFuse MAC (machine.unique_id() on the ESP32): the registry's key. A board
    that cannot tell it (see _MAC): None if missing_ok, else a DeviceError."""
    uid = json.loads(dev.exec(_MAC).decode().strip().splitlines()[-1])
    if uid is None:
        if missing_ok:
            return None
        raise DeviceError("the board has no firmware to read its MAC with: run `boton deploy` first",
                          EXIT_DEVICE)
    return ":".join(uid[i:i + 2] for i in range(0, 12, 2))


def identity(dev) -> dict:
    """Chip id, IMEI, ICCID, operator, signal, registration, and whether the network
    carries voice (settled: an A7670 without VoLTE has tried 2G first), from the device."""
    out = dev.exec_firmware("import service\nservice.identity()", timeout=IDENTITY_TIMEOUT_S)
    return json.loads(out.decode().strip().splitlines()[-1])


def detect_power_chip(dev, board=None) -> dict:
    """Which power chip answers on the device's I2C, in one round trip: {"board": profile id,
    "expected": chip the profile names or None, "found": "ip5306" | "axp192" | None}. board:
    the profile to check (default: the board.json on the device). A profile without a power
    chip (DevKitC) is not probed. `status` may show "found"."""
    if board is None:
        code = "import json\nb=json.load(open('board.json'))\n"
    else:
        wanted = {k: board[k] for k in ("id", "ip5306", "axp192") if board.get(k)}
        code = f"import json\nb=json.loads({json.dumps(wanted)!r})\n"
    code += ("import pmu\nn,s=pmu.expected(b)\n"
             "print(json.dumps([b.get('id'),n,pmu.detect(s['sda'],s['scl']) if s else None]))")
    try:
        out = dev.exec(code)
    except DeviceError as e:
        if "No module named" in str(e) or "ENOENT" in str(e):
            raise DeviceError("the device has no firmware with power-chip detection (pmu) or no board "
                              "profile: run `boton deploy --board ...` first", EXIT_USAGE) from None
        raise
    board_id, expected, found = json.loads(out.decode().strip().splitlines()[-1])
    return {"board": board_id, "expected": expected, "found": found}


def check_power_chip(dev, board=None) -> str | None:
    """The detected chip name if it is the one the profile names; DeviceError (exit 2) if
    another chip, or none, answers where the profile expects one."""
    return judge_power_chip(detect_power_chip(dev, board))


# The board.json profile's id and safe_c4, and the safe_c4 of the profile frozen into a
# board's own image ("" if it has none), as bootcheck reads them.
_SAFE_C4S = ("import json\ndef _s():\n r=[None,None,'']\n try:\n  b=json.load(open('board.json'))\n"
             "  r[0],r[1]=b.get('id'),b.get('safe_c4')\n except Exception:\n  pass\n try:\n"
             "  import boton_frozen\n  r[2]=json.loads(boton_frozen.BOARD_JSON).get('safe_c4')\n"
             " except Exception:\n  pass\n print(json.dumps(r))\n_s()\ndel _s")


def check_safe_c4(dev, config, step="provision"):
    """Safe mode (her configuration unreadable, or no filesystem) calls the board profile's
    safe_c4: it must be the programme's C4, her configuration's first C4 number, not the
    placeholder a profile ships with. DeviceError before anything is written: exit 2 for
    provision (its --c4 or the profile is wrong), exit 5 for a button provisioned before
    (step: "test-call"; deliver needs a test call since the last deploy, flash or
    provision), where either may be the old one (the programme's C4 changed)."""
    from .rules import mask

    c4 = config["c4_numbers"][0]
    board, held, frozen = json.loads(dev.exec(_SAFE_C4S).decode().strip().splitlines()[-1])
    wrong = [f"{where} ({mask(n) if isinstance(n, str) and n else 'none'})"
             for where, n in (("its board.json", held), ("the profile frozen into its image", frozen))
             if n != c4 and (where == "its board.json" or n != "")]
    profile = f"boards/{board if isinstance(board, str) else '<board>'}.json (or in the folder BOTON_BOARDS names)"
    if wrong and step != "provision":
        raise DeviceError(
            f"{step} refused: her configuration calls C4 {mask(c4)} first, but safe mode would call "
            f"another number: the safe_c4 of {' and of '.join(wrong)}. If the programme's C4 "
            "changed, provision the button again with the new --c4 (her contacts and PIN as in "
            f"her case); if not, set \"safe_c4\" to the programme's C4 in {profile} and `boton "
            "deploy` (for a board's own image, `make firmware` and `boton flash` too). Then "
            "`boton test-call`; nothing was run", EXIT_VERIFY)
    if wrong:
        raise DeviceError(
            f"safe mode would not call the programme's C4 ({mask(c4)}, the first --c4): the safe_c4 "
            f"of {' and of '.join(wrong)} is another number. Set \"safe_c4\" to the programme's C4 "
            f"in {profile}, then `boton deploy` (for a board's own image, `make firmware` "
            "and `boton flash` too) and provision again; nothing was written", EXIT_USAGE)


def wait_for_network(dev, limit_s, on_wait=None, clock=time.monotonic, pause=time.sleep):
    """(identity, seconds waited): at once when the modem is registered or does not answer
    (waiting will not power it), else once it registers or limit_s has passed. A modem
    registers seconds after power-on (SIM start-up, cell search); on_wait(identity,
    seconds) reports every look that found it not registered yet. A registered modem's
    "voice" is already settled: identity() itself waits for an A7670's 2G fallback."""
    start = clock()
    while True:
        ident = identity(dev)
        waited = clock() - start
        if not ident.get("modem") or ident.get("registered") or waited >= limit_s:
            return ident, waited
        if on_wait:
            on_wait(ident, waited)
        # the REPL gives no registration event to wait on: ask the modem again shortly
        pause(min(REGISTRATION_POLL_S, limit_s - waited))


def read_config(dev):
    """Her configuration as the device holds it, or None (missing or unreadable)."""
    raw = dev.read_file(CONFIG_PATH)
    try:
        config = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):    # RecursionError: nested beyond Python's parser
        return None
    return config if isinstance(config, dict) else None


def read_event_log(dev) -> list:
    """The retained event log lines, oldest first."""
    out = dev.exec("import eventlog\nfor e in eventlog.EventLog(echo=False).each():\n print(e)")
    return [ln for ln in out.decode().splitlines() if ln.strip()]


# The firmware's .mpy live in lib/ (on sys.path after the frozen modules). A deploy stages
# the new ones in lib.new/, verifies every file by the device's own SHA-256, then swaps
# with two renames (lib -> lib.old, lib.new -> lib) sent as one command; boot.py puts
# lib.old back if the power goes between them. At any interruption the board keeps a
# whole firmware: the old one until the swap, the new one after it.
LIB, STAGING, RETIRED = "lib", "lib.new", "lib.old"
FROZEN_STAMP_MODULE = "boton_frozen"

# One round trip: the free heap after boot (boot.py only, the firmware not imported, after
# a gc.collect()), the frozen image's stamp if there is one, and the flash root's names.
# No global names beyond the ones it always had: the raw REPL keeps them, and a test call
# that runs the firmware next, in this interpreter at a 56 KB heap, has no room to spare.
_BOARD_FACTS = ("import os,gc,json\ngc.collect()\nh=gc.mem_free()\n"
                "try:\n import boton_frozen as z\n f={'version':z.VERSION,'target':z.TARGET,'sha256':z.CONTENT_SHA256,"
                "'board':getattr(z,'BOARD',None)}\n"
                "except ImportError:\n f=None\n"
                "print(json.dumps({'frozen':f,'heap_free':h,'root':os.listdir(),"
                "'rom':(getattr(__import__('vfs'),'rom_ioctl',None) or (lambda n:0))(1)}))")


class Deployed(tuple):
    """(paths copied, files in the release) as deploy always returned, plus how: `mode`
    "frozen" (the board's image holds this release's firmware: only the flash root was
    installed), "romfs" (lib/ in the board's romfs partition, run in place) or "mpy"
    (lib/ in LittleFS); `frozen`, the board's stamp (or None); `heap_free`, bytes free
    after boot as gc.mem_free() says; `removed`, stale files and folders (lib/) taken off;
    `failed_start`, why the replaced firmware last failed to start (bootcheck's stale
    safe_next.txt), or None."""

    def __new__(cls, copied, total, mode, frozen, heap_free, removed, failed_start=None):
        self = super().__new__(cls, (copied, total))
        self.copied, self.total, self.mode, self.frozen = copied, total, mode, frozen
        self.heap_free, self.removed, self.failed_start = heap_free, removed, failed_start
        return self


# What a board with another release frozen into its image needs: deploy cannot help (its
# frozen modules come before /lib), and a flash erases the whole chip.
REFLASH = ("flash the matching image (`make firmware`, then `boton flash --firmware <image>`); the "
           "flash erases the whole chip, her configuration and PIN with it: provision the button "
           "again and make its test call")


class ImageMismatch(str):
    """A frozen_mismatch reason: the board needs REFLASH, not a deploy."""


def frozen_mismatch(stamp: dict, board: str | None = None) -> str | None:
    """Why the board's frozen firmware is not this release's for `board`, or None if it is.
    An image built for another board profile would give safe mode that board's pins if
    board.json were ever lost."""
    from . import frozen

    target = stamp.get("target")
    if target not in ("esp32", "unix"):
        return ImageMismatch(f"its frozen firmware names an unknown target {target!r}")
    ours = frozen.stamp(target)
    if stamp.get("sha256") != ours["sha256"]:
        return ImageMismatch(f"it runs frozen firmware {stamp.get('version')} (content "
                             f"{str(stamp.get('sha256'))[:12]}, {target}), not this release's "
                             f"{ours['version']} (content {ours['sha256'][:12]})")
    built_for = stamp.get("board")
    if board and built_for and built_for != board:
        return ImageMismatch(f"its image was built for the {built_for} board, not {board} "
                             f"(make firmware BOARD={board})")
    return None


def remedy(differs, port=None, board=None) -> str:
    """What makes a board with release_on_board's differences run this release: REFLASH for
    an image of another release (deploy refuses it), else a deploy (with port and board when
    given)."""
    if any(isinstance(d, ImageMismatch) for d in differs):
        return REFLASH
    if port is None:
        return "boton deploy"
    return f"run `boton deploy --port {port}{' --board ' + board if board else ''}`"


def remedy_sentence(differs, port, board) -> str:
    """remedy() as a sentence of its own, for the commands that refuse such a board."""
    fix = remedy(differs, port, board)
    return fix[0].upper() + fix[1:]


SAFE_NEXT = "safe_next.txt"  # firmware/bootcheck.py: the next boot runs safe mode, then deletes it


def deploy(dev, board: str, progress=None, mpy=True):
    """Install the release on a board, copying only what differs (by the device's own
    SHA-256). A board whose image has this release's firmware frozen in gets only the flash
    root (boot files, safe mode, board profile; her configuration stays) and loses any
    lib/*.mpy and root copies of firmware modules (dead weight at best: a root module
    would shadow the frozen one). A board with another release frozen in is refused (see
    frozen_mismatch). Otherwise the firmware's .mpy go to the board's romfs partition if its
    flash has one (run in place: romfs.py; lib/ in LittleFS is then removed, as it would come
    first on sys.path), else they are staged in LittleFS and swapped in whole.
    Returns a Deployed: (copied, total) plus mode, frozen stamp and free heap."""
    files = firmware_files(board, mpy)
    facts = _board_facts(dev)
    stamp = facts["frozen"]
    if stamp:
        why = frozen_mismatch(stamp, board)
        if why:
            raise DeviceError(f"this board's image is another release: {why}. Its frozen modules come before "
                              f"/lib, so .mpy files would never run: {REFLASH}", EXIT_DEVICE)
    root = [(p, d) for p, d in files if not p.startswith(LIB + "/")]
    lib = [(p[len(LIB) + 1:], d) for p, d in files if p.startswith(LIB + "/")]
    removed = []
    for name in _shadowing(facts["root"], files):
        dev.remove(name)
        removed.append(name)
    # The flash root first, each file replaced whole; main.py last: it imports bootcheck.mpy,
    # and runs the old lib/ as well as the new.
    root.sort(key=lambda f: f[0] == "main.py")
    have = dev.hash_files([p for p, _ in root])
    copied = []
    for path, data in root:
        if have.get(path) != hashlib.sha256(data).hexdigest():
            dev.write_file_atomic(path, data)
            copied.append(path)
        if progress:
            progress(path)
    if stamp:
        for d in (STAGING, RETIRED, LIB, GOING):
            if d in facts["root"]:
                _remove_dir(dev, d)
                removed.append(d + "/")
        if progress:
            for name, _ in lib:
                progress(f"{LIB}/{name} (frozen)")
    elif mpy and facts.get("rom", 0) > 0:
        copied += _write_romfs(dev, lib, facts["root"], progress)
        removed += [d + "/" for d in (STAGING, RETIRED, LIB) if d in facts["root"]]
    else:
        copied += _stage_and_swap(dev, lib, facts["root"], progress)
    failed_start = None
    if SAFE_NEXT in facts["root"]:
        # bootcheck's note of the old firmware's failed start (one safe-mode boot to come):
        # the release that failed is gone, so the next boot tries the new one
        failed_start = (dev.read_file(SAFE_NEXT) or b"").decode(errors="replace").strip() or "no reason noted"
        dev.remove(SAFE_NEXT)
    mode = "frozen" if stamp else "romfs" if mpy and facts.get("rom", 0) > 0 else "mpy"
    return Deployed(copied, len(root) if stamp else len(files), mode, stamp, facts["heap_free"], removed,
                    failed_start)


# lib/ on its way out of a romfs board's LittleFS: one rename takes it off sys.path whole
# (boot.py puts back lib.old only), then it is removed file by file.
GOING = "lib.gone"


def _write_romfs(dev, lib, root_names, progress):
    """lib/ ((name, bytes) pairs) as the board's ROMFS image, written only if it differs;
    then lib/ (and lib.new/, lib.old/) leave LittleFS. While the partition is rewritten
    the release is in LittleFS lib/ (staged and swapped in as in .mpy mode, verified),
    which comes first on sys.path: no module runs from the partition being erased (the
    session's own watchdog feeder is hw's code), and a write cut short leaves a whole
    firmware and safe mode, run from lib/ (the image's header goes last: a cut image does
    not mount). Returns the paths written."""
    from . import romfs

    img = romfs.image(lib)
    paths = [f"{romfs.MOUNT}/{LIB}/{name}" for name, _ in lib]
    copied = []
    if not romfs.holds(dev, img):
        info = romfs.partition(dev)
        romfs.check_fits(img, info)  # before anything is staged or erased
        _stage_and_swap(dev, lib, root_names, None)
        root_names = [n for n in root_names if n not in (STAGING, RETIRED)] + [LIB]
        dev.fresh_interpreter()  # nothing imported from the partition: what imports now reads lib/
        romfs.write(dev, img, info)
        copied = paths
    if GOING in root_names:
        _remove_dir(dev, GOING)  # an earlier deploy's removal, cut short: lib/ cannot be renamed onto it
    gone = [d for d in (STAGING, RETIRED) if d in root_names]
    if LIB in root_names:
        dev.exec(f"import os\nos.rename({LIB!r},{GOING!r})")
        gone.append(GOING)
    for d in gone:
        _remove_dir(dev, d)
    if progress:
        for path in paths:
            progress(path)
    return copied


def _board_facts(dev) -> dict:
    return json.loads(dev.exec(_BOARD_FACTS).decode().strip().splitlines()[-1])


def _shadowing(root_names, files) -> list:
    """Firmware modules in the flash root that are not the release's root files. A root
    module comes before both the frozen ones and lib/ on sys.path: a stale copy of a
    firmware module there would run instead of the release."""
    modules = {p[len(LIB) + 1:].rsplit(".", 1)[0] for p, _ in files if p.startswith(LIB + "/")}
    modules.add(FROZEN_STAMP_MODULE)
    ours = {p for p, _ in files}
    return [name for name in root_names
            if name.rpartition(".")[2] in ("py", "mpy") and name.rpartition(".")[0] in modules
            and name not in ours]


def board_on_device(dev):
    """The profile id the board.json on the device names, if it is one of this release's
    boards (a deploy left it); else None. Reads the board; writes nothing."""
    try:
        held = json.loads(dev.read_file(BOARD_PATH) or b"null")
    except ValueError:
        return None
    board = held.get("id") if isinstance(held, dict) else None
    return board if board in board_names() else None


def release_on_board(dev, mpy=True):
    """(board profile, [what differs]) of the firmware a board holds against this release:
    no differences is this release, as deploy leaves it (frozen in its image, or .mpy in
    lib/), with that profile's board.json. The profile is None when the board.json on the
    board is none of this release's profiles. Reads the board; writes nothing."""
    facts = _board_facts(dev)
    held = dev.read_file(BOARD_PATH)
    board = next((b for b in board_names() if board_json(b) == held), None)
    if board is None:
        return None, [f"its {BOARD_PATH} is none of this release's board profiles" if held
                      else f"it has no {BOARD_PATH}"]
    stamp = facts["frozen"]
    why = frozen_mismatch(stamp, board) if stamp else None
    problems = [why] if why else []
    release = firmware_files(board, mpy)
    # a frozen image never holds lib/ (this release's or another's: listing its .mpy as
    # missing only hid the reason)
    files = [f for f in release if not f[0].startswith(LIB + "/")] if stamp else release
    # lib/ in the romfs partition (deploy's "romfs" mode) where LittleFS has none
    where = {p: (f"/rom/{p}" if p.startswith(LIB + "/") and LIB not in facts["root"] and facts.get("rom", 0) > 0
                 else p) for p, _ in files}
    got = dev.hash_files(list(where.values()))
    have = {p: got[w] for p, w in where.items() if w in got}
    if not stamp and facts.get("rom", 0) > 0 and (LIB in facts["root"] or GOING in facts["root"]):
        # a romfs deploy cut short: the firmware runs from LittleFS (far more heap), or
        # a removal of the old lib/ is unfinished
        problems.append("its firmware is in LittleFS lib/ on a board with a romfs partition: a deploy that "
                        "did not finish")
    for path, data in files:
        if path not in have:
            problems.append(f"{path} is missing")
        elif have[path] != hashlib.sha256(data).hexdigest():
            problems.append(f"{path} is not this release's")
    problems += [f"{name} in the flash root would run instead of the release's"
                 for name in _shadowing(facts["root"], release)]
    return board, problems


def differences(differs, most=3) -> str:
    """release_on_board's differences as one line: the first `most`, then "..."."""
    return "; ".join(differs[:most]) + ("; ..." if len(differs) > most else "")


def _dir_hashes(dev, d):
    names = dev.eval_json(f"[f[0] for f in __import__('os').ilistdir({d!r})]")
    got = dev.hash_files([f"{d}/{n}" for n in names])
    return {n: got.get(f"{d}/{n}") for n in names}


def _remove_dir(dev, d):
    """rm -r of a flat folder on the device."""
    dev.exec(f"import os\nfor f in os.listdir({d!r}):\n os.remove({d!r}+'/'+f)\nos.rmdir({d!r})")


def _stage_and_swap(dev, lib, root_names, progress):
    """lib/ becomes exactly `lib` ((name, bytes) pairs) through lib.new/ and one swap."""
    if LIB not in root_names and RETIRED in root_names:
        dev.exec(f"import os\nos.rename({RETIRED!r},{LIB!r})")  # power went mid-swap, no boot since
        root_names = [*root_names, LIB]
    if RETIRED in root_names and LIB in root_names:
        _remove_dir(dev, RETIRED)  # the last deploy swapped, then lost the link
    wanted = {name: hashlib.sha256(data).hexdigest() for name, data in lib}
    live = _dir_hashes(dev, LIB) if LIB in root_names else {}
    if live == wanted:
        if STAGING in root_names:
            _remove_dir(dev, STAGING)
        if progress:
            for name in wanted:
                progress(f"{LIB}/{name}")
        return []
    staged = _dir_hashes(dev, STAGING) if STAGING in root_names else {}
    if STAGING not in root_names:
        dev.exec(f"import os\nos.mkdir({STAGING!r})")
    for extra in sorted(set(staged) - set(wanted)):
        dev.remove(f"{STAGING}/{extra}")
    copied, reuse = [], []
    for name, data in lib:
        if staged.get(name) == wanted[name]:
            pass  # staged by an interrupted deploy
        elif live.get(name) == wanted[name]:
            reuse.append(name)  # unchanged: copied on the device, nothing over the cable
        else:
            dev.write_file(f"{STAGING}/{name}", data)
            copied.append(f"{LIB}/{name}")
        if progress:
            progress(f"{LIB}/{name}")
    if reuse:
        dev.exec(f"b=bytearray(512)\nm=memoryview(b)\nfor n in {reuse!r}:\n"
                 f" s=open({LIB!r}+'/'+n,'rb')\n d=open({STAGING!r}+'/'+n,'wb')\n"
                 " while 1:\n  k=s.readinto(b)\n  if not k: break\n  d.write(m[:k])\n s.close()\n d.close()")
    got = _dir_hashes(dev, STAGING)
    if got != wanted:
        bad = sorted(n for n in set(got) | set(wanted) if got.get(n) != wanted.get(n))
        raise DeviceError(f"verify failed in {STAGING}/ for {', '.join(bad)}: the firmware was not switched "
                          "(the old one still runs); deploy again", EXIT_VERIFY)
    # One command, so a dropped link cannot split it; only a power cut can (boot.py's case).
    dev.exec(f"import os\nif {LIB!r} in os.listdir():\n os.rename({LIB!r},{RETIRED!r})\n"
             f"os.rename({STAGING!r},{LIB!r})")
    if LIB in root_names:
        _remove_dir(dev, RETIRED)
    return copied


PRIVATE_FILES = ("config.json", "config.json.tmp", "alert.json", "alert.json.tmp")


class Wiped:
    """What `wipe` did on the device: `raw` (its filesystem partition was erased block by
    block; offset/size say where it is), the files removed (flash folder only), what it
    held before (config, alert_state: the needles' sources), the board profile it was
    given back and, on a flash folder, the files left (for the file-level search)."""

    def __init__(self, **kw):
        self.raw = False
        self.virtual = False
        self.offset = self.size = self.blocks = self.erase_failed = 0
        self.removed, self.left_files = [], {}
        self.config = self.alert_state = self.board = None
        self.reinstalled = []
        self.__dict__.update(kw)


_WALK = ("import os,json\nr=[]\ndef w(d):\n for e in os.ilistdir(d or '.'):\n"
         "  p=(d+'/'+e[0]) if d else e[0]\n  if e[1]==0x4000: w(p)\n  else: r.append(p)\n"
         "w('')\nprint(json.dumps(r))")


def _read_json_file(dev, path):
    raw = dev.read_file(path)
    try:
        return json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None


def wipe(dev, keep_log=False, progress=None, spare=None) -> Wiped:
    """Erase her data from the device. First what it holds is read (config.json and
    alert.json: what the check then searches the flash for), then the firmware's
    wipefs.run() erases every block of the filesystem partition, makes a new
    LittleFS and the release is deployed again (board profile, no configuration): a
    returned button as it left the warehouse. keep_log puts the event log back (it
    holds no names, numbers or positions: eventlog.py). A virtual device on a flash
    folder has no raw blocks: there her files are removed and the rest listed for a
    file-level search. spare: where on this computer the board's name and the kept log
    wait out the erase (wipe_spare.py); one left by a wipe cut short is used and said."""
    from . import wipe_spare

    say = progress or (lambda *_: None)
    config = read_config(dev)
    alert_state = _read_json_file(dev, "alert.json")
    board = _read_json_file(dev, BOARD_PATH)
    board_id = board.get("id") if isinstance(board, dict) else None
    left = wipe_spare.load(spare) if spare is not None else None
    logs = {}
    if keep_log:
        for name in dev.eval_json("__import__('os').listdir()"):
            if name.startswith("log."):
                data = dev.read_file(name)
                if data:
                    logs[name] = data
    if left is not None:
        left_board, left_logs = left
        if board_id is None and left_board:
            board_id = left_board
            say(f"an earlier wipe of this button was cut short: its board profile ({board_id}) "
                f"was kept on this computer and is reinstalled")
        if left_logs:
            # the earlier erase took her log: what the button holds now is its reinstalled
            # firmware's own since (or a write-back cut short), not what was kept
            if keep_log:
                logs = left_logs
                say(f"its event log ({len(left_logs)} segments) was kept on this computer: it is put back")
            else:
                say(f"its event log ({len(left_logs)} segments) is still kept on this computer "
                    f"({spare}): wipe with --keep-log to put it back")
    if not _firmware_on(dev):
        # a .mpy firmware goes with the erase (a release image keeps it frozen): after an
        # erase cut short, it is put back to erase again, the only wipe that is verified
        if not board_id:
            raise DeviceError("the board has no firmware to wipe it with (an earlier wipe cut "
                              "short?) and its board profile is not known: `boton deploy --board "
                              "<its board>`, then wipe again", EXIT_DEVICE)
        say(f"its firmware went with an earlier erase: reinstalling it (board {board_id}) to "
            "erase again")
        deploy(dev, board_id)
    virtual = bool(dev.eval_json("__import__('hw').VIRTUAL"))
    done = Wiped(config=config, alert_state=alert_state, board=board_id, virtual=virtual)
    kept = left[1] if left and left[1] else logs  # a log not asked back yet is not dropped
    if spare is not None and (board_id or kept):
        wipe_spare.save(spare, board_id, kept)
    say("erasing every block of the filesystem partition")
    out = dev.exec("import wipefs\nwipefs.run()", timeout=600)
    info = json.loads(out.decode().strip().splitlines()[-1])
    if not info.get("raw"):
        listing = dev.eval_json("__import__('os').listdir()")
        done.removed = [f for f in listing if f in PRIVATE_FILES or (not keep_log and f.startswith("log."))]
        for f in done.removed:
            dev.remove(f)
        still = set(dev.eval_json("__import__('os').listdir()")) & set(done.removed)
        if still:
            raise DeviceError(f"wipe failed: {', '.join(sorted(still))} still on the device", EXIT_VERIFY)
        paths = json.loads(dev.exec(_WALK).decode().strip().splitlines()[-1])
        done.left_files = {p: dev.read_file(p) or b"" for p in paths}
        if board_id:  # what is left is the release: its own bytes are not hers
            done.reinstalled = [d for _, d in firmware_files(board_id)]
        _spare_done(spare, keep_log, left)
        return done
    done.raw = True
    done.offset, done.size = info["offset"], info["size"]
    done.blocks, done.erase_failed = info["blocks"], info["erase_failed"]
    if done.erase_failed:
        raise DeviceError(f"wipe failed: the flash refused to erase {done.erase_failed} of "
                          f"{done.blocks} blocks: the chip may be faulty; retire it and destroy "
                          "its flash", EXIT_VERIFY)
    # a clean interpreter on the new filesystem: the firmware imported for the erase no
    # longer takes the heap deploy needs
    dev._enter_raw_repl()
    for name, data in logs.items():  # first: the firmware's reinstall is the long part
        dev.write_file(name, data)
    if board_id:
        say(f"reinstalling the firmware (board {board_id})")
        deploy(dev, board_id)
        done.reinstalled = [d for _, d in firmware_files(board_id)]
    else:
        say("no board profile known for this button (none on it, none kept): no firmware "
            "reinstalled; `boton deploy --board <its board>` before it goes out again")
    _spare_done(spare, keep_log, left)
    return done


def _firmware_on(dev):
    """Whether the firmware's modules the wipe runs (hw, wipefs) import on the board."""
    out = dev.exec("try:\n import hw, wipefs\n print(1)\nexcept ImportError:\n print(0)")
    return out.decode().strip().splitlines()[-1] == "1"


def _spare_done(spare, keep_log, left):
    # its copy has served; one with a log the technician has not asked back stays
    from . import wipe_spare

    if spare is not None and (keep_log or not (left and left[1])):
        wipe_spare.remove(spare)
