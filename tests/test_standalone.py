"""The repository stands alone: a user's clone has nothing beside it.

Tests and the bench read their real captures from data/ (boton.paths.DATA); only optional
tools may live outside (boton.paths.SHARED, the 32-bit MicroPython build), and whoever uses
them says so when they are absent. No file names a path of the machine it was written on.
"""
import re
import subprocess

from boton.paths import DATA, REPO

# Naming the optional 32-bit MicroPython tooling (../shared/micropython) is fine; reading
# anything else from beside the clone, or naming a folder of this machine, is not.
OUTSIDE = re.compile(r"\.\./shared/(?!micropython)|(?<![\w.])/work/|REPO\.parent|parents\[3\]")


def tracked_files():
    out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.splitlines()]


def test_no_tracked_source_reaches_outside_the_repository():
    offenders = []
    for path in tracked_files():
        rel = path.relative_to(REPO)
        if rel.parts[0] == "data" or path.suffix not in (".py", ".md", ".json", ".toml", ".cfg", ".sh", "") \
                or not path.is_file():
            continue
        if rel.as_posix() in ("host/boton/paths.py", "tests/test_standalone.py"):
            continue  # the one place that names the optional tools' folder, and this test
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "files that reach outside the repository:\n" + "\n".join(offenders)


def test_the_captures_are_in_the_repository_with_their_licence():
    logs = sorted(p.name for p in (DATA / "nmea").glob("*.log"))
    assert len(logs) == 21
    assert "Redistribution and use in source and binary forms" in (DATA / "nmea" / "COPYING.gpsd").read_text()
    assert "46977faa8f94eb036ca68c24a3fc0d233732e707" in (DATA / "nmea" / "SOURCES.md").read_text()
    assert (DATA / "at" / "sim800_transcripts.md").stat().st_size > 10_000
    tracked = {p.relative_to(REPO).as_posix() for p in tracked_files()}
    assert {f"data/nmea/{name}" for name in logs} <= tracked, "captures must be committed, not only on disk"
