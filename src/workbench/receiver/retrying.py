"""The retry loop of a receiver process: queued actions and stalled events, every few seconds."""

from __future__ import annotations

import logging
import threading

from ..errors import StoreUnavailable

log = logging.getLogger(__name__)


class RetryWorker:
    """Calls `service.retry_due()` every `interval` seconds on a daemon thread.

    Several processes may run one each: the store reserves due retries atomically.
    """

    def __init__(self, runtime, interval: float = 5.0):
        self.runtime = runtime
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-retry", daemon=True)

    def start(self) -> RetryWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.runtime.reload_configs()
                self.runtime.service.retry_due()
            except StoreUnavailable as exc:  # an outage: one line per pass, not a traceback
                log.warning("retry pass skipped: %s", exc)
            except Exception:  # keep retrying later; one bad pass must not end the loop
                log.exception("retry pass failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
