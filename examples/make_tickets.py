"""Write made-up support tickets to follow the tune guide with: gold and a batch to label.

    python examples/make_tickets.py gold.jsonl --count 200 --labeled
    python examples/make_tickets.py tickets.jsonl --count 1000 --seed 1

Each line is {"id", "text"} and, with --labeled, the category a person gave it:
{"id": "G-0001", "text": "...", "label": {"category": "billing"}}. The tickets are drawn from
the same phrases for gold and batch, so the two are alike, as the guide's guarantee assumes of
real gold. A share of them say what they want without the words a category is known by, and a
few are labeled other than their words suggest, as hand-labeled tickets are.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PHRASES = {
    "billing": [
        "I was charged twice for my {month} subscription.",
        "Please refund the payment you took after I cancelled.",
        "The invoice for order {n} shows the wrong amount.",
        "My plan renewed at the full price instead of the discount.",
        "Why is there a second payment of ${amount} on my card?",
    ],
    "technical": [
        "The app crashes every time I open the settings page.",
        "Sync stopped working after the last update.",
        "I get error {n} when I upload a file.",
        "The export button is broken on Android.",
        "Nothing loads: the screen stays white and then shows an error.",
    ],
    "account": [
        "I forgot my password and the reset email never comes.",
        "My account is locked after three tries.",
        "How do I change the email address on my account?",
        "Please merge my two accounts into one.",
        "Two-factor login rejects every code I type.",
    ],
    "shipping": [
        "My order {n} has not arrived after two weeks.",
        "The parcel came with a crushed box and a cracked screen.",
        "The driver left the package at the wrong address.",
        "Tracking for order {n} has not moved since {month}.",
        "Can you change the delivery address of order {n}?",
    ],
    "feature_request": [
        "It would be great if the app had a dark mode.",
        "Could you add an export to CSV?",
        "I would like to share lists with my family.",
        "Could the reports show a weekly total?",
        "Would you add keyboard shortcuts to the editor?",
    ],
    "complaint": [
        "Your support staff hung up on me twice.",
        "Worst service I have had from any shop.",
        "Nobody has answered my three letters, I am very unhappy.",
        "Your staff were rude and did not listen.",
        "I have waited a month for a reply from your service team.",
    ],
}
# Tickets that say what they want without the usual words: a model has to read them.
PLAIN = {
    "billing": ["The amount on my statement is not what we agreed.", "Money left my card twice."],
    "technical": ["When I tap save the screen goes black.", "Since Tuesday the page is blank."],
    "account": ["I cannot get in any more.", "My name on the profile is misspelt."],
    "shipping": ["Where is my stuff? It has been ages.", "Half of what I bought is missing."],
    "feature_request": ["A dark theme for night use, please.", "Let us pin favourite items."],
    "complaint": ["Very disappointed in how I was treated.", "This is not how you treat people."],
}
OPENERS = ["Hello,", "Hi team,", "", "Good morning.", "Dear support,", ""]
CLOSERS = ["Thanks.", "", "Please help.", "Regards, {name}", "", "This is urgent."]
NAMES = ["Ann", "Bo", "Carla", "Dev", "Eli", "Fatima", "Goran", "Hiro"]
MONTHS = ["March", "April", "May", "June"]


def ticket(rng: random.Random) -> tuple[str, str]:
    """One ticket's text and the category a careful person gives it."""
    category = rng.choice(sorted(PHRASES))
    pool = PLAIN[category] if rng.random() < 0.15 else PHRASES[category]
    body = rng.choice(pool).format(
        month=rng.choice(MONTHS), n=rng.randint(10000, 99999), amount=rng.randint(5, 90)
    )
    parts = [rng.choice(OPENERS), body, rng.choice(CLOSERS).format(name=rng.choice(NAMES))]
    return " ".join(p for p in parts if p), category


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--labeled", action="store_true", help="add the gold label")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    prefix = "G" if args.labeled else "T"
    with args.output.open("w", encoding="utf-8") as out:
        for i in range(1, args.count + 1):
            text, category = ticket(rng)
            line: dict[str, object] = {"id": f"{prefix}-{i:04d}", "text": text}
            if args.labeled:
                line["label"] = {"category": category}
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
