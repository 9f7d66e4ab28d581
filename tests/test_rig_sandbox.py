"""The virtual device cannot be used to read the host (issue 10, item 7): its REPL serves only
the user who started the rig, and the firmware (or whoever has the REPL) sees only the
virtual flash, as on a chip."""
import ast
import logging
import os
import socket

import pytest

from boton import image as img
from boton.device import Device
from boton.sim import peercred
from boton.sim.rig import VirtualDevice
from boton.sim.rom_server import RomServer
from rigkit import FAST, provisioned_device

# What a board answers, as a dict: every way out of the flash it should refuse.
PROBE = r"""
import os
r = {}
for p in ("/etc/passwd", "../../../../../../../etc/passwd", "/../../../../../../../etc/passwd",
          "lib/../../../../../../../../etc/passwd"):
    try:
        open(p)
        r[p] = "read"
    except OSError as e:
        r[p] = e.args[0]
try:
    os.chdir("/../../../../../..")
    r["cwd_up"] = sorted(os.listdir())
    os.chdir("/")
except OSError as e:
    r["cwd_up"] = e.args[0]
r["root"] = sorted(os.listdir("/"))
r["system"] = hasattr(os, "system")
import vfs
r["VfsPosix"] = hasattr(os, "VfsPosix") or hasattr(vfs, "VfsPosix")
for m in ("uctypes", "ffi", "builtins", "ubuiltins"):
    try:
        __import__(m)
        r[m] = "imported"
    except ImportError:
        r[m] = "refused"
import machine
r["mem32"] = hasattr(machine, "mem32")
print(repr(r))
"""
ESCAPES = ("/etc/passwd", "../../../../../../../etc/passwd", "/../../../../../../../etc/passwd",
           "lib/../../../../../../../../etc/passwd")


def probe(url):
    with Device(url) as dev:
        return ast.literal_eval(dev.exec(PROBE).decode().strip())


def assert_sealed(got, errnos=(2,)):
    for p in ESCAPES:
        assert got[p] in errnos, f"open({p!r}) on the virtual device: {got[p]!r}, not ENOENT"
    assert not got["system"] and not got["VfsPosix"] and not got["mem32"]
    assert [got[m] for m in ("uctypes", "ffi", "builtins", "ubuiltins")] == ["refused"] * 4


def closed(sock):
    """The server closed on us (its own bytes, if any, first: then it is not refused)."""
    sock.sendall(b"\x03\x03\r\n")  # a host knocking, as mpremote does
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:  # closed with our knock unread
        return True


def test_the_repl_sees_only_the_flash_folder(tmp_path):
    with provisioned_device(tmp_path) as vd:
        got = probe(vd.repl_url)
        assert_sealed(got)
        on_flash = sorted(p.name for p in vd.flash_dir.iterdir())
        assert got["root"] == on_flash and got["cwd_up"] == on_flash  # ".." stops at "/"
        # The firmware still writes its flash through the seal (deploy and provision do too).
        with Device(vd.repl_url) as dev:
            dev.write_file_atomic("lib/../note.txt", b"hola")  # a rename, as deploy does
        assert (vd.flash_dir / "note.txt").read_bytes() == b"hola"


def test_with_a_flash_image_the_repl_sees_only_its_littlefs(tmp_path):
    chip = tmp_path / "chip.bin"
    blank = bytearray(b"\xff" * (4 * 1024 * 1024))
    fw = img.virtual_firmware()
    blank[0x1000:0x1000 + len(fw)] = fw
    chip.write_bytes(bytes(blank))
    vd = VirtualDevice(tmp_path / "flash", flash_image=chip, time_scale=FAST).start()
    try:
        vd.wait_console("Performing initial setup", timeout=60)
        got = probe(vd.repl_url)
        # LittleFS itself refuses ".." above its root with EINVAL, as the chip's does.
        assert_sealed(got, errnos=(2, 22))
        assert got["/etc/passwd"] == 2
        assert got["root"] == ["boot.py"]  # the LittleFS at "/", as the port's initial setup left it
        assert got["cwd_up"] == 2  # LittleFS refuses a path above its root (ENOENT), as on the chip
        with Device(vd.repl_url) as dev:
            # The rig's own code on the device still opens its block-device module, read only.
            out = dev.exec("import os\nf = os.getenv('BOTON_LFS_BLOCKDEV')\nprint(len(open(f).read()) > 0)\n"
                           "try:\n open(f, 'a')\nexcept OSError as e:\n print(e.args[0])").decode().split()
        assert out == ["True", "2"]
    finally:
        vd.stop()


