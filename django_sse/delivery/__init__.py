"""The machinery a stream runs on: sync/async bridging, the hub, channel streams, the records."""
