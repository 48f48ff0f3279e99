"""One function run in a background thread, joined before anything that needs one thread.

`threading` costs ~1.5 ms to import; a raw `_thread` and a lock do what the hot path needs.
`join` also waits until the kernel has reaped the thread: setns(user) and unshare(CLONE_NEWUSER)
refuse a multithreaded caller (EINVAL), and a fork should copy one thread only. A forked child
has no copy of the thread: there `join` returns at once.
"""

from __future__ import annotations

import os


class Background:
    def __init__(self, fn) -> None:
        import _thread

        self._owner = os.getpid()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - handed to the joining thread
                self.error = e
            finally:
                self._done.release()

        _thread.start_new_thread(run, ())

    def join(self, timeout: float = 5.0) -> BaseException | None:
        """Wait for the function and for the thread's end; what the function raised, if any."""
        if os.getpid() != self._owner:
            return None
        self._done.acquire()
        self._done.release()
        import time

        deadline = time.monotonic() + timeout
        while len(os.listdir("/proc/self/task")) > 1:
            if time.monotonic() > deadline:
                return TimeoutError("the background thread did not exit")
            os.sched_yield()
        return self.error
