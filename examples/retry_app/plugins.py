"""``RetryPlugin`` with a non-default policy, in the two forms ``--extra_plugins`` accepts.

ADK's loader (``google/adk/cli/api_server.py``, 2.3 and 2.13) imports the
dotted name and either uses a ``BasePlugin`` *instance* as is, or builds a
``BasePlugin`` *subclass* as ``cls(name="<the dotted name>")``: no policy can
be passed on the command line. So the policy goes into a subclass, or into a
module-level instance::

    adk api_server --extra_plugins retry_app.plugins.TransientRetryPlugin examples
    adk web --extra_plugins retry_app.plugins.transient_retry examples

(``examples``, the agents directory, is on ``sys.path`` under ``adk web`` /
``adk api_server``, so ``retry_app.plugins`` imports; a module of your own
package works the same way.) A name that fails to import is only logged by
ADK, at ERROR, and the server runs without it.

Example:
    >>> from examples.retry_app.plugins import TransientRetryPlugin  # doctest: +SKIP
    >>> TransientRetryPlugin(name="x").policy.retry_on
    'transient'
"""

from adk_retry import RetryPlugin, RetryPolicy

__all__ = ["TransientRetryPlugin", "transient_retry"]


class TransientRetryPlugin(RetryPlugin):
    """``RetryPlugin(RetryPolicy.transient())``, buildable the way ADK's loader builds it (``name=`` only)."""

    def __init__(self, name: str = "adk_retry") -> None:
        super().__init__(RetryPolicy.transient(), name=name)


# One instance, used as is by ADK: every app the server loads shares it (and its stats).
transient_retry = TransientRetryPlugin()
