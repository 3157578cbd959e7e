"""The bottom layer: what every other layer shares, and nothing else.

* :mod:`idgraph.core.errors`: the root exception, its subclasses (each naming its status), and the
  boundary that turns a backend driver's errors into :class:`idgraph.core.errors.BackendError`;
* :mod:`idgraph.core.links`: the link decisions' vocabulary (edges, components, graph changes,
  history entries) and the graph read roles the resolver uses;
* :mod:`idgraph.core.sections`: the base of every settings section;
* :mod:`idgraph.core.ports`: free TCP ports;
* :mod:`idgraph.core.private_files`: owner-only directories and files for personal data.

It imports only the standard library and pydantic (checked by ``make lint``).
"""
