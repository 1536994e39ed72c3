"""The analysts' web UI: server-rendered Jinja2 pages with htmx, served under ``/ui``.

Pages reuse the API's services, policy table (``UI_POLICY``) and tenant scoping; people sign in
with a session cookie holding the same session token the API hands out. Install it on an app
with :func:`soc_api.ui.mount.install_ui`.
"""
