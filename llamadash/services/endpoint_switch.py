"""The window's Prometheus endpoint switch: on, moved or off as the settings say.

Kept apart from :mod:`~llamadash.services.metrics_endpoint` so that a window whose endpoint is off
(the default) never imports ``prometheus_client`` and the WSGI server: they are imported when an
address is first set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject

from llamadash.core.endpoint_address import EndpointConfigError

if TYPE_CHECKING:
    from llamadash.services.metrics_endpoint import MetricsEndpoint

__all__ = ["EndpointSwitch"]


class EndpointSwitch(QObject):
    """The window's endpoint: started, moved or stopped as its settings say (see :meth:`apply`).

    Stops with the application (``aboutToQuit``).

    Args:
        parent: The Qt parent.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.endpoint: MetricsEndpoint | None = None
        """The endpoint while one serves."""
        self._manager: Any = None
        self._sampler: Any = None
        self._wanted: tuple[str, str] = ("", "")
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    def set_sources(self, manager: Any, sampler: Any) -> str:
        """What it serves (the manager once it exists); applies the last settings again."""
        self._manager, self._sampler = manager, sampler
        return self.apply(*self._wanted, force=True)

    def apply(self, address: str, token: str, *, force: bool = False) -> str:
        """Serve at ``address`` (empty: stop) with ``token``; returns why it cannot ("" when fine)."""
        wanted = (address.strip(), token.strip())
        if wanted == self._wanted and not force and (self.endpoint is not None or not wanted[0]):
            return ""
        self._wanted = wanted
        self.stop()
        if not wanted[0] or self._manager is None:
            return ""
        from llamadash.services.metrics_endpoint import EndpointError, MetricsEndpoint

        try:
            endpoint = MetricsEndpoint(
                manager=self._manager,
                sampler=self._sampler,
                address=wanted[0],
                token=wanted[1] or None,
                parent=self,
            )
            endpoint.start()
        except (EndpointConfigError, EndpointError) as exc:
            return str(exc)
        self.endpoint = endpoint
        return ""

    def stop(self) -> None:
        """Stop serving (bounded)."""
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            endpoint.stop()
            endpoint.deleteLater()
