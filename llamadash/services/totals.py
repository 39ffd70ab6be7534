"""The figures over every instance of the manager: what the metrics sampler reads at each tick.

:class:`InstanceTotals` is a mixin of :class:`~llamadash.services.manager.InstanceManager` that
implements the sampler's :class:`~llamadash.services.sampler.InstanceSampleSource` protocol over
the manager's instances: cheap getters, called on the GUI thread once per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llamadash.core.states import InstanceState
from llamadash.services.instance import ServerInstance

__all__ = ["InstanceTotals"]


class InstanceTotals:
    """Active models, requests per minute and per-instance samples over ``_instances``."""

    _instances: dict[str, ServerInstance]
    _shown_figures: Callable[[ServerInstance, Any], Any]  # RouterControl's: the router's with its models'
    _router_model_samples: Callable[[], list[dict[str, Any]]]  # RouterControl's: a row per loaded model

    def active_models(self) -> int:
        """How many instances are running (``/health`` 200), external ones included."""
        return sum(1 for inst in self._instances.values() if inst.state is InstanceState.RUNNING)

    def requests_per_minute(self) -> float:
        """Requests finished in the last minute over every instance whose log is read."""
        counts = (inst.requests_per_minute() for inst in self._instances.values())
        return sum((count for count in counts if count is not None), 0.0)

    def instance_samples(self) -> list[dict[str, Any]]:
        """One ``instance_samples`` row (no timestamp) per active instance, from its latest figures,
        and one per model the library router has loaded."""
        rows = [
            self._shown_figures(inst, inst.figures).sample_row(inst.name)
            for inst in self._instances.values()
            if inst.active
        ]
        return rows + self._router_model_samples()
