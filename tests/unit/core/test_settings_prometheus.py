"""The Prometheus endpoint's settings: an address or off, and a token required off loopback."""

from __future__ import annotations

import pytest

from llamadash.core import settings as st


class Store(dict):
    def get_metadata(self, key: str) -> str | None:
        return self.get(key)

    def set_metadata(self, key: str, value: str | float) -> None:
        self[key] = str(value)

    def delete_metadata(self, key: str) -> bool:
        return self.pop(key, None) is not None


def test_the_endpoint_is_off_by_default_and_an_address_is_normalised():
    assert st.Settings().prometheus_address == "" and st.Settings().prometheus_token == ""
    store = Store()
    saved = st.save_settings(st.Settings(prometheus_address=" 9464 "), store)
    assert saved.prometheus_address == "127.0.0.1:9464"
    assert st.load_settings(store).prometheus_address == "127.0.0.1:9464"
    assert st.spec("prometheus_token").kind == "secret" and st.spec("prometheus_address").kind == "address"


def test_a_bad_address_is_refused_and_nothing_is_written():
    store = Store()
    with pytest.raises(st.SettingsError, match="Prometheus endpoint: the port"):
        st.save_settings(st.Settings(prometheus_address="host:http"), store)
    assert store == {}


def test_an_address_other_than_loopback_needs_the_token():
    store = Store()
    with pytest.raises(st.SettingsError, match="needs a bearer token") as caught:
        st.save_settings(st.Settings(prometheus_address="0.0.0.0:9464"), store)
    assert caught.value.name == "prometheus_address" and store == {}
    saved = st.save_settings(st.Settings(prometheus_address="0.0.0.0:9464", prometheus_token="t0ken"), store)
    assert saved.prometheus_address == "0.0.0.0:9464"
    # clearing the token alone is refused too (the check looks at both)
    with pytest.raises(st.SettingsError, match="needs a bearer token"):
        st.save_settings(saved.replace(prometheus_token=""), store, previous=saved)
