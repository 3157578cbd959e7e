"""The web console (``idgraph console``): pages for marketers, data stewards, privacy
officers and admins over the engine's gRPC API.

It is a gRPC client, nothing more: a person signs in with an API key, the console keeps the
key in its memory for the session (never in a cookie, a URL or a log) and sends it with
every call, so the server authenticates, authorises by role, limits regions, masks and
audits each action exactly as for any other client. It imports no store, graph or engine
module (``make lint`` checks that). See the README's "Web console" section.
"""
