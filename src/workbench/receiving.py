"""How a receiver process answers: the service, wrapped in write-behind where that is chosen."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from .config import ConfigSet
from .service import SourceService
from .store import Store
from .writebehind import DEFAULT_PAUSE, with_write_behind

log = logging.getLogger(__name__)


def build_service(
    configs: ConfigSet,
    store: Store,
    *,
    environ: Mapping[str, str] | None = None,
    write_behind: bool = True,
    pause: float | None = None,
    announce: Callable[[str], None] | None = None,
):
    """The service a receiver answers with. With `write_behind`, on a SQLite file store, it
    journals, answers, then logs in batches (`workbench.writebehind`), after logging what dead
    receiver processes left in their journals (said through `announce`, else logged); otherwise
    it logs each row before answering."""
    service = SourceService(configs, store, environ=environ)
    if not write_behind:
        return service
    wrapped = with_write_behind(service, float(pause or DEFAULT_PAUSE))
    if wrapped is not service:
        try:
            done = wrapped.recover_orphans()
        except Exception:  # the retry loop tries again; serving must not wait for it
            log.exception("could not yet log the journals that stopped receivers left")
        else:
            if done:
                text = f"Logged {done} answered rows that a stopped receiver left in {wrapped.folder}"
                (announce or log.warning)(text)
    return wrapped
