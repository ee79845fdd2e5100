"""Process isolation for untrusted programs: namespaces, limits, identities, reaping.

Two levels, so that the per-program cost stays a single fork:

* Worker level (`Isolation.setup`, once per worker process; namespaces need root and a
  kernel that allows them, and each step that fails is recorded, not assumed): a new
  network namespace (no interfaces but a down loopback: no network); a private mount
  namespace with fresh tmpfs on /tmp, /var/tmp and /dev/shm, and `hide_paths` (e.g. the
  benchmark data, root's home) covered by empty read-only tmpfs, the Python installation
  re-exposed read-only inside them so programs can still import the standard library and
  site-packages; and a new PID namespace with its own /proc, of which the worker is PID 1
  (so when the worker ends, the kernel kills every process in it). Every program forked
  from the worker inherits all of these.
* Child level (`Isolation.enter_child`, in each forked child, before the program runs): own
  session and process group; scratch directory as cwd/HOME/TMPDIR (the private /tmp,
  emptied after each run; without one, a fresh directory); fds 0-2 on /dev/null (the runner
  points 0/1 at memfds per test), the report pipe on fd 3 and, for worker-judged tests, the
  read end of the call-request pipe on fd 4, everything else closed;
  RLIMIT_CPU/AS/FSIZE/NOFILE/CORE; and, as root, an unprivileged uid/gid unique to this
  worker, with RLIMIT_NPROC (which only binds a non-root uid) on it. The program then
  cannot signal or ptrace the worker, cannot write outside the world-writable temporary
  directories (which are private and emptied), and cannot fork without bound.
* On every path the worker and each child are made non-dumpable (`prctl(PR_SET_DUMPABLE,
  0)`): a program running under the worker's own uid (an unprivileged user's sandbox) can
  then not open `/proc/<worker>/fd/*`, `mem` or `environ` (the job and verdict pipes, the
  nonce in memory). Root taking the unprivileged path (`privileged=False`) also drops every
  capability in the worker (bounding set, effective/permitted, no_new_privs; inherited by
  its children), so that path runs as a non-root user's would: a program with root's
  capabilities could read and signal anything.

`Isolation.reap` kills the child's process group, then every other process left in the
PID namespace (or, without one: every process of the run's uid, or, unprivileged, every
process re-parented to the worker, which is a child subreaper), and reaps them all.
`Isolation.clean_files` empties the private temporary directories.

The environment of programs is minimal (PATH, LANG, HOME/TMPDIR, single-threaded BLAS):
the caller's variables (tokens, credentials) never reach them.

`Isolation.report` records what this kernel allowed; tests check it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522
MS_NOEXEC = 8

# Unprivileged uids for programs: BASE + worker pid, unique among live workers, far from any
# real account (uids are 32-bit; no passwd entry is needed to setuid to one).
SANDBOX_UID_BASE = 1_000_000
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
RESULT_FD = 3  # where the child writes its reports (runner.RESULT_FD)
REQUEST_FD = 4  # where it reads the worker's call requests (runner.REQUEST_FD)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


class Isolation:
    """Per-worker isolation state; see the module docstring."""

    def __init__(self, *, memory_mb: int, max_output_bytes: int,
                 max_open_files: int = 64, max_processes: int = 32,
                 hide_paths: tuple[str, ...] = (), privileged: bool = True):
        self.memory_mb = memory_mb
        self.max_output_bytes = max_output_bytes
        self.max_open_files = max_open_files
        self.max_processes = max_processes
        self.hide_paths = tuple(os.path.realpath(p) for p in hide_paths)
        # privileged=False takes the path of an unprivileged user even as root (no
        # namespaces, no uid drop), e.g. to test that path.
        self.is_root = os.geteuid() == 0 and privileged
        self.uid = SANDBOX_UID_BASE + os.getpid() if self.is_root else None
        self.report: dict[str, object] = {"root": self.is_root, "uid": self.uid}
        self.private_tmp = False
        self.scratch_root = ""
        self._counter = 0
        self._empty_inodes: dict[str, int] = {}  # private tmpfs -> inodes in use when empty

    # ----------------------------------------------------------------------------- worker
    def setup(self) -> None:
        """Worker-level isolation (see module doc); records what worked in `report`."""
        libc = _libc()
        _check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(CHILD_SUBREAPER)")
        # Before any program runs: /proc/<worker>/{fd,mem,environ} are then closed to its
        # children even where they share its uid (inherited by every fork).
        _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
        self.report["dumpable"] = False
        if os.geteuid() == 0 and not self.is_root:
            _drop_capabilities()  # root taking the unprivileged path: a user's powers only
        self.report["capabilities_dropped"] = os.geteuid() == 0 and not self.is_root
        if self.is_root:
            self.report["network_namespace"] = self._try(lambda: _check(
                libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)"))
        else:  # an unprivileged user may still have user namespaces; not relied upon here
            self.report["network_namespace"] = "not root: skipped"
        if self.is_root:
            self.report["mount_namespace"] = self._try(lambda: self._private_mounts(libc))
        else:
            self.report["mount_namespace"] = "not root: skipped"
        self.private_tmp = self.report["mount_namespace"] is True
        self.pid_namespace = False
        if self.private_tmp:
            self.report["pid_namespace"] = self._try(lambda: self._enter_pid_namespace(libc))
            self.pid_namespace = self.report["pid_namespace"] is True
        if not self.private_tmp:
            self.scratch_root = _mkdtemp("coderl-sandbox-")
            os.chmod(self.scratch_root, 0o711)  # programs may enter their dir, not list others
        # Programs see a minimal environment: never the caller's (tokens, credentials, ...).
        # Set once here, inherited by every fork (setting it per child costs ~0.4 ms).
        keep = {k: os.environ[k] for k in ("LANG", "LC_ALL") if k in os.environ}
        os.environ.clear()
        os.environ.update(keep, PATH="/usr/local/bin:/usr/bin:/bin", HOME="/tmp",
                          TMPDIR="/tmp", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                          MKL_NUM_THREADS="1")

    @staticmethod
    def _try(fn) -> object:
        try:
            fn()
            return True
        except OSError as e:
            return f"unavailable: {e}"

    def _private_mounts(self, libc) -> None:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount(/, private)")
        # Bind the Python installation somewhere safe before hiding the trees holding it.
        keep = sorted({os.path.realpath(p) for p in
                       (sys.base_prefix, sys.prefix, sys.exec_prefix, *sys.path)
                       if p and os.path.isdir(p)})
        stage_root = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
        stage = _mkdtemp("coderl-stage-", stage_root)
        _check(libc.mount(b"tmpfs", stage.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                          b"mode=0700,size=1m"), f"mount tmpfs {stage}")
        staged = []
        hidden = [h for h in self.hide_paths if os.path.isdir(h)]
        for i, path in enumerate(keep):
            if any(path == h or path.startswith(h + "/") for h in hidden):
                target = os.path.join(stage, str(i))
                os.mkdir(target)
                _check(libc.mount(path.encode(), target.encode(), None, MS_BIND | MS_REC,
                                  None), f"bind {path}")
                staged.append((path, target))
        for path in hidden:
            _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                              b"mode=0755,size=1m"), f"hide {path}")
        for path, target in staged:
            os.makedirs(path, exist_ok=True)
            _check(libc.mount(target.encode(), path.encode(), None, MS_BIND | MS_REC, None),
                   f"re-expose {path}")
            libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        for path in hidden:
            libc.mount(None, path.encode(), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                       b"mode=0755")
        libc.umount2(stage.encode(), MNT_DETACH)
        os.rmdir(stage)
        for path in PRIVATE_TMP_DIRS:
            if os.path.isdir(path):
                _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                                  b"mode=1777,size=256m"), f"private {path}")
                # Every file, directory, link or hard link on a tmpfs takes an inode, so a
                # count equal to the fresh mount's proves it empty (see clean_files).
                used = _used_inodes(path)
                if used is not None:
                    self._empty_inodes[path] = used
        self.report["hidden"] = hidden

    def _enter_pid_namespace(self, libc) -> None:
        """Continues the worker as PID 1 of a new PID namespace with its own /proc.

        Every program then lives in that namespace: the kernel kills all of it when the
        worker ends (nothing can outlive the pool), programs see only their own namespace,
        and finding a run's leftovers is a listing of a nearly empty /proc.
        """
        _check(libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        pid = os.fork()  # the child is PID 1 of the new namespace
        if pid:
            # The original process only waits, holding no pipe open, and mirrors the exit.
            os.closerange(0, 1 << 16)
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # parent is single-threaded
        _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
               "mount /proc")

    def new_scratch(self) -> str:
        """A fresh scratch directory owned by the sandbox uid.

        With a private /tmp (a tmpfs of this worker alone, emptied after every run) the
        scratch directory is that /tmp itself: nothing to create or remove per program.
        """
        if self.private_tmp:
            return "/tmp"
        self._counter += 1
        path = os.path.join(self.scratch_root, str(self._counter))
        os.mkdir(path, 0o700)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    # ------------------------------------------------------------------------------ child
    def enter_child(self, scratch: str, result_fd: int, cpu_seconds: float,
                    request_fd: int | None = None) -> None:
        """In the forked child: session, fds, limits, identity. `result_fd` becomes fd 3,
        `request_fd` (if any) fd 4."""
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if request_fd == RESULT_FD:  # keep it from being replaced by the next line
            request_fd = os.dup(request_fd)
        os.dup2(result_fd, RESULT_FD)
        last = RESULT_FD
        if request_fd is not None:
            os.dup2(request_fd, REQUEST_FD)
            last = REQUEST_FD
        # Everything else (the worker's job/verdict pipes included) is closed.
        os.closerange(last + 1, 1 << 16)
        os.chdir(scratch)
        if not self.private_tmp:  # else set once for all runs by `setup`
            os.environ.update(HOME=scratch, TMPDIR=scratch)
        cpu = max(1, int(cpu_seconds + 0.999))
        limits = (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (self.memory_mb << 20,) * 2),
            (resource.RLIMIT_FSIZE, (self.max_output_bytes,) * 2),
            (resource.RLIMIT_NOFILE, (self.max_open_files,) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        )
        for which, value in limits:
            resource.setrlimit(which, value)
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.uid)
            os.setuid(self.uid)
            # NPROC counts the processes of the real uid, so it only bites once unprivileged
            # (and is per worker since the uid is).
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes,) * 2)
        # A uid change resets dumpable to the admin's suid_dumpable: set it again.
        _check(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")

    # ----------------------------------------------------------------------------- reaping
    def reap(self, pid: int, status: int | None) -> int:
        """Kills the run's process group and every process it left behind; reaps them all.

        `status` is the child's wait status if it was already reaped; returns it.
        """
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if status is None:
            _, status = os.waitpid(pid, 0)  # prompt: it was just sent SIGKILL
        if self._no_children():
            return status
        for _ in range(1000):
            strays = self._strays()
            if not strays:
                break
            for stray in strays:
                try:
                    os.kill(stray, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self._reap_zombies()
            time.sleep(0.001)
        self._reap_zombies()
        return status

    @staticmethod
    def _no_children() -> bool:
        """True when this worker has no child process at all (none alive, none a zombie).

        Then nothing of the run is left: every process the run created descends from its
        child, and a process whose parent died is re-parented to the nearest live subreaper
        above it (this worker is one, or PID 1 of its namespace), so any process the run
        left, alive or a zombie, keeps a live chain of parents up to a child of this worker.
        One wait() answers it, instead of a scan of /proc (the usual case: no fork at all).
        """
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return False

    def _strays(self) -> list[int]:
        me = os.getpid()
        strays = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if self.pid_namespace:
                    if name != "1" and _alive(name):  # PID 1 is this worker
                        strays.append(int(name))
                elif self.uid is not None:
                    if os.stat("/proc/" + name).st_uid == self.uid and _alive(name):
                        strays.append(int(name))
                elif _parent(name) == me and _alive(name):
                    strays.append(int(name))  # a subreaper adopts every orphan of its runs
            except OSError:
                continue
        return strays

    @staticmethod
    def _reap_zombies() -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def clean_files(self, scratch: str) -> None:
        """Removes the scratch dir and, when private to this worker, all temporary files."""
        if not self.private_tmp:
            _rmtree(scratch)
            return
        for root in PRIVATE_TMP_DIRS:
            empty = self._empty_inodes.get(root)
            if empty is not None and _used_inodes(root) == empty:
                continue  # the tmpfs holds as many inodes as when empty: nothing in it
            try:
                entries = os.listdir(root)
            except OSError:
                continue
            for entry in entries:
                path = os.path.join(root, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    _rmtree(path)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """Root without its powers (the unprivileged path taken as root): no capability in the
    bounding set (an exec cannot regain them), none effective or permitted, no_new_privs."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:
            _check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")  # EINVAL: past the last capability
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    data = (_CapData * 2)()  # all zero
    _check(libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data),
           "capset")


