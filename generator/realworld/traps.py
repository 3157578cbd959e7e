"""The traps of the real-world dataset: their names, what one instance is, and the tally.

Contract: :data:`TRAPS` names every trap the world contains (name -> what one counted
instance is); :class:`Tally` counts them while the builders emit payloads, and
:meth:`Tally.result` returns a count for every name in :data:`TRAPS` (zero included), in
:data:`TRAPS` order. Builders tally only payloads that were actually queued (inside the time
window). Shared-value traps count *values* used by at least two different entities, not
records. The tally draws no random numbers.
"""

from __future__ import annotations

__all__ = ["TRAPS", "Tally"]

#: Trap name -> what one instance is.
TRAPS: dict[str, str] = {
    # shared values that are not people
    "switchboard_phone": "a company main number on CRM records of >= 2 different people",
    "phone_extension": "a CRM phone written as the main number plus an extension",
    "household_landline": "a household landline on CRM records of >= 2 household members",
    "role_mailbox_on_crm": "a role/team mailbox that is the Email of CRM records of >= 2 people",
    "role_mailbox_mail": "a role/team mailbox receiving SendGrid mail",
    "household_mailbox": "a household mailbox used in the records of >= 2 household members",
    "placeholder_company": "a CRM record whose company is Individual/[not provided]/N/A...",
    "zero_advertising_id": "a device sending the all-zero IDFA/GAID",
    "office_nat_ip": "an office NAT IP in Segment events of >= 2 people",
    "carrier_nat_ip": "a carrier-grade NAT IP (100.64.0.0/10) in Segment events of >= 2 people",
    # shared devices
    "family_tablet": "a device on which two household members identify",
    "shared_browser_no_reset": "a browser anonymousId identified as two users (no reset())",
    "leaked_user_id_event": "an event by one person carrying the previous user's userId",
    # people who are not one value
    "job_change": "a person who changes employer (new CRM records, new work email)",
    "job_change_bounce": "an old work address that starts bouncing after a job change",
    "personal_and_work_email": "a person whose records use both a personal and a work address",
    "hs_additional_emails": "a HubSpot contact listing more addresses in hs_additional_emails",
    "converted_lead": "a Salesforce Lead with IsConverted and ConvertedContactId",
    "duplicate_lead": "an unconverted Lead of a person who has a Contact or another Lead",
    "duplicate_contact": "a second Salesforce Contact of the same person",
    "nickname": "a record naming a person by a nickname (Bob, Bill, Liz, Katja, Sasha, Beppe...)",
    "name_typo": "a record with a typo in a name",
    "accent_folded": "a record with an accented name folded (Mueller, Muller, Jose)",
    "name_swapped": "a record with given and family name swapped",
    "initials": "a record with the given name as an initial (J. Smith)",
    "email_typo": "a CRM record with a mistyped address (one letter off, nobody's mailbox)",
    "email_as_user_id": "a person whose legacy app sends the email address as Segment userId",
    # lookalikes
    "same_name_same_company": "two different people with the same full name at one company",
    "non_gmail_dot_variant": "two different people whose non-Gmail addresses differ by a dot",
    "gmail_dot_plus_variant": "a record writing a Gmail address with other dots or a +tag",
    # evidence that is not the person's
    "apple_mpp_open": "a SendGrid open by Apple Mail Privacy Protection (sg_machine_open)",
    "google_proxy_open": "a SendGrid open fetched through GoogleImageProxy",
    "out_of_office_reply": "a Mandrill auto-reply whose text names a colleague's address",
    "calendar_room": "a meeting booking a room resource (resource: true)",
    "room_account_attendee": "a meeting inviting a room set up as a plain user account",
    "team_mailbox_attendee": "a meeting inviting a team/role mailbox",
    "assistant_created_event": "a meeting created by an assistant on the organiser's calendar",
    "multi_company_meeting": "a meeting whose people work for >= 3 different companies",
    "crm_id_to_shared_mailbox": "SendGrid mail to a shared mailbox carrying a person's CRM ID",
    # valid links
    "sendgrid_user_id_arg": "a SendGrid message carrying the app user ID as a custom arg",
    "sendgrid_crm_id_arg": "a SendGrid message carrying a Salesforce Contact/Lead ID arg",
    "sendgrid_hubspot_id_arg": "a SendGrid message carrying a HubSpot contact ID arg",
    "reply_same_address": "a Mandrill reply from the address the SendGrid message went to",
    "reply_other_address": "a Mandrill reply from the recipient's other address",
    "reply_for_shared_mailbox": "a reply to mail sent to a shared mailbox, from a member's own address",
}


class Tally:
    """Counts of trap instances; shared-value traps count values with >= 2 users."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._shared: dict[str, dict[str, set[str]]] = {}

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` instances of trap ``name``."""
        if name not in TRAPS:
            raise KeyError(f"unknown trap {name!r}")
        self._counts[name] = self._counts.get(name, 0) + n

    def share(self, name: str, value: str, user: str) -> None:
        """``user`` (an entity, or a kind of use) used ``value``: trap ``name`` counts the
        values seen with at least two different users."""
        if name not in TRAPS:
            raise KeyError(f"unknown trap {name!r}")
        self._shared.setdefault(name, {}).setdefault(value, set()).add(user)

    def result(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in TRAPS:
            n = self._counts.get(name, 0)
            n += sum(1 for users in self._shared.get(name, {}).values() if len(users) >= 2)
            out[name] = n
        return out
