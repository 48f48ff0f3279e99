"""Paths resolved by name inside an attacker-controlled rootfs, through the real CLI.

CVE-2018/2019 mount-destination symlinks, CVE-2019-19921 / CVE-2023-27561 (/proc through a
symlink), CVE-2021-30465 (a volume's directory swapped for a symlink while the mounts are made),
CVE-2024-45310 (empty files and directories created on the host through symlinks),
CVE-2025-31133 (/dev/null replaced: maskedPaths bind something else), CVE-2025-52565
(/dev/console). The image (or a second container sharing a volume) is hostile; the host, its
files and its mount table must stay as they were. tests/test_rootfs_attacks.py covers the same
at the function level.
"""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from test_lifecycle_util import run_detached
from test_security_util import (bind, files, glibc_image, mounts_of, no_leaks_here, one_line_error,
                                volume, write_exec)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _tree(path: str) -> list[str]:
    out = []
    for dirpath, dirs, names in os.walk(path):
        out += [os.path.join(dirpath, n) for n in dirs + names]
    return sorted(out)


HOST_ROOT_NAMES = ("/sub", "/file", "/tmp/sub", "/tmp/file")


@pytest.fixture
def host(rt, tmp_path):
    """A host directory the image points its symlinks at: it must stay exactly as it is, and
    so must the host's mount table (at the test's paths and the places a symlink to / leads)."""
    d = tmp_path / "host-target"
    d.mkdir()
    (d / "victim").write_text("host data\n")
    before = (_tree(str(d)), mounts_of(rt, *HOST_ROOT_NAMES))
    yield str(d)
    assert (d / "victim").read_text() == "host data\n"
    assert _tree(str(d)) == before[0], "something was created on the host"
    assert mounts_of(rt, *HOST_ROOT_NAMES) == before[1], "the host mount table changed"
    for p in HOST_ROOT_NAMES:
        assert not os.path.lexists(p), f"{p} created on the host"


def _rootfs(b: str) -> str:
    return os.path.join(b, "rootfs")


@pytest.mark.parametrize("name", ["proc", "dev"])
@pytest.mark.parametrize("target", ["abs", "rel"])
def test_proc_or_dev_symlink_to_the_host(rt, no_leaks_here, host, name, target):
    """The image's /proc or /dev is a symlink to the host's (CVE-2019-19921): refused, with
    nothing mounted through it."""
    def edit(cfg):
        r = cfg["root"]["path"]
        shutil.rmtree(os.path.join(r, name))
        os.symlink(f"/{name}" if target == "abs" else "../" * 12 + name, os.path.join(r, name))
    cid = rt.new_id()
    r = files(rt, "run", "--bundle", rt.bundle(["true"], edit=edit), cid)
    assert one_line_error(r).endswith(f"rootfs /{name} is a symlink: refusing to use it"), r.stderr


