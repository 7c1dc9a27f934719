"""Where collectors and transports are registered: built-ins and entry points alike.

Each entry point is loaded on its own and each implementation is called on its own,
because pluggy stops at the first broken plugin or raising implementation; anything a
plugin raises (`SystemExit` included) costs that plugin's answer only. A name given in
``FLWR_TELEMETRY_DISABLE_COLLECTORS`` is blocked before anything is imported; a name
claimed by an entry point is never given to the built-in of that name, even if the
entry point fails to load (a plugin meant to remove a collector must not bring it back
by breaking).

Off always wins: an entry point that autoload-off or a block keeps out is still asked
``telemetry_enabled`` (on a manager of its own, for that hook only), so an installed
no-op plugin turns telemetry off whatever the variables say.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import stat
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

import pluggy
from pluggy import HookImpl

from . import _runtime, hookspecs
from ._builtins import BUILTINS, DETAILS_COLLECTOR, GROUP
from ._log import log
from ._payload import section_for
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from importlib import metadata

    from ._config import Config

BUILTIN_ORIGIN: Final = f"flwr-datasets-telemetry {__version__} (built-in)"
#: A plugin's error message is cut to this length (pluggy's can dump whole dicts).
MAX_MESSAGE: Final = 160


def describe(error: BaseException) -> str:
    """One short line for a plugin's error."""
    text = " ".join(str(error).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _ours_to_keep(error: BaseException) -> bool:
    """A Ctrl-C on the main thread (the command line) is the user's, not a plugin's."""
    return isinstance(error, KeyboardInterrupt) and (
        threading.current_thread() is threading.main_thread()
    )


class Plugins:
    """The registered plugins of one process and the distribution of each."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        #: Plugin name -> the distribution (name and version) it comes from.
        self.origins: dict[str, str] = {}
        self.problems: list[str] = []
        #: Names taken by entry points (even ones that failed to load): no built-in for them.
        self.claimed: set[str] = set()
        #: ``(name, origin)`` of kept-out plugins that still answered "off".
        self.off_switches: list[tuple[str, str]] = []
        self._failed: set[tuple[str, str]] = set()

    def add_builtins(self, *, collectors: bool = True, transports: bool = True) -> None:
        """Register each built-in whose name is neither claimed nor blocked.

        A host hands events to the outbox and registers ``http`` (and imports
        requests, 0.1 s) only where it must deliver in-process.
        """
        for name, module_name, _, is_transport in BUILTINS:
            if name in self.claimed or self.manager.is_blocked(name):
                continue
            if not (transports if is_transport else collectors):
                continue
            try:  # a broken environment (requests missing, say) costs that plugin only
                with _runtime.IMPORT_GUARD:  # ours, and quick: a fork may wait for it
                    module = importlib.import_module(module_name)
                self.manager.register(module, name=name)
            except BaseException as error:
                if _ours_to_keep(error):
                    raise
                log(f"built-in {name!r} skipped: {describe(error)}")
                continue
            self.origins[name] = BUILTIN_ORIGIN

    def implementations(self, hook_name: str) -> list[HookImpl]:
        """The plain implementations of a hook, in pluggy's call order."""
        impls = getattr(self.manager.hook, hook_name).get_hookimpls()
        return [impl for impl in reversed(impls) if not (impl.hookwrapper or impl.wrapper)]

    @staticmethod
    def call(impl: HookImpl, kwargs: Mapping[str, Any]) -> Any:
        """Call one implementation with the arguments it asks for."""
        return impl.function(*[kwargs[name] for name in impl.argnames])

    def answers(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """``(plugin name, result)`` of each implementation that did not raise.

        One that raises is skipped (and reported once, with logging on).
        """
        for impl in self.implementations(hook_name):
            try:
                result = self.call(impl, kwargs)
            except BaseException as error:
                if _ours_to_keep(error):
                    raise
                self.report_failure(impl.plugin_name, hook_name, error)
                continue
            yield impl.plugin_name, result

    def report_failure(self, plugin: str, hook_name: str, error: BaseException) -> None:
        if (plugin, hook_name) in self._failed:
            return
        self._failed.add((plugin, hook_name))
        message = (
            f"plugin {plugin!r} ({self.origins.get(plugin, 'unknown')}) raised in "
            f"{hook_name}: {describe(error)}; its answer is skipped"
        )
        self.problems.append(message)
        log(message)

    def check(self, name: str, plugin: object, origin: str) -> None:
        """Report hooks nobody calls (a misspelt name) and facts that cannot land."""
        for caller in self.manager.get_hookcallers(plugin) or []:
            if caller.spec is None:
                self.problems.append(
                    f"plugin {name!r} from {origin} implements {caller.name!r}, which is "
                    "not a hook of this package (misspelt?); it is never called"
                )
        collects = hasattr(self.manager.hook, "telemetry_collect") and any(
            impl.plugin_name == name for impl in self.manager.hook.telemetry_collect.get_hookimpls()
        )
        if collects and name != DETAILS_COLLECTOR and section_for(name) is None:
            self.problems.append(
                f"plugin {name!r} from {origin}: its facts are never sent, {name!r} is a "
                "reserved or invalid section name; rename its entry point"
            )


def _load(entry_point: metadata.EntryPoint) -> object:
    """Import a third-party plugin; a fork meanwhile gives a silent child (no waiting)."""
    _runtime.STATE.plugin_imports += 1
    try:
        return entry_point.load()
    finally:
        _runtime.STATE.plugin_imports -= 1


def _entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points, as ``metadata.entry_points`` finds them — but read one
    distribution at a time, so that one broken distribution (a malformed or undecodable
    ``entry_points.txt``) costs only its own plugins, never hides a no-op plugin.

    Most environments hold no plugin of ours: `_surely_no_plugin` finds that out first
    without importing `importlib.metadata` (which, with ``email``, ``zipfile`` and
    ``csv``, is half of a bare host's first-event cost). Otherwise only the
    distributions whose ``entry_points.txt`` may declare our group are parsed. As in
    ``importlib.metadata``, the first distribution of a name on ``sys.path`` wins.
    """
    found: list[metadata.EntryPoint] = []
    if _surely_no_plugin():
        return found
    seen: set[str] = set()
    for dist in _distributions():
        try:
            if not _safe_to_read(dist):
                log(f"skipped {dist!r}: its entry_points.txt is not a regular file")
                continue
            if not _may_declare_group(dist.read_text("entry_points.txt") or ""):
                continue
            name = _normalized(dist.metadata["Name"] or "")
            if name and name in seen:
                continue
            seen.add(name)
            found.extend(dist.entry_points.select(group=GROUP))
        except Exception as error:
            log(f"could not read the entry points of {dist!r}: {type(error).__name__}: {error}")
    return found


def _distributions() -> list[metadata.Distribution]:
    """Every distribution `importlib.metadata` finds, listed one ``sys.path`` entry at a
    time: an entry it cannot read (bytes or ``None``, which import ignores, make it
    raise for the whole path) costs only itself."""
    found: list[metadata.Distribution] = []
    try:
        _runtime.import_guarded("importlib.metadata")
        from importlib import metadata
    except Exception as error:  # a host's own module shadowing one of its imports
        log(f"could not list distributions: {type(error).__name__}: {error}")
        return found
    for root in list(sys.path):
        try:
            found.extend(metadata.distributions(path=[root]))
        except Exception as error:  # noqa: PERF203 - an entry's error costs only that entry
            log(f"could not list distributions in {root!r}: {type(error).__name__}: {error}")
    return found


def _safe_to_read(dist: metadata.Distribution) -> bool:
    """Whether reading the distribution's ``entry_points.txt`` cannot block: a regular
    file, or none (`importlib.metadata` would wait forever on a FIFO)."""
    folder = getattr(dist, "_path", None)  # a folder on disk; a zip's holds no FIFO
    if not isinstance(folder, os.PathLike):
        return True
    try:
        mode = os.stat(os.path.join(os.fspath(folder), "entry_points.txt")).st_mode
    except OSError:
        return True  # none, or an error `read_text` reports (or reads as none) itself
    return stat.S_ISREG(mode)


#: An ``entry_points.txt`` larger than this is left to `importlib.metadata` to read.
_MAX_ENTRY_POINTS_FILE: Final = 1 << 20


def _surely_no_plugin() -> bool:
    """True only when no distribution `importlib.metadata` could find declares our group.

    The look is the one ``metadata.distributions()`` makes, on the layout it knows
    best: each ``sys.path`` folder's ``*.dist-info`` and ``*.egg-info`` folders.
    Anything else it might read — another finder of distributions on
    ``sys.meta_path``, a zip or ``.egg`` on the path, a folder or file it cannot read
    plainly — answers False, and the full parse decides: this look may only ever
    skip work, never hide a plugin (a no-op plugin is the person's choice).
    """
    try:
        if any(
            hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder
            for finder in sys.meta_path
        ):
            return False
        for root in list(sys.path):
            if not isinstance(root, str) or os.path.basename(root).lower().endswith(".egg"):
                return False
            try:
                children = os.listdir(root or ".")
            except FileNotFoundError:
                continue  # as `importlib.metadata`: nothing there
            for child in children:
                if child.lower().endswith((".dist-info", ".egg-info")):
                    text = _read_entry_points(os.path.join(root or ".", child))
                    if text is None or _may_declare_group(text):
                        return False
    except Exception:  # any surprise means "look properly"
        return False
    return True


def _read_entry_points(info: str) -> str | None:
    """A distribution folder's ``entry_points.txt``: ``""`` if it has none, ``None`` if
    it cannot be read plainly (not a regular file, too large, an odd error)."""
    try:
        fd = os.open(
            os.path.join(info, "entry_points.txt"),
            os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0),
        )
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return ""  # what `importlib.metadata` reads as no entry points
    except OSError:
        return None
    try:
        info_stat = os.fstat(fd)
        if not stat.S_ISREG(info_stat.st_mode) or info_stat.st_size > _MAX_ENTRY_POINTS_FILE:
            return None
        data = os.read(fd, _MAX_ENTRY_POINTS_FILE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != info_stat.st_size:
        return None  # a short read, or a size that is not the content's (procfs, FUSE)
    # Decoded as `importlib.metadata` decodes it, so that lines split and strip alike
    # (U+2028 ends a line, U+00A0 is stripped); bytes it cannot decode, it skips.
    return data.decode("utf-8", "replace")


def _normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Acme_Noop`` is ``acme-noop``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _may_declare_group(text: str) -> bool:
    """Whether an ``entry_points.txt`` may have a ``[flwr_datasets_telemetry]`` section:
    a line that starts with ``[`` once stripped (as `importlib.metadata` reads them) and
    holds the name. Our own distribution names the package in other sections only."""
    return GROUP in text and any(
        line.strip().startswith("[") and GROUP in line for line in text.splitlines()
    )


def _origin(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _asks_off(entry_point: metadata.EntryPoint) -> bool:
    """Whether a plugin kept out of the manager answers ``telemetry_enabled`` with False."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(_load(entry_point), name=entry_point.name)
        impls = manager.hook.telemetry_enabled.get_hookimpls()
        return any(impl.function() is False for impl in impls if not impl.argnames)
    except BaseException as error:
        if _ours_to_keep(error):
            raise
        return False


def load_plugins(config: Config, extra: Mapping[str, object] | None = None) -> Plugins:
    """A plugin manager with ``extra`` (in-process plugins) and the entry points.

    The built-ins come later, from `Plugins.add_builtins`, so that a no-op plugin
    turns telemetry off before requests is even imported.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    for name in config.blocked:
        manager.set_blocked(name)
    for name, plugin in (extra or {}).items():
        plugins.claimed.add(name)
        manager.register(plugin, name=name)
        plugins.origins[name] = "registered in-process"
    entry_points = _entry_points()
    for entry_point in entry_points:
        name, origin = entry_point.name, _origin(entry_point)
        if not config.autoload or manager.is_blocked(name):
            if config.enabled and _asks_off(entry_point):
                plugins.off_switches.append((name, origin))
            continue
        if name in plugins.claimed:
            plugins.problems.append(f"plugin {name!r} from {origin} ignored: the name is taken")
            continue
        plugins.claimed.add(name)
        try:
            plugin = _load(entry_point)
            manager.register(plugin, name=name)
        except BaseException as error:
            if _ours_to_keep(error):
                raise
            plugins.problems.append(f"plugin {name!r} from {origin} skipped: {describe(error)}")
            continue
        plugins.origins[name] = origin
        plugins.check(name, plugin, origin)
    known = {builtin.name for builtin in BUILTINS} | {
        entry_point.name for entry_point in entry_points
    }
    known |= set(extra or {})
    plugins.problems.extend(
        f"FLWR_TELEMETRY_DISABLE_COLLECTORS names {name!r}, which matches no plugin"
        for name in sorted(config.blocked - known)
    )
    for problem in plugins.problems:
        log(problem)
    return plugins
