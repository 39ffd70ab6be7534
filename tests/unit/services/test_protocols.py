"""The real manager and instance, and the tests' stand-ins, provide every member of the Protocols.

The window, tray and views are typed against :mod:`llamadash.services.protocols`; the widget tests
drive them with ``tests/fakes.py``. A member added to a Protocol and not to the real class or to
the stand-in, or a signal whose arguments differ between them, fails here.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from fakes import FakeInstance, FakeManager
from PySide6.QtCore import QMetaMethod, QObject, Signal

from llamadash.core import database
from llamadash.services.instance import ServerInstance
from llamadash.services.manager import InstanceManager
from llamadash.services.protocols import Instance, Manager


def protocol_members(protocol: type) -> set[str]:
    """The public members a Protocol declares (methods, properties, annotated attributes), bases too."""
    members: set[str] = set()
    for cls in protocol.__mro__:
        if cls in (typing.Protocol, typing.Generic, object) or not getattr(cls, "_is_protocol", False):
            continue
        names = set(vars(cls)) | set(getattr(cls, "__annotations__", {}))
        members |= {name for name in names if not name.startswith("_")}
    return members


def signal_members(protocol: type) -> set[str]:
    """The members a Protocol declares as signals (annotated ``SignalInstance``)."""
    return {
        name
        for name, annotation in typing.get_type_hints(protocol).items()
        if getattr(annotation, "__name__", "") == "SignalInstance"
    }


def signal_arguments(cls: type[QObject], name: str) -> list[str] | None:
    """The C++ argument types of the signal ``name`` of ``cls``, or ``None`` when it has none by that name."""
    meta = vars(cls)["staticMetaObject"]  # each QObject class has its own
    for index in range(meta.methodCount()):
        method = meta.method(index)
        if (
            method.methodType() == QMetaMethod.MethodType.Signal
            and bytes(method.name().data()).decode() == name
        ):
            return [bytes(t.data()).decode() for t in method.parameterTypes()]
    return None


INSTANCE_MEMBERS = protocol_members(Instance)
MANAGER_MEMBERS = protocol_members(Manager)
MANAGER_SIGNALS = signal_members(Manager)


def test_the_members_are_read_from_the_protocols():
    # the reader itself: what the front ends use is there, typing's own attributes are not
    assert {"state", "restart_pending", "log_lines", "log_file_recovery_note"} <= INSTANCE_MEMBERS
    assert {"instance", "instances", "start", "stop_orphans", "close", "stateChanged"} <= MANAGER_MEMBERS
    assert {
        "instanceAdded",
        "instanceRemoved",
        "stateChanged",
        "figuresChanged",
        "logLine",
        "eventOccurred",
        "orphansChanged",
        "logFileProblem",
        "requestRecorded",
    } == MANAGER_SIGNALS
    assert not any(name.startswith("_") for name in INSTANCE_MEMBERS | MANAGER_MEMBERS)


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [
        (Instance, ServerInstance),
        (Instance, FakeInstance("a")),  # an instance: its fields with a default factory are set
        (Manager, InstanceManager),
        (Manager, FakeManager()),
    ],
    ids=["ServerInstance", "FakeInstance", "InstanceManager", "FakeManager"],
)
def test_every_member_of_the_protocol_is_provided(protocol, implementation):
    missing = protocol_members(protocol) - set(dir(implementation))
    assert missing == set(), f"{implementation!r} lacks {sorted(missing)} of {protocol.__name__}"


def test_a_member_only_the_protocol_has_is_found_missing():
    class Wider(Manager, typing.Protocol):
        def new_operation(self) -> None: ...

    assert protocol_members(Wider) - set(dir(FakeManager())) == {"new_operation"}
    assert protocol_members(Wider) - set(dir(InstanceManager)) == {"new_operation"}


@pytest.mark.parametrize("name", sorted(MANAGER_SIGNALS))
def test_the_signals_are_signals_with_the_same_arguments(name):
    assert isinstance(vars(InstanceManager).get(name), Signal)
    assert isinstance(vars(FakeManager).get(name), Signal)
    real = signal_arguments(InstanceManager, name)
    assert real is not None
    assert signal_arguments(FakeManager, name) == real


def test_a_live_manager_and_the_stand_in_answer_like_the_protocol_says(qapp, tmp_path: Path):
    database.init_database(tmp_path / "p.db")
    manager = InstanceManager(data_dir=tmp_path, quit_with_app=False, scan_orphans=False)
    try:
        missing = MANAGER_MEMBERS - set(dir(manager))
        assert missing == set()
        assert manager.instance("nothing") is None and list(manager.instances()) == []
        assert manager.orphans() == []
        fake = FakeManager(logs_dir=tmp_path / "logs")
        assert fake.log_path("a/b:Q4").parent == tmp_path / "logs"
        assert fake.log_path("a/b:Q4").name == manager.log_path("a/b:Q4").name
        inst = fake.set_state("a", "running")
        assert inst.state == "running" and inst.active and fake.instance("a") is inst
    finally:
        manager.close()
        database.close_database()


def _statically_checked(
    real_manager: InstanceManager,
    fake_manager: FakeManager,
    real_instance: ServerInstance,
    fake_instance: FakeInstance,
) -> None:
    """Never called: mypy checks that each implementation is assignable to its Protocol."""
    manager: Manager = real_manager
    manager = fake_manager
    instance: Instance = real_instance
    instance = fake_instance
    del manager, instance
