"""The Trio shell around the pure core: engine, dispatch, timers, sinks."""
