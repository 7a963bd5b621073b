"""The supervisor live web view: queues, agents and skills in the browser.

``snapshot`` reads one tenant's floor from Redis; ``feed`` turns Redis "changed" notices
into debounced snapshots shared by every open page of a tenant; ``render`` writes the
HTML; ``app`` is the Starlette application (log-in, pages, the server-sent-events stream,
form posts); ``server`` runs it with uvicorn in the service's event loop; ``cli`` is
``omniroute web``, the same view as a process of its own.
"""
