"""Prometheus metrics, computed from the database at scrape time: correct after a restart and the
same on every server replica."""

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from moorage.server import service
from moorage.server.db.models import AddonState, Cluster, Job, Operation, aware
from moorage.server.db.session import SessionFactory
from moorage.spec.protocol import FINAL_JOB_STATES, JobState


class ServerCollector(Collector):
    def __init__(self, factory: SessionFactory, clock: Callable[[], datetime]) -> None:
        self._factory = factory
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        lag = GaugeMetricFamily(
            "moorage_native_engine_reconcile_loop_lag_seconds",
            "Seconds since the last reconcile sweep the cluster's agent reported",
            labels=["cluster_id"],
        )
        clusters = GaugeMetricFamily("moorage_clusters", "Clusters by agent state", labels=["state"])
        addons = GaugeMetricFamily(
            "moorage_addons", "Add-ons per cluster and lifecycle state", labels=["cluster_id", "state"]
        )
        full_report = GaugeMetricFamily(
            "moorage_cluster_full_report_age_seconds",
            "Seconds since the cluster's agent last sent a full add-on state snapshot",
            labels=["cluster_id"],
        )
        jobs_done = CounterMetricFamily("moorage_jobs", "Jobs that ended, by final state", labels=["state"])
        jobs_open = GaugeMetricFamily("moorage_jobs_open", "Unfinished jobs by state", labels=["state"])
        ops_done = CounterMetricFamily(
            "moorage_operations", "Operations that ended, by final state", labels=["state"]
        )
        ops_open = GaugeMetricFamily(
            "moorage_operations_open", "Unfinished operations by state", labels=["state"]
        )

        with self._factory() as session:
            by_state = dict.fromkeys(("online", "offline", "never_connected"), 0)
            for cluster in session.scalars(select(Cluster)):
                by_state[service.cluster_state(cluster, now)] += 1
                last_sweep = (cluster.heartbeat or {}).get("last_sweep_at")
                if last_sweep:
                    swept = aware(datetime.fromisoformat(last_sweep))
                    lag.add_metric([cluster.id], max(0.0, (now - swept).total_seconds()))
                if cluster.state_full_at is not None:
                    full_report.add_metric(
                        [cluster.id], max(0.0, (now - cluster.state_full_at).total_seconds())
                    )
            rows = session.execute(
                select(AddonState.cluster_id, AddonState.state, func.count()).group_by(
                    AddonState.cluster_id, AddonState.state
                )
            )
            for cluster_id, state, count in rows:
                addons.add_metric([cluster_id, state], count)
            job_counts = service.count_by_state(session, Job)
            op_counts = service.count_by_state(session, Operation)

        for state, count in by_state.items():
            clusters.add_metric([state], count)
        for job_state in JobState:
            family = jobs_done if job_state in FINAL_JOB_STATES else jobs_open
            family.add_metric([job_state.value], job_counts.get(job_state.value, 0))
        for op_state in service.OPERATION_STATES:
            family = ops_done if op_state in service.FINAL_OPERATION_STATES else ops_open
            family.add_metric([op_state], op_counts.get(op_state, 0))
        yield from (lag, full_report, addons, clusters, jobs_done, jobs_open, ops_done, ops_open)


def make_registry(factory: SessionFactory, clock: Callable[[], datetime]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(factory, clock))
    return registry