def test_a_peer_of_another_user_is_refused_and_the_session_stays(tmp_path, monkeypatch, caplog):
    with provisioned_device(tmp_path) as vd:
        host, port = vd.repl_url.removeprefix("socket://").split(":")
        with Device(vd.repl_url) as dev:
            monkeypatch.setattr(peercred, "peer_uid", lambda peer, local: os.getuid() + 1)
            with caplog.at_level(logging.WARNING, logger="boton.sim"), \
                    socket.create_connection((host, int(port)), timeout=10) as intruder:
                assert closed(intruder)  # without a byte of console
            assert f"uid {os.getuid() + 1}" in caplog.text and "refused" in caplog.text
            assert dev.exec("print(6*7)").strip() == b"42"  # the technician's session goes on
            monkeypatch.undo()
        with Device(vd.repl_url) as dev:  # the same user still gets in
            assert dev.exec("print(1)").strip() == b"1"


def test_the_peripheral_port_refuses_another_user(tmp_path, monkeypatch):
    with provisioned_device(tmp_path) as vd:
        monkeypatch.setattr(peercred, "peer_uid", lambda peer, local: os.getuid() + 1)
        with socket.create_connection(("127.0.0.1", vd._periph_port), timeout=10) as intruder:
            # closed before it says which UART it wants (allowed, it would wait for that)
            assert intruder.recv(100) == b""
        monkeypatch.undo()
        with Device(vd.repl_url) as dev:   # the board's own connections were made before
            assert dev.exec("print(6*7)").strip() == b"42"


def test_the_rom_loader_port_refuses_another_user(tmp_path, monkeypatch):
    flash = tmp_path / "chip.bin"
    flash.write_bytes(b"\xff" * (4 * 1024 * 1024))
    monkeypatch.setattr(peercred, "peer_uid", lambda peer, local: os.getuid() + 1)
    with RomServer(flash) as srv:
        host, port = srv.url.removeprefix("socket://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as intruder:
            assert closed(intruder)


# /proc/net/tcp as Linux prints it: a client 127.0.0.1:41000 (uid 1000) connected to the
# REPL at 127.0.0.1:8080 (uid 0), and in tcp6 a dual-stack client (uid 1001) on it.
PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0
   1: 0100007F:1F90 0100007F:A028 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0
   2: 0100007F:A028 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:A029 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 4 1 0
"""


def test_proc_net_tcp_names_the_peers_owner(tmp_path):
    owners = peercred.parse_proc_net_tcp(PROC_TCP)
    assert owners[(("127.0.0.1", 41000), ("127.0.0.1", 8080))] == 1000
    assert owners[(("127.0.0.1", 8080), ("127.0.0.1", 41000))] == 0  # our own end: not the peer
    (tmp_path / "tcp").write_text(PROC_TCP)
    (tmp_path / "tcp6").write_text(PROC_TCP6)
    tables = (str(tmp_path / "tcp"), str(tmp_path / "tcp6"))
    server = ("127.0.0.1", 8080)
    assert peercred.peer_uid(("127.0.0.1", 41000), server, tables) == 1000
    assert peercred.peer_uid(("127.0.0.1", 41001), server, tables) == 1001  # v4-mapped, in tcp6
    assert peercred.peer_uid(("127.0.0.1", 41002), server, tables) is None
    assert peercred.parse_proc_net_tcp("header\n garbage line\n   0: zz:zz") == {}


def test_a_real_connection_is_found_as_this_user():
    with socket.create_server(("127.0.0.1", 0)) as srv, \
            socket.create_connection(srv.getsockname(), timeout=5) as client:
        conn, peer = srv.accept()
        with conn:
            if not os.path.exists(peercred.PROC_TABLES[0]):
                pytest.skip("no /proc/net/tcp on this system")
            assert peercred.peer_uid(peer, conn.getsockname()) == os.getuid()
            assert peercred.allowed(peer, conn.getsockname())


def test_what_the_board_keeps_is_readable_by_its_user_alone(tmp_path):
    """A rehearsal may be provisioned with her real contacts and PIN: the flash folder (one
    an earlier boton left open included), what is written on it, and a new flash image are
    the user's alone."""
    with provisioned_device(tmp_path) as vd:  # its folder was made by the host, 0755
        with Device(vd.repl_url) as dev:
            dev.write_file_atomic("config.json.new", b"{}")  # as provision writes
        assert vd.flash_dir.stat().st_mode & 0o777 == 0o700
        assert (vd.flash_dir / "config.json.new").stat().st_mode & 0o777 == 0o600
    chip = tmp_path / "chip.bin"
    vd = VirtualDevice(tmp_path / "flash2", flash_image=chip, time_scale=FAST).start()
    try:
        assert chip.stat().st_mode & 0o777 == 0o600
    finally:
        vd.stop()
