# Runs ON MICROPYTHON (unix port), never CPython: board_repl.py runs it once per boot,
# before _boot.py and boot.py, to leave the board nothing of the host but its flash, as a
# chip has (docs/hil.md, "Isolation").
#
# The unix port mounts the host's whole filesystem at "/" and offers os.system. seal():
# - puts the flash at "/": the flash folder behind a layer that resolves ".." itself
#   (VfsPosix(root) hands ".." and relative paths to the host as they are); with a flash
#   image, nothing: _boot.py then mounts the image's LittleFS there, as on the chip (a
#   LittleFS that will not mount leaves no filesystem at all: ENODEV);
# - makes `import` hand out os and vfs without system and VfsPosix, and machine without
#   mem8/16/32, and refuse uctypes, ffi and builtins (which could undo all this);
# - keeps the real modules only in closures: MicroPython functions expose __globals__ but
#   not their closures, and board_repl clears this file's globals once seal() has run.
# Run in its own namespace so that, once it has run, its bytecode is garbage: the chip does
# not spend that heap.


def seal(os, vfs, builtins, rom_ioctl):
    real_import, real_open = builtins.__import__, builtins.open
    hostfs = vfs.VfsPosix()  # unmounted: only for the rig's own files named below
    # Host files the rig's code on the device opens by name (hw_sim.vfs_partition): its
    # block-device module, read only, and the chip's flash image (its raw flash).
    passthrough = {}
    if os.getenv("BOTON_LFS_BLOCKDEV"):
        passthrough[os.getenv("BOTON_LFS_BLOCKDEV")] = "r"
    image = os.getenv("BOTON_FLASH_IMAGE")
    if image:
        passthrough[image[:image.rfind("@")]] = "rw"
    else:  # the rig started us in the flash folder
        flash = flash_dir_vfs(hostfs, os.getcwd(), os.getenv("BOTON_FLASH_FULL"))
    vfs.umount("/")
    if not image:
        vfs.mount(flash, "/")
        os.chdir("/")

    def open_(file, mode="r", *rest):
        how = passthrough.get(file) if isinstance(file, str) else None
        if how == "rw" or (how == "r" and "w" not in mode and "a" not in mode and "+" not in mode):
            return hostfs.open(file, mode)
        return real_open(file, mode, *rest)

    given = {"os": stand_in(os, ("system", "VfsPosix")), "vfs": stand_in(vfs, ("VfsPosix",))}
    if rom_ioctl:  # the flash has a romfs partition (the ESP32 port >= 1.25 reaches it so)
        given["vfs"].rom_ioctl = rom_ioctl
    try:
        machine = stand_in(real_import("machine"), ("mem8", "mem16", "mem32"))
        mac = os.getenv("BOTON_MAC")
        if mac and not hasattr(machine, "unique_id"):
            # the chip's eFuse MAC answers with no firmware on the flash (boton reads it to
            # find the board in the registry, even after an erase): the rig's, as hw_sim's
            uid = bytes(int(x, 16) for x in mac.split(":"))
            machine.unique_id = lambda: uid
        given["machine"] = machine
    except ImportError:
        pass
    refused = ("uctypes", "ffi", "builtins")

    def import_(name, *rest):
        key = name[1:] if name[:1] == "u" and (name[1:] in given or name[1:] in refused) else name
        if key in given:
            return given[key]
        if key in refused:
            raise ImportError("no module named '%s'" % name)
        return real_import(name, *rest)

    builtins.open = open_
    builtins.__import__ = import_


class Module:
    """A module's stand-in (a built-in module's attributes cannot be deleted)."""


def stand_in(real, drop):
    m = Module()
    for name in dir(real):
        if name not in drop and name[:2] != "__":
            setattr(m, name, getattr(real, name))
    m.__name__ = real.__name__
    return m


def flash_dir_vfs(host, root, full_flag=None):
    """The flash folder `root` as the board's "/": paths are made absolute and ".." resolved
    here, then passed to `host` (an unrooted VfsPosix) under root, so none leaves it.
    (VfsPosix(root) would not do: besides "..", its rename builds both paths in one buffer
    and renames the new name onto itself: ENOENT.) Symlinks inside the folder are followed
    by the host (MicroPython cannot make one).

    full_flag: a host file outside the flash (VirtualDevice.set_flash_full); while it exists the
    flash is full, as a full LittleFS is: a file opened for writing is there (created if
    new, its old content kept) and its write raises OSError(28) (ENOSPC); reading,
    renaming and removing still work; mkdir raises ENOSPC."""
    cwd = ["/"]

    def is_full():
        try:
            host.stat(full_flag)
            return True
        except OSError:
            return False

    def at(path):
        return root + full(path)

    def full(path):
        parts = [] if path[:1] == "/" else cwd[0].split("/")
        out = []
        for part in parts + path.split("/"):
            if part == "..":
                if out:
                    out.pop()
            elif part and part != ".":
                out.append(part)
        return "/" + "/".join(out)

    class FlashDir:
        def mount(self, readonly, mkfs):
            pass

        def umount(self):
            pass

        def open(self, path, mode):
            if full_flag and ("w" in mode or "a" in mode or "+" in mode) and is_full():
                host.open(at(path), "ab").close()
                return host.open("/dev/full", "wb" if "b" in mode else "w")  # ENOSPC at write
            return host.open(at(path), mode)

        def chdir(self, path):
            path = full(path)
            if not host.stat(root + path)[0] & 0x4000:
                raise OSError(20)  # ENOTDIR
            cwd[0] = path

        def getcwd(self):
            return cwd[0]

        def ilistdir(self, path):
            return host.ilistdir(at(path))

        def mkdir(self, path):
            if full_flag and is_full():
                raise OSError(28)
            host.mkdir(at(path))

        def remove(self, path):
            host.remove(at(path))

        def rename(self, old, new):
            host.rename(at(old), at(new))

        def rmdir(self, path):
            host.rmdir(at(path))

        def stat(self, path):
            return host.stat(at(path))

        def statvfs(self, path):
            return host.statvfs(at(path))

    return FlashDir()

