"""A second generated world: the traps real identity data has, with ground truth.

    from idgraph.generator.realworld import generate_realworld, write_realworld

    ds = generate_realworld(n_people=2000, seed=7)
    ds.events[0]          # ("salesforce", {...raw sObject record...}), in event-time order
    ds.event_truth[0]     # (source, event_id, record_key, entity_id) per IdentityRecord
    ds.record_truth[key]  # record key -> "person-000042" | "mailbox-000007" | "room-000003"
    ds.entities           # entity ID -> "person" | "shared_mailbox" | "room"
    ds.traps              # trap name -> instances (see traps.TRAPS)
    write_realworld(ds, "data/")  # one file per source (as `idgraph ingest` reads) + truth

Sources, in the vendors' payload shapes: ``salesforce`` (Contacts and Leads), ``hubspot`` (CRM
v3 contacts), ``sendgrid`` (Event Webhook events with custom arguments), ``segment`` (spec
events), ``google_calendar`` (v3 Event resources) and ``mandrill`` (Mailchimp Transactional
inbound events: replies to the SendGrid mail, ``In-Reply-To`` = its ``smtp-id``).

Unlike the existing world (:mod:`idgraph.generator.synthetic`), values here are shared by
design: company switchboards, household landlines, role/team and household mailboxes,
placeholder companies, office and carrier NAT addresses, family tablets and browsers. Ground
truth has three kinds of entity: people, shared mailboxes (mail to ``info@acme.com`` is the
mailbox's; a CRM contact whose Email is ``info@acme.com`` is still the person's) and rooms.

Modules (each docstring states its contract): ``dataset`` (:func:`generate_realworld`),
``files`` (:func:`write_realworld`), ``world`` (the population), ``traps`` (names and
tally), ``ledger`` (queue and truth via the real adapters), ``spelling`` (names and phones
as records write them), and one builder per source: ``crm``, ``segment``, ``calendar``,
``sendgrid``, ``mandrill``.
"""

from idgraph.generator.realworld.dataset import (
    REALWORLD_SOURCES,
    RealWorldDataset,
    generate_realworld,
)
from idgraph.generator.realworld.files import REALWORLD_FILES, write_realworld
from idgraph.generator.realworld.traps import TRAPS

__all__ = [
    "REALWORLD_FILES",
    "REALWORLD_SOURCES",
    "TRAPS",
    "RealWorldDataset",
    "generate_realworld",
    "write_realworld",
]
