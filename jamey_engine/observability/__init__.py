"""The Prometheus side: the metrics the service exports (``metrics``), the PromQL client the
workbench and notebooks read them back with (``promql``, ``promresult``), and the dashboards'
chart definitions (``dashboards``)."""
