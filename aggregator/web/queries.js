// The PromQL behind the global view. Each usage figure tries the usual
// exporters in turn, per cluster: `a or b` keeps a's series and adds b's only
// for clusters a has nothing for, so a cluster with node-exporter is measured
// by it, one with only cAdvisor (kubelet) by that, one with only
// kube-state-metrics by its capacity series.
"use strict";

const CONTAINERS = 'container!="",container!="POD"';

const FLEET_QUERIES = {
  // CPU cores in use.
  cpuUsed:
    'sum by (cluster) (rate(node_cpu_seconds_total{mode!~"idle|iowait|steal"}[5m]))' +
    ` or sum by (cluster) (rate(container_cpu_usage_seconds_total{${CONTAINERS}}[5m]))`,
  // CPU cores there are.
  cpuTotal:
    'count by (cluster) (node_cpu_seconds_total{mode="idle"})' +
    ' or sum by (cluster) (kube_node_status_capacity{resource="cpu"})' +
    " or sum by (cluster) (machine_cpu_cores)",
  // Memory in use, bytes.
  memUsed:
    "sum by (cluster) (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)" +
    ` or sum by (cluster) (container_memory_working_set_bytes{${CONTAINERS}})`,
  // Memory there is, bytes.
  memTotal:
    "sum by (cluster) (node_memory_MemTotal_bytes)" +
    ' or sum by (cluster) (kube_node_status_capacity{resource="memory"})' +
    " or sum by (cluster) (machine_memory_bytes)",
};

// Per workspace and cluster: container usage per namespace, joined with the
// namespace -> workspace mapping kube-state-metrics publishes for KubeSphere
// (`kube_namespace_labels{label_kubesphere_io_workspace}`), per cluster.
function workspaceQuery(usage) {
  const perNamespace = `sum by (cluster, namespace) (${usage})`;
  const mapping =
    "max by (cluster, namespace, label_kubesphere_io_workspace) " +
    '(kube_namespace_labels{label_kubesphere_io_workspace!=""})';
  return (
    "sum by (workspace, cluster) (label_replace(" +
    `${perNamespace} * on (cluster, namespace) group_left (label_kubesphere_io_workspace) ${mapping}, ` +
    '"workspace", "$1", "label_kubesphere_io_workspace", "(.+)"))'
  );
}

const WORKSPACE_QUERIES = {
  cpu: workspaceQuery(`rate(container_cpu_usage_seconds_total{${CONTAINERS}}[5m])`),
  mem: workspaceQuery(`container_memory_working_set_bytes{${CONTAINERS}}`),
};
