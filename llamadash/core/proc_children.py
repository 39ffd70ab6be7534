"""The child processes of a process, from the kernel's own lists where it keeps them.

psutil's ``Process.children()`` finds children by reading ``/proc/*/stat`` of every process on the
machine (a parent map: 70 files on a bare VM, several hundred on a desktop) each time it is asked.
Linux also lists each thread's children in ``/proc/PID/task/TID/children`` (``CONFIG_PROC_CHILDREN``,
on in the usual kernels): one small read per thread of the parent, whatever else runs. This module
reads those, and falls back to psutil where they are missing (another OS, or a kernel without them).
"""

from __future__ import annotations

import os
import threading

import psutil

__all__ = ["children", "kernel_lists_children"]

_supported: bool | None = None


def kernel_lists_children() -> bool:
    """Whether ``/proc/PID/task/TID/children`` exists here (asked once, of this process)."""
    global _supported
    if _supported is None:
        _supported = os.path.exists(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children")
    return _supported


def _child_pids(pid: int) -> list[int]:
    """The PIDs of ``pid``'s children; raises :class:`psutil.NoSuchProcess` if ``pid`` is gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    except PermissionError:
        raise psutil.AccessDenied(pid) from None
    pids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                pids.extend(int(field) for field in file.read().split())
        except FileNotFoundError:
            continue  # that thread has just ended (its children, if any, went to another)
    return pids


def children(proc: psutil.Process, *, recursive: bool = True) -> list[psutil.Process]:
    """``proc.children(recursive=...)``, read from the kernel's per-thread lists when it has them.

    Raises what psutil raises for ``proc`` itself (:class:`psutil.NoSuchProcess`, ...); a child that
    ends while it is read is left out.
    """
    if not kernel_lists_children():
        return list(proc.children(recursive=recursive))
    if not proc.is_running():
        raise psutil.NoSuchProcess(proc.pid)
    found: list[psutil.Process] = []
    seen = {proc.pid}
    parents = [proc.pid]
    while parents:
        next_parents: list[int] = []
        for parent in parents:
            try:
                pids = _child_pids(parent)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                if parent == proc.pid:
                    raise
                continue  # a child gone meanwhile: its own children are not ours to find
            for pid in pids:
                if pid in seen:
                    continue
                seen.add(pid)
                try:
                    found.append(psutil.Process(pid))
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                except psutil.AccessDenied:
                    continue
                next_parents.append(pid)
        parents = next_parents if recursive else []
    return found
