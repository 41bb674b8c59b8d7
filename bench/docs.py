"""The documents and schemas the benchmarks extract with.

``Person`` is the small schema of the throughput runs (P1–P5), whose scripted server always
answers ``PERSON_REPLY``. ``Contact`` and ``Ticket`` are the two schemas of the real-model run
(P6), both read from each of the ``MESSAGES``: short customer-support messages, the kind of
text a data engineer labels by the hundred thousand.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field


class Person(BaseModel):
    """The small schema of the throughput benchmarks."""

    name: str
    age: int
    email: str


PERSON_REPLY = json.dumps({"name": "Ann Lee", "age": 34, "email": "ann.lee@example.com"})

_FIRST = ("Ann", "Bo", "Carla", "Dev", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun")
_LAST = ("Lee", "Ortiz", "Novak", "Singh", "Berg", "Haddad", "Petrov", "Sato", "Kim", "Moreau")
_CITY = ("Oslo", "Lyon", "Porto", "Kyoto", "Austin", "Gdansk", "Leeds", "Recife", "Perth", "Graz")


def person_text(i: int) -> str:
    """A short, distinct document about one person (``i`` picks the details)."""
    first, last = _FIRST[i % 10], _LAST[(i // 10) % 10]
    age = 20 + i % 50
    return (
        f"{first} {last} ({age}) moved to {_CITY[(i // 100) % 10]} last spring and now "
        f"answers to {first.lower()}.{last.lower()}{i}@example.com for anything about the "
        f"garden club, ticket #{i}."
    )


class Contact(BaseModel):
    """Who wrote a support message."""

    name: str = Field(description="the sender's full name")
    email: str | None = Field(description="the sender's email address, if given")
    phone: str | None = Field(description="the sender's phone number, if given")
    company: str | None = Field(description="the sender's company, if given")


class Ticket(BaseModel):
    """What a support message is about."""

    category: Literal["billing", "shipping", "technical", "account", "other"]
    sentiment: Literal["positive", "neutral", "negative"]
    urgency: Literal["low", "medium", "high"]
    summary: str = Field(max_length=120, description="one short sentence")


SCHEMAS: dict[str, type[BaseModel]] = {"contact": Contact, "ticket": Ticket}

# What a plain prompt asks for, per schema: the peers' prompts carry only this and the text.
TASKS = {
    "contact": "Extract the sender's contact details from this support message.",
    "ticket": "Classify this support message: category, sentiment, urgency and a short summary.",
}

MESSAGES: tuple[str, ...] = (
    "Hi, this is Maria Gonzalez from Brightline Dental. We were charged twice for the March "
    "invoice (INV-2291). Please refund the duplicate. You can reach me at "
    "maria.gonzalez@brightline-dental.com.",
    "My parcel was supposed to arrive on Monday and the tracking page has said 'in transit' for "
    "nine days. I need it for my daughter's birthday on Saturday! — Tom Becker, +49 151 2345 6789",
    "Hello team, just wanted to say the new dashboard is lovely and much faster. Keep it up. "
    "Priya Raman, Northwind Analytics",
    "I can't log in since yesterday's password reset. The link says it expired. "
    "Kenji Watanabe (kenji.w@mailbox.jp)",
    "The export to CSV button does nothing in Firefox 128. Chrome works. Not urgent, we have a "
    "workaround. Lena Fischer, QA lead at Orbital Labs, lena@orbital-labs.io",
    "URGENT: our whole warehouse team is locked out of the scanner app, orders are piling up. "
    "Call me on 0161 496 0753. — Samir Haddad, Haddad Logistics",
    "Could you tell me whether you ship to Iceland? Thanks, Elin Sigurdardottir",
    "I was billed for the Pro plan but I downgraded to Basic two weeks ago. Please fix this and "
    "refund the difference. Jacob Miller, jacob.miller@gmail.com, 555-0142",
    "The box arrived crushed and two of the glasses were broken. Very disappointed. "
    "Aoife Byrne, aoife.byrne@eircom.net",
    "Hi! How do I change the email address on my account? I moved jobs. — Daniel Okafor",
    "Your API returns 502 errors on about 5% of requests to /v2/orders since this morning. This "
    "is hurting our checkout. Wei Zhang, CTO, Lantern Commerce, wei@lanterncommerce.com",
    "Just a note that the invoice PDF shows the wrong VAT number for our company, Keller & Sohn "
    "GmbH. Whenever you get a chance. Regards, Anna Keller",
    "I ordered a blue jacket and received a green one. I'd like an exchange please. "
    "Fernando Alves, +351 912 345 678",
    "Thank you for the quick help with my refund last week, Olga was wonderful! — Hiroshi Tanaka",
    "The mobile app crashes every time I open the settings page on my Pixel 8. "
    "Sophie Martin (sophie.martin@orange.fr)",
    "Please close my account and delete my data. I no longer use the service. Mark Davies",
    "Our card was declined on renewal but the bank says there is no problem. We will lose access "
    "tomorrow. Please help asap. Nadia Petrova, Finance, Volga Textiles, +7 495 123 4567",
    "Where is my order #58213? It has been three weeks. This is unacceptable. "
    "Liam O'Connor, liam.oconnor@outlook.com",
    "Is there a student discount for the annual plan? — Chloe Dubois",
    "The search results in the web app are empty for any query with an accent, like 'café'. "
    "Ravi Kumar, developer at Spice Route Foods, ravi@spiceroute.in",
    "I love the new recipe feature, my kids use it every weekend. Greta Lindqvist",
    "Two-factor codes are not arriving by SMS on my number 07700 900461. I cannot access payroll "
    "before the deadline today. Owen Hughes",
    "We would like to add five more seats to our team subscription. Who should I talk to? "
    "Isabel Romero, Operations Manager, Sol y Mar Hotels, isabel.romero@solymar.es",
    "The courier left my package at the wrong address, 14 Elm Street instead of 41. "
    "Please sort it out. Ahmed Khan, 555-0199",
    "Your last update deleted all my saved drafts. Hours of work gone. I am furious. "
    "Julia Nowak, julia.nowak@wp.pl",
    "Can I get a copy of my receipts for 2025 for my tax return? Thanks! Pedro Santos",
    "The sync between the desktop and phone apps takes more than ten minutes now. Annoying but "
    "I can live with it. Emma Johansson, emma.j@telia.se",
    "I was charged in dollars although my account is set to euros. Please correct the invoice. "
    "Luca Bianchi, Bianchi Architetti, +39 02 1234 5678",
    "Hello, the tracking number you sent me does not exist on the carrier's site. "
    "Yuki Nakamura (yuki.nakamura@docomo.ne.jp)",
    "Just wanted to confirm my appointment change went through. No rush. — Grace Mensah",
    "Our SSO login through Okta fails with 'invalid audience' for all 200 employees since the "
    "certificate rotation. Critical. Marcus Weber, IT, Alpenblick Versicherung, "
    "m.weber@alpenblick.de",
    "Great service, the replacement arrived in two days. Thanks a lot. Fatou Diallo",
    "I think someone else logged into my account, I see orders I did not place. Please lock it "
    "now. Robert Smith, robert.smith@yahoo.com, 555-0123",
    "Do you offer gift wrapping for orders shipped abroad? Ines Carvalho",
    "The charts in the monthly report show last year's numbers instead of this year's. We present "
    "to the board on Thursday. Helen Park, Strategy, Meridian Health, helen.park@meridian.org",
    "My refund was approved ten days ago but the money is still not on my card. "
    "Tomasz Zielinski, +48 601 234 567",
    "Hi, I'd like to change the delivery date of my order to next Friday if possible. "
    "Sarah Cohen, sarah.cohen@walla.co.il",
    "The printer integration stopped working after your update, labels come out blank. We ship "
    "300 parcels a day. Diego Fernandez, Fernandez Imports, diego@fernandez-imports.mx",
    "Thank you for adding dark mode, my eyes are grateful. Amara Nwosu",
    "I cannot update my billing address, the form says 'invalid postcode' for SW1A 1AA. "
    "Oliver Bennett, oliver.bennett@btinternet.com",
    "The item I received is not the one in the photos, the material feels cheap. I want a "
    "refund. Valentina Rossi",
    "Notifications are delayed by hours on iOS 18. Nothing critical. Arjun Mehta, "
    "arjun.mehta@infosys.com",
    "Please send me an invoice with our company name, Nordlys AS, instead of my own name. "
    "Ingrid Halvorsen, +47 912 34 567",
    "Your delivery driver was very friendly and careful with the fragile items. Just wanted you "
    "to know. Carlos Mendoza",
    "I've been trying to reset my password for an hour and never get the email. "
    "Mei Chen, mei.chen@qq.com",
    "The data import fails with 'row 1042: unexpected column' but the file has only 900 rows. "
    "Tobias Schmidt, Data Engineer, Rheinfluss Energie, tobias.schmidt@rheinfluss.de",
    "My subscription renewed even though I cancelled it in January. Please refund me. "
    "Hannah Wright, 555-0178",
    "Only half of my order arrived, the second box is missing. Order #77120. "
    "Kwame Asante, kwame.asante@gmail.com",
    "Can you tell me when the Android widget will be available? Curious, no pressure. "
    "Lucia Herrera",
    "Our API keys were rotated without notice and every integration is down. We are losing "
    "sales right now. Call +1 415 555 0100. — Ethan Brooks, VP Engineering, Cobalt Pay",
)


def plain_prompt(schema_name: str, text: str) -> str:
    """The peers' prompt: the task and the document, nothing about the output's shape."""
    return f"{TASKS[schema_name]}\n\n{text}"
