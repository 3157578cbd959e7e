"""The bottom layer: what every other layer shares, and nothing else.

* :mod:`core.errors`: the root exception, its subclasses (each naming its status), and the
  boundary that turns a backend driver's errors into :class:`core.errors.BackendError`;
* :mod:`core.links`: the link decisions' vocabulary (edges, components, graph changes,
  history entries) and the graph read roles the resolver uses;
* :mod:`core.sections`: the base of every settings section;
* :mod:`core.ports`: free TCP ports.

It imports only the standard library and pydantic (checked by ``make lint``).
"""
