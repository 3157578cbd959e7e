"""Seeded synthetic multi-source identity data with ground truth.

    from idgraph.generator import generate, write_source_files

    ds = generate(n_records=10_000, seed=7)
    ds.events[0]        # ("salesforce", {...raw sObject record...}), in event-time order
    ds.truth[key]       # record key ("hubspot:39930") -> person ID ("person-0000042")
    ds.people           # the ground-truth Person objects
    write_source_files(ds, "data/")  # one export/batch file per source kind

Used by the demo, the tests and the benchmarks. See :mod:`idgraph.generator.synthetic`.

Modules (each docstring states its contract):

* the entry point: ``synthetic`` (:func:`generate`, :class:`SyntheticDataset`) and
  ``writers`` (:func:`write_source_files`);
* one payload builder per source system, like ``resolver/adapters``: ``salesforce``,
  ``hubspot``, ``sendgrid``, ``segment``, ``google_calendar``;
* what the builders share: ``events`` (the seeded event stream, time window and clock, and
  its assembly in time order) and ``variation`` (how sources misspell people's values);
* the ground-truth population: ``people`` (:class:`~idgraph.generator.people.PeopleFactory`),
  ``model`` (:class:`Person`, :class:`Company`, :class:`Device`), ``names``, ``countries``,
  ``addresses``, ``phones``, ``emails``, ``devices`` and ``ids``.
"""

from idgraph.generator.people import Company, Device, Person, Phone
from idgraph.generator.synthetic import JUNK_EMAIL, ZERO_IDFA, SyntheticDataset, generate
from idgraph.generator.writers import SOURCE_FILES, write_source_files

__all__ = [
    "JUNK_EMAIL",
    "SOURCE_FILES",
    "ZERO_IDFA",
    "Company",
    "Device",
    "Person",
    "Phone",
    "SyntheticDataset",
    "generate",
    "write_source_files",
]
