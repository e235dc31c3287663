"""A seccomp filter for the sandbox: a deny-list of system calls that ordinary programs never need.

The sandbox already runs without capabilities in its own namespaces; this narrows the kernel surface a hostile
program can reach (module loading, eBPF, perf, io_uring, userfaultfd, keyrings, mounts, ptrace...). Denied calls
fail with EPERM, so runtimes that probe for a feature (libuv tries io_uring) fall back instead of dying.

The program is classic BPF, assembled here so no library is needed; bwrap installs it (``--seccomp FD``) right
before it executes the driver. Only x86-64 is covered: elsewhere no filter is installed.
"""

from __future__ import annotations

import errno
import platform
import struct
from collections.abc import Iterable

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_EPERM = 0x00050000 | errno.EPERM

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl).
DENIED_X86_64: dict[str, int] = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "ustat": 136,
    "sysfs": 139,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}


# Denied only when no cgroup bounds the run: memory these make is in no address space (memfd pages written with
# write(2), SysV segments after shmdt, message queues), so without a cgroup nothing would count it.
FALLBACK_DENIED: tuple[str, ...] = ("memfd_create", "shmget", "msgget")
_FALLBACK_X86_64: dict[str, int] = {"memfd_create": 319, "shmget": 29, "msgget": 68}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_list_program(denied: list[int]) -> bytes:
    """The BPF program: wrong architecture -> kill; x32 or a denied number -> EPERM; anything else -> allow."""
    n = len(denied)
    # Layout: 0 ld arch | 1 jeq arch | 2 ret kill | 3 ld nr | 4 jge x32 | 5..5+n-1 jeq nr | allow | eperm
    eperm = 5 + n + 1
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),
        _insn(_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, 0),
        _insn(_JGE_K, eperm - 4 - 1, 0, _X32_SYSCALL_BIT),
    ]
    for i, nr in enumerate(denied):
        prog.append(_insn(_JEQ_K, eperm - (5 + i) - 1, 0, nr))
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _RET_EPERM))
    return b"".join(prog)


def sandbox_filter(also: Iterable[str] = ()) -> bytes | None:
    """The filter for this machine (denying ``also`` too, names of :data:`FALLBACK_DENIED`), or None where it has
    no syscall table here."""
    if platform.machine() not in ("x86_64", "amd64", "AMD64"):
        return None
    numbers = set(DENIED_X86_64.values()) | {_FALLBACK_X86_64[name] for name in also}
    return deny_list_program(sorted(numbers))