@pytest.mark.parametrize("kind", ["abs", "rel"])
def test_mount_destination_through_symlink_stays_in_rootfs(rt, no_leaks_here, host, kind):
    """/mnt in the image is a symlink to a host directory; tmpfs, bind and file mounts below it
    land inside the rootfs (the target path recreated there), never in the host directory."""
    src = volume(rt, "src")
    with open(os.path.join(src, "f"), "w") as f:
        f.write("payload\n")

    def edit(cfg):
        r = cfg["root"]["path"]
        os.symlink(host if kind == "abs" else "../" * 12 + host.lstrip("/"), os.path.join(r, "mnt"))
        cfg["mounts"] += [{"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs"},
                          bind(src, "/mnt/dir"), bind(os.path.join(src, "f"), "/mnt/file"),
                          {"destination": "/mnt/deep/a/b", "type": "tmpfs", "source": "tmpfs"}]
        cfg["process"]["args"] = ["sh", "-c", "cat /mnt/file && cat /mnt/dir/f && "
                                  "grep -c ' /mnt\\| " + host + "' /proc/self/mountinfo; touch /mnt/tmp/x"]
    cid = rt.new_id()
    b = rt.bundle(edit=edit)
    r = rt.run("run", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["payload", "payload"], r.stdout
    # the mountpoints were made inside the rootfs, where the symlink points from there
    assert os.path.isdir(_rootfs(b) + host + "/tmp") and os.path.isdir(_rootfs(b) + host + "/deep/a/b")
    assert os.path.isfile(_rootfs(b) + host + "/file")


def test_dev_null_symlink_never_used_for_masking(rt, no_leaks_here, host):
    """CVE-2025-31133: the image's /dev/null (no /dev tmpfs in the config) is a symlink to a
    procfs file; maskedPaths must not bind that file (a writable core_pattern in the container),
    nor the host file it names."""
    for target in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", os.path.join(host, "victim")):
        def edit(cfg, target=target):
            r = cfg["root"]["path"]
            os.symlink(target, os.path.join(r, "dev", "null"))
            cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
            # only looks: a masked path must be the null device
            cfg["process"]["args"] = ["sh", "-c", "for p in /proc/kcore /proc/keys /proc/timer_list; do "
                                      "[ -e $p ] && stat -L -c '%F %t:%T' $p; done; true"]
        cid = rt.new_id()
        r = files(rt, "run", "--bundle", rt.bundle(edit=edit), cid)
        if r.returncode != 0:
            assert "/dev/null is not the null device" in one_line_error(r), r.stderr
        else:
            assert r.stdout.splitlines(), r.stdout
            for line in r.stdout.splitlines():
                assert line == "character special file 1:3", r.stdout
        rt.run("delete", "--force", cid)


def test_dev_console_symlink(rt, no_leaks_here, host, tmp_path):
    """CVE-2025-52565 / CVE-2024-45310: the image's /dev/console (no /dev tmpfs) is a symlink to
    a host path that does not exist, or to a procfs file: the console is set up on a /dev/console
    of the container's own; nothing is created on the host, no procfs file is covered."""
    from test_console import ConsoleServer

    for target in (os.path.join(host, "created-by-runtime"), "/proc/sys/kernel/core_pattern"):
        def edit(cfg, target=target):
            r = cfg["root"]["path"]
            os.symlink(target, os.path.join(r, "dev", "console"))
            cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]
            cfg["process"]["terminal"] = True
            cfg["process"]["args"] = ["sh", "-c", "stat -c '%F' /dev/console; stat -c '%F %t' /proc/sys/kernel/core_pattern; "
                                      "grep -c core_pattern /proc/self/mountinfo"]
        srv = ConsoleServer()
        try:
            cid = rt.new_id()
            r = files(rt, "run", "--detach", "--console-socket", srv.path, "--bundle", rt.bundle(edit=edit), cid)
            if r.returncode == 0:
                out = srv.wait().splitlines()
                assert out[0] == "character special file", out  # /dev/console is the pty itself
                assert out[1] == "regular empty file 0" and out[2] == "0", out  # core_pattern untouched
            else:
                one_line_error(r)
        finally:
            srv.close()
            rt.run("delete", "--force", cid)
    assert not os.path.lexists(os.path.join(host, "created-by-runtime"))


# the console server's thread fails when the runtime refuses before sending a pty: expected
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dev_pts_symlinks(rt, no_leaks_here, host):
    """CVE-2025-52565's other half: the pty's slave /dev/pts/N is a symlink to core_pattern in
    an image whose /dev/pts is its own directory (no devpts in the config), with a ptmx device
    node of its own: the bind mount onto /dev/console must never bind core_pattern."""
    from test_console import ConsoleServer

    def edit(cfg):
        r = cfg["root"]["path"]
        os.makedirs(os.path.join(r, "dev", "pts"), exist_ok=True)
        os.mknod(os.path.join(r, "dev", "pts", "ptmx"), 0o666 | stat.S_IFCHR, os.makedev(5, 2))
        for n in range(10):
            os.symlink("/proc/sys/kernel/core_pattern", os.path.join(r, "dev", "pts", str(n)))
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] not in ("/dev", "/dev/pts")]
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", "stat -c '%F' /dev/console"]
    srv = ConsoleServer()
    cid = rt.new_id()
    try:
        r = files(rt, "run", "--detach", "--console-socket", srv.path, "--bundle", rt.bundle(edit=edit), cid)
        if r.returncode == 0:
            assert srv.wait().splitlines() == ["character special file"]
        else:
            assert "ptmx" in one_line_error(r) or "pts" in r.stderr, r.stderr
    finally:
        srv.close()
        rt.run("delete", "--force", cid)


