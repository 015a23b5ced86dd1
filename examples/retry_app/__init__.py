"""An ADK app folder whose ``App`` declares ``RetryPlugin``: ``adk run examples/retry_app``.

Nothing is imported here on purpose: ADK's loader finds ``app`` in
``retry_app.agent`` by itself, and ``--extra_plugins retry_app.plugins.…``
can import the plugins module without building this folder's app.
"""
