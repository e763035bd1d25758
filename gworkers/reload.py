"""``--reload``: a watcher thread in the master that asks the arbiter to restart its workers.

The arbiter already knows how to replace workers without dropping the listening socket (HUP:
new workers first, then the old ones drain), so reloading is only "notice an edit, send HUP to
ourselves". That works for any number of workers, and because the master never imports the
application, every new worker imports the edited code afresh.

watchfiles is used when installed (kernel notifications); otherwise the watched trees are polled
every ``delay`` seconds. Either way a path counts when it matches an include glob and no exclude
glob and is not under an excluded directory.

``start()`` returns once the watcher really watches (watchfiles has put its watches in place, or
the first polling snapshot is taken), so "watching ... for changes" is true when it is logged:
an edit made after that line is never missed.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", "*.py[cod]", ".sw.*", "~*")
START_TIMEOUT = 10.0


class _FirstPollSignals:
    """The ``stop_event`` handed to watchfiles: its Rust loop asks ``is_set()`` every step,
    and only once its watches are in place, so the first question says the watcher is live."""

    def __init__(self, stop: threading.Event, ready: threading.Event) -> None:
        self.stop = stop
        self.ready = ready

    def is_set(self) -> bool:
        self.ready.set()
        return self.stop.is_set()


class FileFilter:
    """Which changed paths matter. Globs match the file name or, with a '/', the path's tail."""

    def __init__(self, includes: Iterable[str] = (), excludes: Iterable[str] = ()) -> None:
        includes = list(includes)
        excludes = list(excludes)
        self.exclude_dirs: list[Path] = []
        exclude_globs: list[str] = []
        for item in excludes:
            path = Path(item)
            if path.is_dir():
                self.exclude_dirs.append(path.resolve())
            else:
                exclude_globs.append(item)
        # A default on one side is dropped when the user names it on the other side.
        self.includes = [g for g in DEFAULT_INCLUDES if g not in excludes] + includes
        self.excludes = [g for g in DEFAULT_EXCLUDES if g not in includes] + exclude_globs

    @staticmethod
    def _match(path: Path, pattern: str) -> bool:
        if "/" in pattern:
            return path.match(pattern)
        return fnmatch.fnmatch(path.name, pattern)

    def excluded_dir(self, path: Path) -> bool:
        if path in self.exclude_dirs:
            return True
        return any(self._match(path, g) for g in self.excludes if g != "*.py[cod]")

    def __call__(self, path: Path) -> bool:
        if not any(self._match(path, g) for g in self.includes):
            return False
        if any(d == path or d in path.parents for d in self.exclude_dirs):
            return False
        return not any(self._match(path, g) for g in self.excludes)


class Reloader:
    """Watches ``dirs`` in a daemon thread and calls ``on_change(paths)`` after each edit."""

    def __init__(self, dirs: Iterable[str], includes: Iterable[str], excludes: Iterable[str],
                 delay: float, on_change: Callable[[list[Path]], None]) -> None:
        self.dirs = [Path(d).resolve() for d in dirs] or [Path.cwd()]
        self.filter = FileFilter(includes, excludes)
        self.delay = delay
        self.on_change = on_change
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set once edits are seen (or the watcher has failed)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            self.engine = "polling"
        else:
            self.engine = "watchfiles"

    def start(self, timeout: float = START_TIMEOUT) -> bool:
        """Start the watcher thread; True once it sees edits, False if it failed or is still
        setting up after ``timeout`` seconds (a huge tree to scan)."""
        target = self._run_watchfiles if self.engine == "watchfiles" else self._run_polling
        self.thread = threading.Thread(target=self._run, args=(target,), name="gworkers-reloader",
                                       daemon=True)
        self.thread.start()
        return self.ready.wait(timeout) and self.error is None

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - said in the server's log, not a thread traceback
            self.error = exc
            logging.getLogger("gunicorn.error").error(
                "gworkers: the reloader stopped, edits are no longer followed: %r", exc)
        finally:
            self.ready.set()  # never leave start() waiting on a watcher that is gone

    def stop(self) -> None:
        self.stop_event.set()

    def _changed(self, paths: list[Path]) -> None:
        # Let a burst of writes (editor save, git checkout) settle before restarting.
        if self.delay and self.stop_event.wait(self.delay):
            return
        self.on_change(sorted(set(paths)))

    # ------------------------------------------------------------------ watchfiles
    def _run_watchfiles(self) -> None:
        import watchfiles

        def keep(change: object, path: str) -> bool:
            return self.filter(Path(path))

        # rust_timeout=0: no periodic timeout, whose return clears watchfiles' change set after
        # it found it empty, so an edit landing in between would be dropped.
        signals = _FirstPollSignals(self.stop_event, self.ready)
        for changes in watchfiles.watch(*self.dirs, watch_filter=keep, stop_event=signals,
                                        debounce=400, step=50, rust_timeout=0,
                                        raise_interrupt=False, ignore_permission_denied=True):
            if self.stop_event.is_set():
                return
            self._changed([Path(p) for _, p in changes])

    # ------------------------------------------------------------------ polling
    def snapshot(self) -> dict[Path, tuple[int, int, int]]:
        """Each watched file's (mtime, size, inode): the size and the inode catch an edit (or an
        editor's save-by-rename) landing within the filesystem's timestamp granularity."""
        mtimes: dict[Path, tuple[int, int, int]] = {}
        for root in self.dirs:
            for dirpath, dirnames, filenames in os.walk(root):
                base = Path(dirpath)
                dirnames[:] = [d for d in dirnames if not self.filter.excluded_dir(base / d)]
                for name in filenames:
                    path = base / name
                    if self.filter(path):
                        try:
                            st = os.stat(path)
                        except OSError:
                            continue
                        mtimes[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return mtimes

    def _run_polling(self) -> None:
        before = self.snapshot()
        self.ready.set()
        while not self.stop_event.wait(max(self.delay, 0.05)):
            now = self.snapshot()
            if now != before:
                changed = [p for p in now.keys() | before.keys() if now.get(p) != before.get(p)]
                before = now
                self.on_change(sorted(changed))