def test_masked_and_readonly_paths_through_symlinks(rt, no_leaks_here, host):
    """maskedPaths / readonlyPaths entries that are symlinks in the image to host paths: masked
    inside the container (the target resolved in the rootfs); nothing of the host touched."""
    def edit(cfg):
        r = cfg["root"]["path"]
        os.makedirs(r + host, exist_ok=True)
        with open(r + host + "/victim", "w") as f:
            f.write("image data\n")
        os.symlink(os.path.join(host, "victim"), os.path.join(r, "maskme"))
        os.symlink("../" * 12 + host.lstrip("/"), os.path.join(r, "rome"))
        cfg["linux"]["maskedPaths"] = cfg["linux"]["maskedPaths"] + ["/maskme"]
        cfg["linux"]["readonlyPaths"] = cfg["linux"]["readonlyPaths"] + ["/rome"]
        cfg["root"]["readonly"] = False
        cfg["process"]["args"] = ["sh", "-c", f"cat {host}/victim; echo end; touch {host}/new 2>/dev/null && echo WROTE; true"]
    cid = rt.new_id()
    r = rt.run("run", "--bundle", rt.bundle(edit=edit), cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["end"], r.stdout  # masked (empty), read-only (no WROTE)


# --- the race: a second container swaps a shared volume's directory for a symlink -----------

SWAPPER = """#!/usr/bin/python3
import os, sys
targets = sys.argv[1:]
i = 0
while True:
    i += 1
    t = targets[i % len(targets)]
    for op in (lambda: os.mkdir("/vol/d"), lambda: os.rmdir("/vol/d"),
               lambda: os.symlink(t, "/vol/d"), lambda: os.unlink("/vol/d")):
        try:
            op()
        except OSError:
            if os.path.isdir("/vol/d") and not os.path.islink("/vol/d"):
                for n in os.listdir("/vol/d"):  # the mountpoints A made in it
                    for rm in (os.rmdir, os.unlink):
                        try:
                            rm("/vol/d/" + n)
                        except OSError:
                            pass
"""


def test_racing_symlink_swap_in_shared_volume(rt, no_leaks_here, host):
    """CVE-2021-30465: container B swaps /vol/d between a directory and a symlink (to the host
    directory by absolute path, and by a relative path climbing out of the volume) in a tight
    loop; container A, sharing the volume, is created again and again with mounts inside it."""
    vol = volume(rt, "shared")
    b_id = rt.new_id("swapper")
    rel = "../" * 16 + host.lstrip("/")

    def swapper(cfg):
        glibc_image(cfg["root"]["path"], cfg)
        write_exec(os.path.join(cfg["root"]["path"], "swap"), SWAPPER)
        cfg["mounts"].append(bind(vol, "/vol"))
    run_detached(rt, rt.bundle(["/swap", host, rel, "/"], edit=swapper), b_id)

    n = int(os.environ.get("PYRUNTIME_RACE_CREATES", "30"))
    outcomes = {"ok": 0, "refused": 0}
    rootfs = _rootfs(rt.bundle())  # one copy for every A: the symlink may create dirs in it
    for i in range(n):
        def edit(cfg):
            cfg["root"]["path"] = rootfs
            cfg["mounts"] += [bind(vol, "/data"),
                              {"destination": "/data/d/sub", "type": "tmpfs", "source": "tmpfs"},
                              bind(os.path.join(host, "victim"), "/data/d/file")]
            cfg["process"]["args"] = ["sleep", "1000"]
        cid = rt.new_id()
        r = files(rt, "create", "--bundle", rt.bundle(edit=edit, copy_rootfs=False), cid)
        if r.returncode == 0:
            outcomes["ok"] += 1
        else:
            one_line_error(r)
            outcomes["refused"] += 1
        rt.run("delete", "--force", cid, check=True)
        assert not os.path.lexists("/sub") and not os.path.lexists("/file"), "created on the host's /"
    rt.run("delete", "--force", b_id, check=True)
    assert outcomes["ok"] + outcomes["refused"] == n
    # the race was run: some creates went through the symlink (their mountpoints were made
    # where it points, inside the rootfs), others through the directory
    through = [p for p in (rootfs + host, rootfs + "/sub", rootfs + "/file") if os.path.lexists(p)]
    print(f"race: {outcomes}, through the symlink: {through}")
