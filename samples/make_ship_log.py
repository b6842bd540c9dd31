"""Writes `northern_tern_log.txt`: a synthetic ship's log (fiction) with facts to find.

The schooner, her crew and the voyage are invented; the text is generated from this seeded
script so it can be rebuilt exactly: `python samples/make_ship_log.py`. Port arrivals, a death
at sea and the cargo figures are the facts a question can ask about (see `FACTS`).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

OUT = Path(__file__).with_name("northern_tern_log.txt")
START, END = date(1887, 3, 2), date(1887, 7, 24)

# date -> the day's events at a port, written into that day's entry.
PORT_DAYS = {
    date(1887, 3, 2): "Cast off from Falmouth at 7 a.m. with the ebb, bound for Fremantle by way of Madeira, "
    "the Cape and Mauritius. Cargo: 310 bales of woollen cloth, 96 crates of hardware, 12 tons of coal.",
    date(1887, 3, 17): "Came to anchor in Funchal Roads, Madeira, at 4 p.m. in 14 fathoms. Boat sent ashore "
    "with the mate to the agent.",
    date(
        1887, 3, 19
    ): "At Funchal. Took on 40 casks of Madeira wine on the owners' account and 9 tons of water.",
    date(1887, 3, 21): "Weighed anchor at Funchal at daybreak and stood to the south.",
    date(
        1887, 5, 9
    ): "Came to anchor in Table Bay, Cape Town, at 11 a.m. after a run of 49 days from Madeira.",
    date(1887, 5, 12): "At Cape Town. Landed 96 crates of hardware. Shipped 2 seamen, A. Nkosi and "
    "P. van Wyk, in place of those lost and discharged.",
    date(1887, 5, 16): "Sailed from Table Bay at noon with a fair south-easter.",
    date(1887, 6, 11): "Came to anchor in the harbour of Port Louis, Mauritius, at 2 p.m. Pratique granted "
    "the same afternoon.",
    date(1887, 6, 14): "At Port Louis. Landed 140 bales of cloth. Took on 620 bags of sugar for Fremantle.",
    date(1887, 6, 18): "Left Port Louis at 6 a.m. under all plain sail.",
    date(1887, 7, 24): "Came to anchor in Gage Roads off Fremantle at 3 p.m. Voyage ended, 144 days from "
    "Falmouth. All hands well save the cook, who is down with a fever.",
}
EVENTS = {
    date(1887, 3, 8): "Sighted a large whale to windward, blowing, about two miles off.",
    date(1887, 4, 3): "Seaman John Pellow fell from the foretopsail yard at 10 a.m. and was killed. "
    "Buried him at sea at 4 p.m., the master reading the service.",
    date(
        1887, 4, 4
    ): "Discharged seaman R. Tonkin into the sick list with a crushed hand from yesterday's work.",
    date(1887, 4, 19): "Crossed the line at 2 p.m. in longitude 24 W. The usual ceremony.",
    date(
        1887, 5, 28
    ): "Hard gale from the west. Lost the jib boom and one boat stove in. Hove to for 11 hours.",
    date(1887, 6, 30): "Spoke the barque Aurora of Hobart, 41 days out, all well, and exchanged longitudes.",
    date(1887, 7, 9): "Served out the last of the fresh potatoes. Lime juice daily to all hands.",
}
WINDS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
FORCE = ["light airs", "light breeze", "gentle breeze", "moderate breeze", "fresh breeze", "strong breeze"]
SKY = ["fine and clear", "overcast", "passing squalls", "hazy", "cloudy with drizzle", "clear, heavy dew"]
WORK = [
    "Watch employed setting up rigging.",
    "Carpenter caulking the deck seams forward.",
    "Crew at the pumps twice in the watch; ship making little water.",
    "Bent a new fore topsail.",
    "Scraping and oiling the rails.",
    "Washed decks and aired bedding.",
    "Mended sails on the main hatch.",
    "Tarred down the lower rigging.",
    "Stowed the cable below.",
    "Overhauled the running gear.",
]


# The route: (date, latitude, longitude), + north and east; positions between are interpolated.
ROUTE = [
    (date(1887, 3, 2), 50.1, -5.1),  # Falmouth
    (date(1887, 3, 17), 32.6, -16.9),  # Funchal
    (date(1887, 3, 21), 32.6, -16.9),
    (date(1887, 4, 19), 0.0, -24.0),  # crossing the line
    (date(1887, 5, 1), -25.0, -5.0),
    (date(1887, 5, 9), -33.9, 18.4),  # Cape Town
    (date(1887, 5, 16), -33.9, 18.4),
    (date(1887, 5, 30), -38.0, 40.0),
    (date(1887, 6, 11), -20.2, 57.5),  # Port Louis
    (date(1887, 6, 18), -20.2, 57.5),
    (date(1887, 7, 8), -30.0, 90.0),
    (date(1887, 7, 24), -32.1, 115.7),  # Fremantle
]


def position(day: date, rng: random.Random) -> str:
    for (d0, lat0, lon0), (d1, lat1, lon1) in zip(ROUTE, ROUTE[1:], strict=False):
        if d0 <= day <= d1:
            f = (day - d0).days / max(1, (d1 - d0).days)
            lat = lat0 + (lat1 - lat0) * f + rng.uniform(-0.2, 0.2)
            lon = lon0 + (lon1 - lon0) * f + rng.uniform(-0.2, 0.2)
            break
    ns, ew = ("N" if lat >= 0 else "S"), ("W" if lon < 0 else "E")
    return f"Lat. {abs(lat):.1f} {ns}, long. {abs(lon):.1f} {ew}"


def entry(day: date, rng: random.Random) -> str:
    head = day.strftime("%A %-d %B %Y").replace(" 0", " ")
    wind = f"Wind {rng.choice(WINDS)}, {rng.choice(FORCE)}; {rng.choice(SKY)}."
    run = f"Run {rng.randint(40, 215)} miles by log."
    lines = [head + ".", wind]
    if day in PORT_DAYS:
        lines.append(PORT_DAYS[day])
    else:
        lines.append(f"{position(day, rng)}. {run}")
    if day in EVENTS:
        lines.append(EVENTS[day])
    lines.extend(rng.sample(WORK, k=2))
    lines.append(
        f"Barometer {rng.uniform(29.4, 30.4):.2f}. {rng.choice(['Signed', 'Entered'])} J. Treloar, master."
    )
    return " ".join(lines)


def build() -> str:
    rng = random.Random(1887)
    title = (
        "LOG OF THE SCHOONER NORTHERN TERN, OF FALMOUTH, J. TRELOAR MASTER\n"
        "Falmouth to Fremantle, 1887. (A synthetic document: ship, crew and voyage are invented.)\n\n"
    )
    days = [START + timedelta(days=i) for i in range((END - START).days + 1)]
    return title + "\n\n".join(entry(d, rng) for d in days) + "\n"


#: What the log states, for tests and for checking a model's answer by eye.
FACTS = {
    "arrivals": {
        "Funchal": "17 March 1887",
        "Cape Town": "9 May 1887",
        "Port Louis": "11 June 1887",
        "Fremantle": "24 July 1887",
    },
    "died": ("John Pellow", "3 April 1887"),
}

if __name__ == "__main__":
    OUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
