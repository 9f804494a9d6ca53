"""The duty console: server-rendered pages, one-tap alert links and a JSON API, served by
`monitor run` itself. Handlers read through queries.py and act through acting.py, which
calls monitor.incidents.actions: no business logic lives in a handler."""
