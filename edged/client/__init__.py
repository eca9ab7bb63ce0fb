"""The command-line client of a running edged: `edged start|get|list|logs|graph|signal`.

`commands` holds the subcommands and their exit codes, `transport` the stdlib
HTTP and Server-Sent Events client, `render` the human-readable text and
`graph` the dot / Mermaid renderer of definitions.
"""
