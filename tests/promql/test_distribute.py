"""Which aggregations pushdown sends to members, and what text each member gets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from promql.distribute import PushedAggregate, plan_pushdown
from promql.parser import parse_expr
from promql.value import Matrix
from storage.labels import Labels


@dataclass
class FakeEngine:
    cluster: str
    legacy: bool = False
    external: tuple[tuple[str, str], ...] = ()
    dropped_labels: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f'cluster "{self.cluster}"'

    @property
    def partition_labels(self) -> Labels:
        return Labels.from_pairs([*self.external, ("cluster", self.cluster)])

    async def query(
        self, query, start_ms, end_ms, step_ms, *, instant
    ) -> Matrix:  # pragma: no cover
        raise AssertionError("not called by the planner")


ENGINES = [FakeEngine("a"), FakeEngine("b", external=(("region", "eu"),))]


def queries(text: str, engines=ENGINES, opaque=()) -> list[dict[str, tuple[str, ...]]]:
    _, pushed = plan_pushdown(parse_expr(text), engines, opaque_labels=opaque)
    return [{p.engine.cluster: p.queries for p in node.parts} for node in pushed]


@pytest.mark.parametrize(
    ("text", "member_query"),
    [
        ("sum by (cluster) (rate(x[5m]))", "sum(rate(x[5m]))"),
        ("sum by (job) (x)", "sum by (job) (x)"),
        ("max without (instance) (x)", "max without (instance) (x)"),
        ("count(x)", "count(x)"),
        ("group by (cluster) (x)", "group(x)"),
        ("topk(3, rate(x[5m]))", "topk(3, rate(x[5m]))"),
        ('sum(x{cluster=~"a|b", job="j"})', 'sum(x{job="j"})'),
        ("sum(a / on (cluster, i) b)", "sum(a / on (cluster, i) b)"),
        ("sum(sum by (cluster, job) (x))", "sum(sum by (cluster, job) (x))"),
    ],
)
def test_pushable_aggregations_and_member_text(text, member_query):
    (node,) = queries(text)
    assert node["a"] == (member_query,)


def test_avg_is_sent_as_sums_and_marked_counts_in_one_query():
    (node,) = queries("avg by (job) (x)")
    assert node["a"] == (
        'sum by (job) (x) or label_replace(count by (job) (x), "__pushdown_count__",'
        ' "count", "", "")',
    )


@pytest.mark.parametrize(
    "text",
    [
        "quantile(0.9, x)",  # not combinable
        "sum(absent(x))",  # makes series out of nothing per member
        "sum(x / on (i) y)",  # matching mixes clusters
        "sum(x / ignoring (cluster) y)",
        "sum(rate(x[5m:]))",  # default subquery step is the member's own
        "sum by (__name__) (x)",
        "topk(scalar(y), x)",
        'sum(label_replace(x, "cluster", "$1", "i", "(.*)"))',
        "rate(x[5m])",  # no aggregation at all
    ],
)
def test_unsafe_shapes_go_raw(text):
    assert queries(text) == []


def test_an_unpushable_outer_aggregation_still_pushes_its_inner_one():
    # the outer sum cannot run per member (the inner one drops cluster), the inner can
    (node,) = queries("sum(sum by (job) (x))")
    assert node["a"] == ("sum by (job) (x)",)


def test_cluster_and_external_label_matchers_are_decided_per_member():
    (node,) = queries('sum(x{cluster="a"})')
    assert set(node) == {"a"}
    # b's external label satisfies the matcher; a's series may carry their own region
    (node,) = queries('sum(x{region="eu"})')
    assert node == {"a": ('sum(x{region="eu"})',), "b": ("sum(x)",)}


def test_labels_members_cannot_see_keep_the_aggregation_raw():
    assert queries("sum by (replica) (x)", opaque=("replica",)) == []
    assert queries('sum(x{replica="0"})', opaque=("replica",)) == []
    engines = [FakeEngine("a", dropped_labels=("pod",))]
    assert queries('sum(x{pod="p1"})', engines) == []  # pod is dropped: never "p1"


def test_legacy_members_get_left_open_ranges_except_where_the_range_is_in_the_result():
    engines = [FakeEngine("old", legacy=True)]
    (node,) = queries("sum(max_over_time(x[5m]) + rate(y[5m]))", engines)
    assert node["old"] == ("sum(max_over_time(x[4m59s999ms]) + rate(y[5m]))",)
    assert queries("sum(limitk(2, x))", engines) == []


def test_only_the_top_most_aggregations_are_replaced():
    _, pushed = plan_pushdown(parse_expr("sum by (cluster) (x) / on () group_left sum(x)"), ENGINES)
    assert len(pushed) == 2
    assert all(isinstance(p, PushedAggregate) for p in pushed)
