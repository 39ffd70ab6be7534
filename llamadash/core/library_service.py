"""The model library's operations, one home for the window and the CLI: :class:`Library`.

Both front ends change the library through one :class:`Library`, built over the database (the
:mod:`llamadash.core.database` module is a :class:`LibraryStore`) and an ``is_running(name)``
check that each front end brings: the CLI's asks the process records and the live processes
(:func:`running_by_process_records`), the window's its instance manager as well. The front ends
keep only what is theirs: argument parsing and printing, dialogs and message boxes.

The rules live here, once:

* **A model file must be a readable GGUF model**, all its parts present, not a projector
  (:func:`llamadash.core.library.model_file_refusal`); it is stored by its absolute path, and so are
  the file and folder paths of a pasted command line.
* **A name the user chose must be free**; a name llamadash makes up (from the GGUF header, the
  Hugging Face repo, "… (copy)" for a duplicate) is made unique.
* **A file already in the library is not added again under a made-up name** (a drop, a scan, a
  pasted line without a name): it is refused with the entry that has it (Duplicate makes a second
  entry). Under a name the user chose it is added, and :attr:`Added.already_as` says which entry
  has the file too.
* **A new entry gets a port no other entry uses** (chosen and saved in one write transaction), and
  so does a duplicate and a model imported with "Keep both".
* **A running model is neither renamed nor deleted**: ``is_running`` is asked inside the write
  transaction that would change it. Its parameters may change (they apply at the next start).

Every refusal is a :class:`LibraryError` whose message is the user's; nothing is written then.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llamadash.core import library, model_export
from llamadash.core.library import ModelInfo, ScanResult, absolute_path
from llamadash.core.params import COLUMN
from llamadash.core.remote import REMOTE_TYPE, REMOTE_URL, RemoteUrlError, check_remote_url

#: ``is_running(name)``: whether a llama-server of the model called ``name`` runs now.
IsRunning = Callable[[str], bool]
#: A model by id (``int``) or by name (``str``).
ModelRef = int | str
#: Checks a configuration before it is saved (the CLI's check against the llama-server build);
#: raises to refuse it. Called with the parameters (no name, type or status) and the columns changed.
ConfigCheck = Callable[[Mapping[str, Any], set[str]], None]

#: llamadash's own on/off setting on a model's row: restart its server after a crash (not a
#: llama-server parameter; :meth:`Library.set_parameters` takes it as True or False).
AUTO_RESTART = "auto_restart"
#: llamadash's own settings of the library router on a model's row (:mod:`llamadash.core.router`):
#: served (on/off), loaded when the router starts (on/off), its stop timeout (seconds or ``None``).
SERVED = "served"
LOAD_ON_STARTUP = "load_on_startup"
STOP_TIMEOUT = "stop_timeout_s"
#: The on/off settings of llamadash's own, each True or False.
OWN_SWITCHES = (AUTO_RESTART, SERVED, LOAD_ON_STARTUP)
#: Every setting of llamadash's own (not checked against the llama-server build).
OWN_SETTINGS = (*OWN_SWITCHES, STOP_TIMEOUT)
#: Columns that describe the entry rather than llama-server's parameters.
_ENTRY_COLUMNS = ("id", "name", "type", "status", "created_at", "updated_at", *OWN_SETTINGS, REMOTE_URL)


class LibraryStore(Protocol):
    """Where the library is stored. :mod:`llamadash.core.database` satisfies it.

    Each call may raise an exception whose message is meant for the user (``DatabaseError``).
    """

    def get_models(self) -> list[dict[str, Any]]: ...

    def get_model(self, model_id: int) -> dict[str, Any] | None: ...

    def get_model_by_name(self, name: str) -> dict[str, Any] | None: ...

    def save_model(self, model: Mapping[str, Any]) -> int: ...

    def update_model(self, model_id: int, changes: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete_model(self, model_id: int) -> bool: ...

    def transaction(self) -> AbstractContextManager[None]: ...


# ------------------------------------------------------------------------------------------------
# errors


class LibraryError(ValueError):
    """The library refused an operation; the message says why, for the user. Nothing was written."""


class ModelNotFound(LibraryError):
    """No model has this name (or id); the message lists the names there are."""


class NameTaken(LibraryError):
    """A name the user chose is another model's."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a model named {name!r} already exists")
        self.name = name