def _rmtree(path: str) -> None:
    """shutil.rmtree(path, ignore_errors=True), with shutil imported only when needed.

    Not at module import: shutil loads zlib, bz2 and lzma (4 shared libraries, ~30 of the
    worker's ~100 memory mappings), and every mapping is copied by each fork and torn down
    by each child's exit; runs that leave files behind are rare.
    """
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mkdtemp(prefix: str, parent: str | None = None) -> str:
    """A new private (0700) directory, like tempfile.mkdtemp.

    Not tempfile itself: it imports `random`, whose at-fork hook then reseeds in every
    forked child (~40 of a child's ~450 copy-on-write page faults, measured); programs that
    use `random` import it themselves, freshly seeded.
    """
    if parent is None:
        parent = next((os.environ[k] for k in ("TMPDIR", "TEMP", "TMP")
                       if os.path.isdir(os.environ.get(k, ""))), "/tmp")
    while True:
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def _used_inodes(path: str) -> int | None:
    """Inodes in use on the file system of `path`; None if it does not count them."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_files - st.f_ffree if st.f_files else None


def _stat_fields(name: str) -> list[str]:
    with open(f"/proc/{name}/stat", "rb") as f:
        data = f.read().decode(errors="replace")
    return data[data.rfind(")") + 2:].split()


def _alive(name: str) -> bool:
    try:
        return _stat_fields(name)[0] not in ("Z", "X")
    except OSError:
        return False


def _parent(name: str) -> int:
    return int(_stat_fields(name)[1])
