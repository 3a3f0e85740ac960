"""The rule manager: runs the loaded groups and swaps them on reload, keeping state.

`update(specs)` is Prometheus's `Manager.Update`: a group whose spec (and the
settings it depends on) did not change keeps running untouched; a changed
group is replaced by a new one that takes over the old one's alerts and
written series (`Group.copy_state_from`), so an unchanged alert neither
resets its `activeAt` nor fires again; a group that is gone stops and marks
its series stale. The groups of the first `update` after a start restore
their alerts' `activeAt` from storage (`Group.restore_for_state`).

Reading the files is `alerting.loader`'s job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from alerting.clock import Clock, SystemClock
from alerting.group import Group, GroupEnv, NotifyFunc, RuleOptions
from alerting.metrics import RuleMetrics
from alerting.query import ClusterScoped, EngineQuery, InstantEngine
from alerting.rulefile import GroupSpec
from alerting.rules import AlertingRule
from alerting.types import QueryFunc
from storage.interfaces import Appendable, Queryable

log = logging.getLogger(__name__)


class RuleManager:
    """Runs rule groups over one engine, one Queryable and one Appendable."""

    def __init__(
        self,
        *,
        engine: InstantEngine,
        queryable: Queryable,
        appendable: Appendable,
        notify: NotifyFunc,
        metrics: RuleMetrics,
        options: RuleOptions | None = None,
        clock: Clock | None = None,
        query_func: Callable[[Queryable], QueryFunc] | None = None,
    ) -> None:
        self._engine = engine
        self._queryable = queryable
        self._make_query = query_func or (lambda q: EngineQuery(engine, q))
        self._scoped: dict[str | None, Queryable] = {None: queryable}
        self.env = GroupEnv(
            query_for=self._make_query,
            queryable_for=self._queryable_for,
            appendable=appendable,
            notify=notify,
            clock=clock or SystemClock(),
            metrics=metrics,
            options=options or RuleOptions(),
        )
        self._groups: dict[tuple[str, str], Group] = {}
        self._restored = False
        self._lock = asyncio.Lock()
        self._running = False

    def _queryable_for(self, cluster: str | None) -> Queryable:
        scoped = self._scoped.get(cluster)
        if scoped is None:
            assert cluster is not None
            scoped = self._scoped[cluster] = ClusterScoped(self._queryable, cluster)
        return scoped

    @property
    def options(self) -> RuleOptions:
        return self.env.options

    async def update(
        self, specs: Sequence[GroupSpec], options: RuleOptions | None = None, *, run: bool = True
    ) -> None:
        """Make `specs` the running groups (see the module docstring).

        `run=False` sets the groups up without starting their tasks (tests
        drive `Group.eval` themselves).
        """
        async with self._lock:
            old_options = self.env.options
            if options is not None:
                self.env.options = options
            same_options = self.env.options == old_options
            new: dict[tuple[str, str], Group] = {}
            for spec in specs:
                old = self._groups.get(spec.key)
                if old is not None and same_options and old.spec == spec:
                    new[spec.key] = old
                    continue
                group = Group(spec, self.env, restore=not self._restored)
                if old is not None:
                    await old.stop(mark_stale=False)
                    group.copy_state_from(old)
                new[spec.key] = group
                if run:
                    group.start()
            for key, old in self._groups.items():
                if key not in new:
                    await old.stop(mark_stale=True)
                    self.env.metrics.forget_group(old.key)
            self._groups = new
            self._restored = True
            self._running = run
            log.info("rules loaded", extra={"groups": len(new), "rules": self.rule_count()})

    async def stop(self) -> None:
        """Stop every group (no stale markers: a restart picks up where this left)."""
        async with self._lock:
            for group in self._groups.values():
                await group.stop(mark_stale=False)

    def groups(self) -> list[Group]:
        """The running groups, sorted by file then name (as Prometheus lists them)."""
        return [self._groups[k] for k in sorted(self._groups)]

    def rule_count(self) -> int:
        return sum(len(g.rules) for g in self._groups.values())

    def alerting_rules(self) -> list[tuple[Group, AlertingRule]]:
        return [(g, r) for g in self.groups() for r in g.rules if isinstance(r, AlertingRule)]