class NotAModelFile(LibraryError):
    """A file that cannot be added as a model: missing, not GGUF, a projector, parts missing."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


class AlreadyInLibrary(LibraryError):
    """A model file is already an entry's, and no name of the user's was given for a second one."""

    def __init__(self, path: str | os.PathLike[str], entry: str) -> None:
        super().__init__(
            f"{os.fspath(path)}: already in the library as {entry!r} (Duplicate makes a second entry)"
        )
        self.path = os.fspath(path)
        self.entry = entry


class ModelRunning(LibraryError):
    """The model's llama-server runs: it may not be renamed or deleted now.

    Attributes:
        name: the model.
        doing: what was refused, as ``"renaming"`` or ``"deleting"``.
        advice: the sentence a dialog shows under the title "The model is running".
    """

    def __init__(self, name: str, doing: str) -> None:
        super().__init__(f"{name} is running; stop it before {doing} it")
        self.name = name
        self.doing = doing
        self.advice = f"Stop {name} before {doing} it."


class NoModelsFound(LibraryError):
    """A folder scan found no readable model."""


class InvalidSource(LibraryError):
    """A Hugging Face spec (or another source) that cannot be read; the message shows the form."""


# ------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Added:
    """A new library entry.

    Attributes:
        model: the entry as saved (with its ``id`` and the port it got).
        already_as: the entry that has the same model file too (only where the user named this one).
    """

    model: dict[str, Any]
    already_as: str | None = None

    @property
    def id(self) -> int:
        return int(self.model["id"])

    @property
    def name(self) -> str:
        return str(self.model["name"])

    @property
    def note(self) -> str | None:
        """What to tell the user beside "added": that another entry has the same model file."""
        if self.already_as is None:
            return None
        return f"{self.name} uses the model file of {self.already_as!r} too (it has a port of its own)"


@dataclass
class AddReport:
    """What adding several files (a drop, a scan) did: what was added and what was refused, and why."""

    added: list[Added] = field(default_factory=list)
    refused: list[LibraryError] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [a.id for a in self.added]


@dataclass(frozen=True)
class Changed:
    """A changed library entry: as stored now, and the columns that were changed."""

    model: dict[str, Any]
    changes: dict[str, Any]


@dataclass(frozen=True)
class Imported:
    """A models file brought in: the plan that was carried out and how many were added/overwritten/skipped."""

    plan: list[model_export.ImportAction]
    counts: dict[str, int]


# ------------------------------------------------------------------------------------------------
# is_running for front ends without an instance manager


def running_by_process_records(name: str) -> bool:
    """Whether a llama-server of model ``name`` runs, by the open database's process records and the
    live processes launched from it: a window's or a ``llamadash run``'s, or one left behind.

    The CLI's ``is_running``; the window's adds its own instance manager to it.
    """
    from llamadash.core import pidfile

    found = pidfile.scan(prune=False)
    return any(record.model == name for record in (*found.foreign, *found.orphans))


# ------------------------------------------------------------------------------------------------
# the service


class Library:
    """The model library's operations and rules (see the module docstring).

    Args:
        store: where the library is stored (the :mod:`llamadash.core.database` module).
        is_running: whether the model called ``name`` runs now (the front end's knowledge).
    """

    def __init__(self, store: LibraryStore, is_running: IsRunning) -> None:
        self.store = store
        self._is_running = is_running

    def set_running_check(self, is_running: IsRunning) -> None:
        """Ask ``is_running`` from now on (the window's, once its instance manager is there)."""
        self._is_running = is_running

    # -- reading ----------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every entry, oldest first."""
        return self.store.get_models()

    def get(self, ref: ModelRef) -> dict[str, Any]:
        """The entry with this id or name.

        Raises:
            ModelNotFound: none has it; the message lists the names there are.
        """
        model = self.store.get_model(ref) if isinstance(ref, int) else self.store.get_model_by_name(ref)
        if model is None:
            if isinstance(ref, int):
                raise ModelNotFound(f"there is no model with id {ref}")
            names = [str(m["name"]) for m in self.store.get_models()]
            hint = f" (models: {', '.join(names)})" if names else " (the library is empty)"
            raise ModelNotFound(f"no model named {ref!r}{hint}")
        return model

    def is_running(self, ref: ModelRef | Mapping[str, Any]) -> bool:
        """Whether the model's llama-server runs (by the ``is_running`` this library was given)."""
        if isinstance(ref, Mapping):
            name = str(ref["name"])
        elif isinstance(ref, int):
            name = str(self.get(ref)["name"])
        else:
            name = ref
        return bool(self._is_running(name))

    def refuse_if_running(self, ref: ModelRef | Mapping[str, Any], doing: str) -> None:
        """Raise :class:`ModelRunning` when the model runs (``doing``: ``"renaming"``, ``"deleting"``).

        The operations check it themselves; a window asks first so as not to ask for a new name in vain.
        """
        model = ref if isinstance(ref, Mapping) else self.get(ref)
        if self.is_running(model):
            raise ModelRunning(str(model["name"]), doing)

    # -- adding -----------------------------------------------------------------------------------
    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        model_type: str | None = None,
        projector: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        check: ConfigCheck | None = None,
    ) -> Added:
        """Add the GGUF model at ``path`` (any part of a split model adds the model).

        Args:
            path: the file (relative paths are from the working directory; stored absolute).
            name: the user's name for the entry; without one, the header's name made unique.
            model_type: the ``type`` (default: the header's architecture).
            projector: a multimodal projector (``mmproj``) to go with it.
            settings: parameters to store with it (``custom_params`` for extra flags).
            check: refuses a configuration before it is saved (see :data:`ConfigCheck`).

        Raises:
            NameTaken: ``name`` is another model's.
            NotAModelFile: the file is missing, not GGUF, a projector or parts of it are missing.
            AlreadyInLibrary: no ``name`` was given and an entry has the file already.
        """
        chosen = self._chosen_name(name)
        info = self._model_file(path)
        with self.store.transaction():
            return self._add_info(
                info, path, chosen, model_type=model_type, projector=projector, settings=settings, check=check
            )

    def add_files(self, paths: Iterable[str | os.PathLike[str]]) -> AddReport:
        """Add several files (a drop, a file dialog): each is added or refused (:meth:`add_file`'s
        rules, no names given). A file given twice, or two parts of one model, count once."""
        report = AddReport()
        done: set[Path] = set()
        for raw in paths:
            try:
                info = self._model_file(raw)
            except NotAModelFile as exc:
                report.refused.append(exc)
                continue
            if info.path in done:
                continue
            done.add(info.path)
            try:
                with self.store.transaction():
                    report.added.append(self._add_info(info, raw, None))
            except LibraryError as exc:
                report.refused.append(exc)
        return report

    def scan(self, directory: str | os.PathLike[str]) -> ScanResult:
        """The models and projectors below ``directory`` (see :func:`library.scan_directory`).

        Raises:
            LibraryError: ``directory`` cannot be read.
            NoModelsFound: it holds no readable model.
        """
        root = Path(directory)
        try:
            result = library.scan_directory(absolute_path(root))
        except OSError as exc:
            raise LibraryError(str(exc)) from exc
        if not result.models:
            raise NoModelsFound(f"{root} holds no readable .gguf models.")
        return result

    def add_scanned(self, chosen: Iterable[tuple[ModelInfo, Path | None]]) -> AddReport:
        """Add models picked from a :meth:`scan`, each with its projector (or ``None``); a model
        already in the library is refused (:class:`AlreadyInLibrary`)."""
        report = AddReport()
        for info, projector in chosen:
            try:
                with self.store.transaction():
                    report.added.append(self._add_info(info, info.path, None, projector=projector))
            except LibraryError as exc:
                report.refused.append(exc)
        return report

    def add_hf(self, text: str, name: str | None = None) -> Added:
        """Add a model llama-server downloads from Hugging Face (``user/model[:quant]`` or its address).

        Raises:
            InvalidSource: ``text`` is not such a spec; the message shows the form.
            NameTaken: ``name`` is another model's.
        """
        try:
            spec = library.parse_hf_spec(text)
        except ValueError as exc:
            raise InvalidSource(str(exc)) from None
        chosen = self._chosen_name(name)
        with self.store.transaction():
            existing = self._names()
            model = library.new_model_from_hf(spec, existing, chosen)
            return self._save(model)

    def add_remote(self, name: str, url: str, *, api_key: str | None = None) -> Added:
        """Add a remote server: a llama-server another machine runs, watched at ``url``.

        Its key (if it has one) is kept in the ``api_key`` column, the secret column every model
        has: masked where models are shown, left out of exports unless secrets are asked for.

        Raises:
            InvalidSource: ``url`` is not an http(s) server address (see :func:`check_remote_url`).
            NameTaken: ``name`` is another model's.
            LibraryError: ``name`` is empty.
        """
        try:
            checked = check_remote_url(url)
        except RemoteUrlError as exc:
            raise InvalidSource(str(exc)) from None
        chosen = self._chosen_name(name)
        if chosen is None:
            raise LibraryError("a remote server needs a name")
        model: dict[str, Any] = {
            "name": chosen,
            "type": REMOTE_TYPE,
            "status": library.NEW_MODEL_STATUS,
            REMOTE_URL: checked,
        }
        if api_key:
            model[COLUMN.api_key] = [api_key]
        with self.store.transaction():
            model_id = self.store.save_model(model)  # no port: nothing listens here
            stored = self.store.get_model(model_id)
        return Added(stored if stored is not None else {**model, "id": model_id}, None)

    def add_command_line(
        self,
        text: str,
        name: str | None = None,
        *,
        model_type: str | None = None,
        settings: Mapping[str, Any] | None = None,
        check: ConfigCheck | None = None,
    ) -> Added:
        """Add a model configured by a pasted ``llama-server ...`` line; its paths are stored absolute.

        Raises:
            CommandLineError: the line cannot be read; the message says why.
            NameTaken, AlreadyInLibrary: as :meth:`add_config`.
        """
        return self.add_config(
            library.config_from_command_line(text),
            name,
            model_type=model_type,
            settings=settings,
            check=check,
        )

    def add_config(
        self,
        config: Mapping[str, Any],
        name: str | None = None,
        *,
        model_type: str | None = None,
        settings: Mapping[str, Any] | None = None,
        check: ConfigCheck | None = None,
    ) -> Added:
        """Add a parsed configuration (:func:`library.config_from_command_line`).

        The ``type`` comes from the model file's header when it has one; without a ``name``, so does
        the name (else the Hugging Face repo's, the source's file name). A model file that is not on
        this computer is fine (the line may be for another one).

        Raises:
            NameTaken: ``name`` is another model's.
            AlreadyInLibrary: no ``name`` was given and an entry has the model file already.
        """
        chosen = self._chosen_name(name)
        model = _with_settings(dict(config), settings)
        path = model.get(COLUMN.model_path)
        info = library.read_model_info(path) if isinstance(path, str) and path else None
        readable = info if info is not None and not info.error else None
        with self.store.transaction():
            models = self.store.get_models()
            entry = library.entry_of_file(readable, models) if readable is not None else None
            if entry is not None and chosen is None:
                raise AlreadyInLibrary(str(path), entry)
            made_up = chosen or _name_for(model, readable)
            model.update(
                name=chosen or library.unique_name(made_up, (str(m["name"]) for m in models)),
                type=model_type
                or (readable.architecture if readable and readable.architecture else library.UNKNOWN_TYPE),
                status=library.NEW_MODEL_STATUS,
            )
            if check is not None:
                check(_params_of(model), set())
            return self._save(model, already_as=entry)

    def duplicate(self, ref: ModelRef) -> Added:
        """A copy of an entry as "name (copy)", stopped, on a port no entry uses (a running model
        may be duplicated: the copy is a new entry)."""
        with self.store.transaction():
            model = self.get(ref)
            return self._save(library.duplicate_model(model, self._names()), new_port=True)

    # -- changing ---------------------------------------------------------------------------------
    def rename(self, ref: ModelRef, new_name: str) -> Changed:
        """Give an entry a new name; the same name changes nothing.

        Raises:
            LibraryError: the new name is empty.
            ModelRunning: the model runs.
            NameTaken: another model has the name.
        """
        return self.set_parameters(ref, {"name": new_name})

    def delete(self, ref: ModelRef) -> dict[str, Any]:
        """Remove an entry (its files stay on disk); returns the entry as it was.

        Raises:
            ModelRunning: the model runs.
        """
        with self.store.transaction():
            model = self.get(ref)
            self.refuse_if_running(model, "deleting")
            self.store.delete_model(int(model["id"]))
        return model

    def set_parameters(
        self,
        ref: ModelRef,
        values: Mapping[str, Any],
        custom: Mapping[str, Any] | None = None,
        *,
        check: ConfigCheck | None = None,
    ) -> Changed:
        """Change columns of an entry (``name`` and ``type`` included) and its custom flags.

        Read, checked and written in one write transaction: a change another process makes at the
        same moment waits, then applies to what this one wrote (no flag is lost).

        Args:
            values: columns to set (``None`` resets a parameter to llama-server's default), and
                :data:`AUTO_RESTART`, :data:`SERVED` and :data:`LOAD_ON_STARTUP` as True or False and
                :data:`STOP_TIMEOUT` as seconds or ``None`` (llamadash's own settings: not checked
                against the build; a running server takes it at its next start, or at once through
                the window's instance manager, ``set_autorestart``).
            custom: custom flags to set (``{"--flag": "value"}``, ``True`` for a switch) or, with
                ``None``, to take out.
            check: refuses the configuration; called with the columns changed (``{"-"}`` when only
                the name or type is).

        Raises:
            LibraryError: an empty name or type, a flag to take out that is not there, or an
                :data:`AUTO_RESTART` that is not True or False.
            ModelRunning: a rename of a running model.
            NameTaken: a new name that is another model's.
        """
        with self.store.transaction():
            model = self.get(ref)
            changes = dict(values)
            if custom:
                stored = model.get("custom_params")
                merged = dict(stored) if isinstance(stored, Mapping) else {}
                for flag, value in custom.items():
                    if value is None:
                        if flag not in merged:
                            has = ", ".join(merged) or "none"
                            raise LibraryError(f"{model['name']} has no custom flag {flag} (it has: {has})")
                        del merged[flag]
                    else:
                        merged[flag] = value
                changes["custom_params"] = merged or None
            return self._change(model, changes, check)

    def save_edit(
        self, model_id: int, changes: Mapping[str, Any], loaded_custom: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Save one edit of the window's editor, which loaded the custom flags ``loaded_custom``.

        A change of custom flags is applied to the flags stored *now* (only what the edit changed,
        :func:`library.merge_custom_params`): a flag another process set meanwhile is not lost.
        Returns the entry as stored.
        """
        with self.store.transaction():
            model = self.get(model_id)
            edit = dict(changes)
            if "custom_params" in edit:
                merged = library.merge_custom_params(
                    model.get("custom_params"), loaded_custom, edit["custom_params"] or {}
                )
                edit["custom_params"] = merged or None
            return self._change(model, edit, None).model

    # -- importing --------------------------------------------------------------------------------
    def plan_import(
        self, incoming: Sequence[Mapping[str, Any]], policy: str = "skip"
    ) -> list[model_export.ImportAction]:
        """What importing the models of a file does by ``policy`` (a preview; nothing is written).

        ``keep_both`` names the second entry "name (2)" and gives it a port no entry uses.
        """
        return model_export.plan_import(incoming, self.store.get_models(), policy)

    def apply_import(self, plan: Sequence[model_export.ImportAction]) -> dict[str, int]:
        """Carry out a previewed plan, all of it or nothing; the counts added/overwritten/skipped."""
        return model_export.apply_import(self.store, plan)

    def import_models(self, incoming: Sequence[Mapping[str, Any]], policy: str = "skip") -> Imported:
        """Plan and carry out an import on the same, locked, library (see :meth:`plan_import`)."""
        with self.store.transaction():
            plan = self.plan_import(incoming, policy)
            return Imported(plan, self.apply_import(plan))

    # -- inside -----------------------------------------------------------------------------------
    def _names(self) -> list[str]:
        return [str(m["name"]) for m in self.store.get_models()]

    def _chosen_name(self, name: str | None) -> str | None:
        """The user's name, stripped (``None``: make one up); refused when another model has it."""
        if name is None or not name.strip():
            return None
        chosen = name.strip()
        if self.store.get_model_by_name(chosen) is not None:
            raise NameTaken(chosen)
        return chosen

    @staticmethod
    def _model_file(path: str | os.PathLike[str]) -> ModelInfo:
        """The header of the model at ``path`` (made absolute), or :class:`NotAModelFile`."""
        absolute = absolute_path(path)
        if not absolute.is_file():
            raise NotAModelFile(path, "the file does not exist")
        info = library.read_model_info(absolute)
        refusal = library.model_file_refusal(info)
        if refusal is not None:
            raise NotAModelFile(path, refusal)
        return info

    def _add_info(
        self,
        info: ModelInfo,
        given: str | os.PathLike[str],
        name: str | None,
        *,
        model_type: str | None = None,
        projector: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        check: ConfigCheck | None = None,
    ) -> Added:
        """Add a readable model file (inside the caller's write transaction)."""
        models = self.store.get_models()
        entry = library.entry_of_file(info, models)
        if entry is not None and name is None:
            raise AlreadyInLibrary(given, entry)
        if name is not None and any(m["name"] == name for m in models):
            raise NameTaken(name)  # taken since it was checked, by another process
        model = library.new_model_from_file(
            info,
            [str(m["name"]) for m in models],
            absolute_path(projector) if projector is not None else None,
        )
        if name is not None:
            model["name"] = name
        if model_type:
            model["type"] = model_type
        model = _with_settings(model, settings)
        if check is not None:
            check(_params_of(model), set())
        return self._save(model, already_as=entry)

    def _save(self, model: dict[str, Any], *, new_port: bool = False, already_as: str | None = None) -> Added:
        model_id = library.add_model(self.store, model, new_port=new_port)
        stored = self.store.get_model(model_id)
        return Added(stored if stored is not None else {**model, "id": model_id}, already_as)

    def _change(self, model: dict[str, Any], changes: dict[str, Any], check: ConfigCheck | None) -> Changed:
        """Write ``changes`` to ``model`` by the rules (inside the caller's write transaction)."""
        for column in ("name", "type"):
            if column in changes:
                text = str(changes[column] or "").strip()
                if not text:
                    raise LibraryError(f"{column} may not be empty")
                changes[column] = text
        if changes.get("name") == model["name"]:
            del changes["name"]
        if "name" in changes:
            self.refuse_if_running(model, "renaming")
            if self.store.get_model_by_name(changes["name"]) is not None:
                raise NameTaken(changes["name"])
        if model.get(REMOTE_URL):
            kept = ("name", "type", REMOTE_URL, COLUMN.api_key)
            other = sorted(k for k in changes if k not in kept)
            if other:
                raise LibraryError(
                    f"{model['name']} is a remote server: its llama-server settings are on its own machine "
                    f"({', '.join(other)} not changed); here it has only name, remote_url and api_key"
                )
        if REMOTE_URL in changes:  # a remote server's address (a local model has none to change)
            if not model.get(REMOTE_URL):
                raise LibraryError(f"{model['name']} is not a remote server: it has no URL to change")
            try:
                changes[REMOTE_URL] = check_remote_url(changes[REMOTE_URL])
            except RemoteUrlError as exc:
                raise InvalidSource(str(exc)) from None
            if changes[REMOTE_URL] == model[REMOTE_URL]:
                del changes[REMOTE_URL]
        for switch in OWN_SWITCHES:
            if switch not in changes:
                continue
            enabled = changes[switch]
            if not isinstance(enabled, bool):
                raise LibraryError(f"{switch} is on or off, got {enabled!r}")
            if enabled == bool(model.get(switch)):
                del changes[switch]
        if STOP_TIMEOUT in changes:
            seconds = changes[STOP_TIMEOUT]
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0
            ):
                raise LibraryError(
                    f"{STOP_TIMEOUT} is a whole number of seconds (0 or more), got {seconds!r}"
                )
            if seconds == model.get(STOP_TIMEOUT):
                del changes[STOP_TIMEOUT]
        if not changes:
            return Changed(model, {})
        if check is not None and not model.get(REMOTE_URL):
            # auto_restart is llamadash's own setting, not llama-server's: no check of the build
            params = {
                k: v for k, v in changes.items() if k not in ("name", "type", *OWN_SETTINGS, REMOTE_URL)
            }
            check({**_params_of(model), **params}, set(params) or {"-"})
        return Changed(self.store.update_model(int(model["id"]), changes), changes)


def _params_of(model: Mapping[str, Any]) -> dict[str, Any]:
    """llama-server's parameters of an entry (and its custom flags): no id, name, type, status, times."""
    return {k: v for k, v in model.items() if k not in _ENTRY_COLUMNS}


def _with_settings(model: dict[str, Any], settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``model`` with ``settings`` on top; custom flags are added to those it has."""
    if not settings:
        return model
    extra = dict(settings)
    custom = extra.pop("custom_params", None)
    model.update(extra)
    if custom:
        stored = model.get("custom_params")
        model["custom_params"] = {**(stored if isinstance(stored, Mapping) else {}), **custom}
    return model


def _name_for(config: Mapping[str, Any], info: ModelInfo | None) -> str:
    """A name for an entry nobody named: the header's, the Hugging Face repo's, the source's file name."""
    if info is not None:
        return info.display_name
    if config.get(COLUMN.hf_repo):
        try:
            return library.parse_hf_spec(str(config[COLUMN.hf_repo])).suggested_name
        except ValueError:
            return str(config[COLUMN.hf_repo])
    source = library.model_source(config)
    return Path(source[1]).stem if source else "imported model"
