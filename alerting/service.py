"""The ruler as one component: rule files + ruler-API namespaces -> groups -> notifiers.

`Ruler` owns the rule manager, the notifier hub and the ruler-API store, and
is what the composition root wires: `load()` checks the rules before the
service starts (a broken file stops the start), `start(queryable,
appendable)` runs them once storage is open, `reload(...)` applies new
settings and files (all or nothing: on any problem the running rules stay as
they were and the problems are raised, logged and counted), and the ruler
API's edits go through `set_group` / `delete_*`, which reload the same way.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerting.clock import Clock, SystemClock
from alerting.group import RuleOptions
from alerting.loader import RulesLoadError, expand_globs, load_rule_files
from alerting.manager import RuleManager
from alerting.metrics import NotifierMetrics, RuleMetrics
from alerting.notify.hub import NotifierHub
from alerting.query import InstantEngine
from alerting.rulefile import GroupSpec, RuleFileError
from alerting.rulermirror import RulerMirror
from alerting.rulerstore import RulerStore
from alerting.settings import AlertingSettings, RulesSettings
from alerting.status import AlertStatus, GroupView, alert_statuses, group_view
from storage.interfaces import Appendable, Queryable
from storage.objstore.base import ObjectStore

log = logging.getLogger(__name__)


class Ruler:
    """Global rules and their notifications (see the module docstring)."""

    def __init__(
        self,
        *,
        engine: InstantEngine,
        registry: CollectorRegistry,
        rules: RulesSettings,
        alerting: AlertingSettings,
        rules_dir: Path,
        clock: Clock | None = None,
        metrics_prefix: str = "aggregator",
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.rules = rules
        self.alerting = alerting
        self.store = RulerStore(rules_dir)
        self.metrics = RuleMetrics(registry, metrics_prefix)
        self.hub = NotifierHub(alerting, NotifierMetrics(registry, metrics_prefix), self.clock)
        self.manager: RuleManager | None = None
        self.mirror: RulerMirror | None = None
        self._started = asyncio.Event()
        """Set once `start` ran: ruler-API edits wait for it (before, they could miss the
        object store, or be overwritten by the namespaces restored from it)."""
        self._specs: list[GroupSpec] = []
        self._lock = asyncio.Lock()

    def options(self) -> RuleOptions:
        return RuleOptions(
            evaluation_interval_ms=self.rules.evaluation_interval_ms,
            query_offset_ms=self.rules.query_offset_ms,
            external_url=self.alerting.external_url,
            external_labels=self.alerting.external_labels,
            resend_delay_ms=self.alerting.resend_delay_ms,
        )

    def load(self, rules: RulesSettings | None = None) -> list[GroupSpec]:
        """Read and check every rule file and namespace; raises RulesLoadError."""
        settings = rules or self.rules
        sources = expand_globs(settings.files, settings.base_dir) + self.store.sources()
        specs = load_rule_files(sources)
        self._specs = specs
        return specs

    async def start(
        self,
        queryable: Queryable,
        appendable: Appendable,
        object_store: ObjectStore | None = None,
    ) -> None:
        """Start notifiers and groups (call once storage serves reads and writes).

        With an `object_store`, ruler-API namespaces are reconciled with it first
        (`alerting.rulermirror`) and mirrored to it on every edit.
        """
        if object_store is not None:
            await self._attach(RulerMirror(self.store, object_store))
        await self.hub.start()
        async with self._lock:
            self.manager = RuleManager(
                engine=self.engine,
                queryable=queryable,
                appendable=appendable,
                notify=self.hub.send,
                metrics=self.metrics,
                options=self.options(),
                clock=self.clock,
            )
            await self.manager.update(self._specs)
        self._started.set()
        self._succeeded()

    async def wait_started(self) -> None:
        await self._started.wait()

    async def _attach(self, mirror: RulerMirror) -> None:
        try:
            restored = await mirror.reconcile()
        except Exception as exc:  # the store down: run on the local namespaces, retry next start
            log.warning(
                "ruler namespaces not reconciled with the object store", extra={"err": str(exc)}
            )
            restored = 0
        self.mirror = mirror
        if restored:
            try:
                self.load()
            except RulesLoadError as exc:
                log.error(
                    "restored ruler namespaces do not load; running the rules loaded at start",
                    extra={"err": str(exc)},
                )

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
        await self.hub.stop()

    async def reload(
        self, rules: RulesSettings | None = None, alerting: AlertingSettings | None = None
    ) -> None:
        """Apply new settings and re-read every rule file; raises RulesLoadError and keeps
        the running rules if anything is wrong."""
        async with self._lock:
            try:
                specs = self.load(rules)
            except RulesLoadError as exc:
                self.metrics.reload_success.set(0)
                log.error(
                    "rules reload failed, keeping the running rules",
                    extra={"problems": len(exc.problems), "err": str(exc)},
                )
                raise
            if rules is not None:
                self.rules = rules
            if alerting is not None:
                self.alerting = alerting
                await self.hub.reconfigure(alerting)
            if self.manager is not None:
                await self.manager.update(specs, self.options())
        self._succeeded()

    def _succeeded(self) -> None:
        self.metrics.reload_success.set(1)
        self.metrics.reload_success_time.set(self.clock.now_ms() / 1000)

    # -- ruler API -----------------------------------------------------------------

    def namespaces(self) -> dict[str, list[GroupSpec]]:
        """Groups managed through the ruler API, by namespace."""
        return self.store.namespaces()

    def namespace_groups(self, namespace: str) -> list[GroupSpec] | None:
        try:
            return self.store.groups(namespace)
        except RuleFileError:
            return None

    async def set_group(self, namespace: str, group: GroupSpec) -> None:
        """Create or replace a group in a namespace, then reload (keeping alert state)."""
        previous = self.store.groups(namespace)
        self.store.set_group(namespace, group)
        try:
            await self.reload()
        except RulesLoadError:
            self._restore(namespace, previous)
            raise
        await self._mirror(namespace)

    async def delete_group(self, namespace: str, name: str) -> bool:
        if not self.store.delete_group(namespace, name):
            return False
        await self.reload()
        await self._mirror(namespace)
        return True

    async def delete_namespace(self, namespace: str) -> bool:
        if not self.store.delete_namespace(namespace):
            return False
        await self.reload()
        await self._mirror(namespace)
        return True

    async def _mirror(self, namespace: str) -> None:
        if self.mirror is not None:
            await self.mirror.push(namespace)

    def _restore(self, namespace: str, previous: list[GroupSpec] | None) -> None:
        if previous is None:
            self.store.delete_namespace(namespace)
        else:
            self.store.delete_namespace(namespace)
            for g in previous:
                self.store.set_group(namespace, g)

    # -- status --------------------------------------------------------------------

    def groups(self) -> list[GroupView]:
        """Snapshots of the running groups, sorted by file then name."""
        if self.manager is None:
            return []
        return [group_view(g) for g in self.manager.groups()]

    def alerts(self) -> list[AlertStatus]:
        """Every pending or firing alert."""
        if self.manager is None:
            return []
        return [a for _, rule in self.manager.alerting_rules() for a in alert_statuses(rule)]
