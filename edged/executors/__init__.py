"""Built-in executors: the `command` binding kind (subprocesses) and the HTTP system task.

Each module registers itself at import (`edged.runtime.bindings` imports them
before it builds the config's bindings).
"""
