"""The edge agent (`aggregator edge`): scrape locally, run the host's rules over a short
in-memory window, forward only alerts, recording results and threshold breaches,
buffer on disk while the link is down, and answer the host's reads through one
outbound tunnel. It imports promql, the wire codec and its own small HTTP client
(`aggregator.edge.http`); never aiohttp, the HTTP API, storage's head, blocks or
object stores, tiering or the notifiers."""
