"""What the database keeps about a dashboard's servers, and about the ones a killed dashboard left.

:class:`InstanceRecords` is the instance manager's bookkeeping:

* one PID record per process this dashboard started or adopted (metadata ``instance_pids``, see
  :mod:`llamadash.core.pidfile`), made the moment the process exists
  (:attr:`~llamadash.services.instance.ServerInstance.spawned`) and removed once it is gone, so that a
  dashboard killed at any moment leaves nothing the next start cannot find;
* each model's ``status`` column, and why it is in error (for ``llamadash status`` and
  ``models show``; cleared when the model next runs);
* the orphans (servers of a killed dashboard) the last :meth:`~InstanceRecords.rescan` found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import psutil

from llamadash.core import database as db
from llamadash.core import pidfile
from llamadash.core.pidfile import InstanceRecord
from llamadash.core.states import InstanceState
from llamadash.services.instance import ServerInstance

__all__ = ["InstanceRecords"]

_log = logging.getLogger(__name__)


class InstanceRecords:
    """PID records, statuses and error reasons of the manager's instances; the orphans found."""

    def __init__(self) -> None:
        self._recorded: dict[str, int] = {}  # model name -> PID in instance_pids
        self.orphans: list[InstanceRecord] = []
        """The servers a killed dashboard left behind, as of the last scan (less those adopted or stopped)."""

    def rescan(self, instances: Iterable[ServerInstance]) -> None:
        """Find the orphans again; set ``stopped`` where the database says a model runs but nothing does.

        A model runs when ours, an orphan or another running llamadash's process serves it.
        """
        instances = list(instances)
        found = pidfile.scan()
        adopted = {inst.pid for inst in instances if inst.adopted}
        self.orphans = [r for r in found.orphans if r.pid not in adopted]
        live = {r.model for r in found.orphans + found.foreign}
        live |= {inst.name for inst in instances if inst.active}
        for name in pidfile.reset_stale_statuses(live):
            _log.info("%s was marked running but no process is left; now stopped", name)

    def orphan_dicts(self) -> list[dict[str, Any]]:
        """The orphans, one dict each (see :meth:`InstanceManager.orphans`)."""
        return [
            {
                "pid": r.pid,
                "port": r.port,
                "host": r.host,
                "url": r.url,
                "model": r.model,
                "model_id": r.model_id,
                "binary": r.binary,
                "started_at_ms": r.started_at_ms,
            }
            for r in self.orphans
        ]

    def reserved_ports(self, instances: Iterable[ServerInstance], model_id: int | None) -> dict[int, str]:
        """The ports that model ``model_id`` may not take, each with who holds it (for the port check).

        Those of the other active instances of the library, and of the orphans.
        """
        reserved = {
            r.port: f" by a llama-server ({r.model}, pid {r.pid}) left behind by a killed dashboard"
            for r in self.orphans
            if r.port is not None
        }
        reserved.update(  # ours last: a port both hold is said to be ours
            {
                inst.port: f" by {inst.name}"
                for inst in instances
                if inst.active and not inst.external and inst.model_id != model_id and inst.port is not None
            }
        )
        return reserved

    def claim(self, name: str, record: InstanceRecord) -> None:
        """The orphan ``record`` is adopted as ``name``'s instance: ours from now on."""
        self.orphans = [r for r in self.orphans if r.pid != record.pid]
        owner_pid, owner_created = pidfile.owner_identity()
        try:  # another dashboard starting up must not take it for an orphan
            pidfile.add_record(replace(record, owner_pid=owner_pid, owner_create_time=owner_created))
        except db.DatabaseError as exc:
            _log.warning("cannot record the adoption of pid %s: %s", record.pid, exc)
        self._recorded[name] = record.pid

    def stop_orphans(self, timeout_s: float) -> list[int]:
        """Stop every orphan (terminate, then kill after ``timeout_s``); returns the PIDs stopped."""
        stopped, self.orphans = pidfile.stop_orphans(self.orphans, timeout_s)
        return [r.pid for r in stopped]

    def note_state(self, inst: ServerInstance, state: InstanceState, reason: str) -> None:
        """An instance of the library changed state: its record first, then its status and reason."""
        self.follow(inst)  # first: the record is what finds the process again
        self._set_status(inst.model_id, inst.name, state)
        self._keep_error_reason(inst.model_id, state, reason)

    def follow(self, inst: ServerInstance) -> None:
        """Make the PID record match the instance's process (a new one recorded, a gone one removed)."""
        recorded = self._recorded.get(inst.name)
        pid = inst.pid
        try:
            if recorded is not None and recorded != pid:
                pidfile.remove_record(recorded)
                del self._recorded[inst.name]
            if pid is not None and recorded != pid and not inst.adopted:
                owner_pid, owner_created = pidfile.owner_identity()
                try:
                    created = psutil.Process(pid).create_time()
                except psutil.Error:
                    return
                plan = inst.launch_plan
                pidfile.add_record(
                    InstanceRecord(
                        pid=pid,
                        create_time=created,
                        model=inst.name,
                        model_id=inst.model_id,
                        host=inst.host,
                        port=inst.port,
                        binary=plan.binary if plan else "",
                        started_at_ms=inst.started_at_ms,
                        owner_pid=owner_pid,
                        owner_create_time=owner_created,
                    )
                )
                self._recorded[inst.name] = pid
        except db.DatabaseError as exc:
            _log.warning("cannot record the PID of %s: %s", inst.name, exc)

    @staticmethod
    def _keep_error_reason(model_id: int | None, state: InstanceState, reason: str) -> None:
        """Remember why a model is in error (for ``status``/``models show``); forget it once it runs."""
        if model_id is None:
            return
        try:
            if state is InstanceState.ERROR:
                pidfile.save_error_reason(model_id, reason or "failed")
            elif state is InstanceState.RUNNING:
                pidfile.clear_error_reason(model_id)
        except db.DatabaseError as exc:
            _log.warning("cannot save the error reason of model %s: %s", model_id, exc)

    @staticmethod
    def _set_status(model_id: int | None, name: str, state: InstanceState) -> None:
        try:
            if model_id is None:
                model = db.get_model_by_name(name)
                model_id = int(model["id"]) if model else None
            if model_id is not None and db.get_model(model_id) is not None:
                db.update_model(model_id, {"status": state.value})
        except db.DatabaseError as exc:
            _log.warning("cannot save the status of %s: %s", name, exc)
