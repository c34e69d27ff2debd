"""The demo's output: a screen redrawn in place on a terminal, one timestamped line per change everywhere else.

A person watching a terminal wants the table as it is now; a log file, a CI job or a test reading a pipe wants each
change once, on its own line, with nothing redrawn. The hazards: escape codes in a pipe (live mode only on a TTY,
and `--plain` forces lines), flicker (the screen is rewritten from the top, line by line, and only when it changed),
and losing the "demo ready" moment on a terminal (the ready lines stay in the screen's footer from then on).
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TextIO

from nomad_operator.demo_defaults import RECENT_EVENTS_SHOWN
from nomad_operator.demo_view import DemoSnapshot, render_screen

CURSOR_HOME = "\x1b[H"
CLEAR_LINE_END = "\x1b[K"
CLEAR_SCREEN_END = "\x1b[J"
DEFAULT_WIDTH = 120


class DemoConsole:
    """`note` prints a line now; `changes` records changes; `show` draws a snapshot; `ready` sets the footer."""

    def __init__(self, out: TextIO, *, live: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.live = live
        self._clock = clock
        self._started = clock()
        self.header: list[str] = []
        self.footer: list[str] = []
        self._events: deque[str] = deque(maxlen=RECENT_EVENTS_SHOWN)
        self._last_screen: str | None = None
        self._last_snapshot: DemoSnapshot | None = None

    def stamp(self) -> str:
        return f"[{self._clock() - self._started:6.1f}s]"

    def note(self, text: str = "") -> None:
        """A line that is not a cluster change (start-up, shutdown, errors): printed as is, in both modes."""
        self.close()  # below the live screen, which stays readable above the note
        print(text, file=self.out, flush=True)

    def changes(self, lines: Sequence[str]) -> None:
        for line in lines:
            stamped = f"{self.stamp()} {line}"
            if self.live:
                self._events.append(stamped)
            else:
                print(stamped, file=self.out, flush=True)

    def show(self, snapshot: DemoSnapshot) -> None:
        self._last_snapshot = snapshot
        if not self.live:
            return
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 40)).columns
        screen = render_screen(snapshot, header=self.header, events=list(self._events), footer=self.footer,
                               width=width)  # fmt: skip
        if screen == self._last_screen:
            return
        self._last_screen = screen
        body = "".join(line + CLEAR_LINE_END + "\n" for line in screen.split("\n"))
        self.out.write(CURSOR_HOME + body + CLEAR_SCREEN_END)
        self.out.flush()

    def ready(self, lines: Sequence[str]) -> None:
        """The moment every job is healthy: printed once as lines, and kept as the live screen's footer."""
        self.footer = list(lines)
        if self.live:
            if self._last_snapshot is not None:
                self.show(self._last_snapshot)
            return
        first, *rest = lines
        print(f"{self.stamp()} {first}", file=self.out)
        for line in rest:
            print(line, file=self.out)
        self.out.flush()

    def close(self) -> None:
        """Leaves the cursor below the live screen, so the shell prompt does not overwrite it."""
        if self.live and self._last_screen is not None:
            self._last_screen = None
            self.out.write("\n")
            self.out.flush()
