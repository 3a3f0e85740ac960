"""The edge agent (`aggregator edge`): scrape locally, run the host's rules over a short
in-memory window, forward only alerts, recording results and threshold breaches,
buffer on disk while the link is down, and answer the host's reads through one
outbound tunnel. It imports promql, the wire codec and aiohttp's client, never the
HTTP API, storage's head/blocks/object stores, tiering or the notifiers."""
