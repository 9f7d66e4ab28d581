"""Who is on the other end of a localhost TCP connection: the virtual device's REPL (and ROM
loader) port must only serve the user who started the rig.

A TCP socket carries no credentials (SO_PEERCRED is for Unix sockets), but on Linux the
kernel lists every TCP socket with its owner's uid in /proc/net/tcp and /proc/net/tcp6: the
client's end is the row whose local address is our peer and whose remote address is us.
"""
import ipaddress
import logging
import os

PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
log = logging.getLogger("boton.sim")


def _address(field: str):
    """'0100007F:1F90' (or tcp6's 32 hex digits) -> (ip as text, port). The kernel prints
    the address as 32-bit words in host order: little-endian on every machine the rig runs on."""
    ip_hex, port_hex = field.split(":")
    raw = bytes.fromhex(ip_hex)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6 and ip.ipv4_mapped:  # a dual-stack client talking to our IPv4 port
        ip = ip.ipv4_mapped
    return str(ip), int(port_hex, 16)


def parse_proc_net_tcp(text: str) -> dict:
    """{(local (ip, port), remote (ip, port)): uid} from the text of /proc/net/tcp{,6}."""
    owners = {}
    for line in text.splitlines()[1:]:  # the first line is the header
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            owners[(_address(cols[1]), _address(cols[2]))] = int(cols[7])
        except ValueError:
            continue
    return owners


def peer_uid(peer, local, tables=PROC_TABLES):
    """The uid owning the client socket at `peer` connected to our `local` (both (ip, port)
    as getpeername/getsockname give them), or None when this system does not say (no /proc:
    not Linux) or no row matches."""
    key = ((str(ipaddress.ip_address(peer[0])), peer[1]), (str(ipaddress.ip_address(local[0])), local[1]))
    for path in tables:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        uid = parse_proc_net_tcp(text).get(key)
        if uid is not None:
            return uid
    return None


def _have_proc():
    return os.path.exists(PROC_TABLES[0])


def allowed(peer, local, what="REPL") -> bool:
    """True if the connecting peer runs as the user who started the rig. A peer of another
    user, or one Linux does not list, is refused with one line on the rig's log. Where the
    system has no /proc/net/tcp (not Linux) the owner cannot be known: allowed, and said once."""
    if not _have_proc():
        if not _noted_no_proc:
            _noted_no_proc.append(True)
            log.warning("virtual device %s: this system has no /proc/net/tcp, so a connection's "
                        "user cannot be checked; any local user can connect", what)
        return True
    uid = peer_uid(peer, local)
    if uid == os.getuid():
        return True
    who = "an unknown user" if uid is None else f"uid {uid}"
    log.warning("virtual device %s: refused a connection from %s:%s (%s; only uid %d may connect)",
                what, peer[0], peer[1], who, os.getuid())
    return False


_noted_no_proc = []
