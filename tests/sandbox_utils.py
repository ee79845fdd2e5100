"""Helpers shared by the sandbox tests."""

import os


def live_processes_of(uids) -> list[int]:
    """Pids of live (not zombie) processes owned by any of `uids`: a run's strays."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    with open(f"/proc/{name}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(name))
            except OSError:
                pass
    return found
