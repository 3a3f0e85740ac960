"""Workspace as a query dimension: a `workspace` label from KubeSphere's namespace mapping.

KubeSphere's kube-state-metrics publishes, per cluster,
`kube_namespace_labels{namespace="ns", label_kubesphere_io_workspace="ws"}`.
At query time every series that has a `namespace` (and no workspace label of
its own) gets `<workspace_label>="ws"` from the mapping of its own cluster,
so `sum by (workspace)` works across clusters without relabelling members.

The mapping is read once per query, as of the end of the query's range (the
newest mapping sample within the lookback before it), and applied to the
whole range: when a namespace moves to another workspace, queries from then
on show its whole history under the new workspace. Matchers on the label
are applied after labelling, never sent down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from storage.csr import offsets_of, ranges
from storage.interfaces import LabelResult, Querier, SelectHints, SeriesSet
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels, Matcher, MatchType, matches_all
from storage.merge import sort_series

MAPPING_METRIC = "kube_namespace_labels"
MAPPING_LABEL = "label_kubesphere_io_workspace"
NAMESPACE_LABEL = "namespace"


class WorkspaceQuerier:
    """Adds the workspace label to namespaced series (see the module docstring)."""

    def __init__(self, inner: Querier, label: str, end_ms: int, lookback_ms: int) -> None:
        self.inner = inner
        self.label = label
        self.end_ms = end_ms
        self.lookback_ms = lookback_ms
        self._mapping: dict[tuple[str, str], str] | None = None

    async def mapping(self) -> dict[tuple[str, str], str]:
        """(cluster, namespace) -> workspace, from the newest mapping sample of each pair."""
        if self._mapping is None:
            matchers = (
                Matcher(MatchType.EQ, METRIC_NAME, MAPPING_METRIC),
                Matcher(MatchType.NEQ, MAPPING_LABEL, ""),
            )
            ss = await self.inner.select(matchers, self.end_ms - self.lookback_ms, self.end_ms)
            newest: dict[tuple[str, str], tuple[int, str]] = {}
            ends = ss.offsets[1:].tolist()
            for i, lbl in enumerate(ss.labels):
                key = (lbl.get(CLUSTER_LABEL), lbl.get(NAMESPACE_LABEL))
                t = int(ss.timestamps[ends[i] - 1]) if ends[i] > ss.offsets[i] else -(1 << 62)
                if key not in newest or t > newest[key][0]:
                    newest[key] = (t, lbl.get(MAPPING_LABEL))
            self._mapping = {k: ws for k, (_, ws) in newest.items()}
        return self._mapping

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        mine = [m for m in matchers if m.name == self.label]
        rest = [m for m in matchers if m.name != self.label]
        if not any(not m.matches_empty for m in rest):
            rest.append(Matcher(MatchType.NEQ, NAMESPACE_LABEL, ""))
        ss = await self.inner.select(rest, start_ms, end_ms, hints=hints)
        mapping = await self.mapping()
        if not mapping and not mine:
            return ss
        labels: list[Labels] = []
        kept: list[int] = []
        changed = False
        for i, lbl in enumerate(ss.labels):
            ns = lbl.get(NAMESPACE_LABEL)
            if ns and not lbl.has(self.label):
                ws = mapping.get((lbl.get(CLUSTER_LABEL), ns))
                if ws:
                    lbl = lbl.with_(self.label, ws)
                    changed = True
            if matches_all(mine, lbl):
                labels.append(lbl)
                kept.append(i)
        if not changed and len(kept) == len(ss.labels):
            return ss
        which = np.asarray(kept, dtype=np.int64)
        sizes = ss.offsets[1:][which] - ss.offsets[:-1][which]
        rows = ranges(ss.offsets[:-1][which], sizes)
        out = sort_series(labels, offsets_of(sizes), ss.timestamps[rows], ss.values[rows])
        out.warnings = ss.warnings
        return out

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        res = await self.inner.label_names([m for m in matchers if m.name != self.label])
        names = set(res.values)
        if await self.mapping() and NAMESPACE_LABEL in names:
            names.add(self.label)
        values = sorted(names)
        return LabelResult(values[:limit] if limit else values, res.warnings)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        if name != self.label:
            return await self.inner.label_values(name, matchers, limit=limit)
        rest = [m for m in matchers if m.name != self.label]
        res = await self.inner.label_values(self.label, rest)
        mapping = await self.mapping()
        values = set(res.values)
        if rest:
            clusters = await self.inner.label_values(CLUSTER_LABEL, rest)
            wanted = set(clusters.values)
            values |= {ws for (c, _), ws in mapping.items() if c in wanted}
        else:
            values |= set(mapping.values())
        out = sorted(v for v in values if all(m.matches(v) for m in matchers if m.name == name))
        return LabelResult(out[:limit] if limit else out, res.warnings)
