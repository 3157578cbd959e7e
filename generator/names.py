"""Word tables people and companies are named from, and job titles.

Contract: plain data plus pure helpers, no randomness of its own. :data:`NAME_POOLS` maps a
name pool (``Country.name_pool``) to (male given names, female given names, family names);
:data:`NICKNAMES` maps a formal given name to the informal forms some systems hold;
:func:`promoted_title` draws a later job title and :func:`family_name` a family name from the
``random.Random`` it is given.

Every table is read by position (``rng.choice``), so reordering or editing an entry changes
the population drawn for a seed.
"""

from __future__ import annotations

import random

__all__ = [
    "COMPANY_HEADS",
    "COMPANY_SECTORS",
    "COMPANY_TAILS",
    "JOB_TITLES",
    "MIDDLE_NAMES_EN",
    "NAME_POOLS",
    "NICKNAMES",
    "family_name",
    "promoted_title",
]


def _words(text: str, sep: str | None = None) -> list[str]:
    """Split a table written as one string (``sep=None``: on whitespace)."""
    return [w.strip() for w in text.split(sep) if w.strip()]


_EN_MALE = _words(
    "James John Robert Michael William David Richard Joseph Thomas Christopher Charles Daniel "
    "Matthew Anthony Mark Steven Paul Andrew Joshua Kevin Brian George Timothy Ryan Jacob "
    "Nicholas Eric Jonathan Benjamin Samuel Alexander Patrick Jack Oliver Henry Liam Noah "
    "Ethan Edward Peter Gregory Frank Scott Raymond Aaron Adam Nathan Tyler"
)
_EN_FEMALE = _words(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy "
    "Sandra Ashley Emily Michelle Amanda Melissa Stephanie Rebecca Laura Katherine Emma "
    "Olivia Sophia Charlotte Amelia Hannah Grace Chloe Rachel Megan Jane Alice Margaret "
    "Victoria Samantha Catherine Natalie Lauren Abigail Madison Julia Heather Diana"
)
_EN_FAMILY = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark "
    "Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker Nelson Carter "
    "Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards Collins Stewart Morris "
    "Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Kelly Howard Ward Cox Richardson "
    "Wood Watson Brooks Bennett Gray Hughes Price Sanders Patel Nguyen Kim Chen Foster Hayes "
    "Sullivan Russell Fisher Graham Hamilton Wallace"
) + ["O'Brien", "O'Connor", "McDonald", "MacLeod"]

_DE_MALE = _words(
    "Lukas Leon Maximilian Felix Jonas Paul Elias Noah Ben Finn Jan Tim Tobias Stefan Michael "
    "Thomas Andreas Markus Christian Alexander Sebastian Florian Daniel Matthias Jürgen Klaus "
    "Wolfgang Uwe Dirk Johannes Josef Frank Moritz Philipp Niklas"
)
_DE_FEMALE = _words(
    "Anna Lena Leonie Marie Sophie Lea Laura Julia Sarah Katharina Sabine Petra Claudia "
    "Andrea Susanne Nicole Stefanie Birgit Monika Ursula Jana Hannah Mia Emilia Johanna "
    "Franziska Charlotte Greta Jessica Christina"
)
_DE_FAMILY = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
    "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann "
    "Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler "
    "Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn "
    "Vogel Friedrich Günther Keller Berger Frank"
)

_FR_MALE = _words(
    "Jean Pierre Michel Philippe Alain Nicolas François Laurent Julien Thomas Antoine Mathieu "
    "Sébastien Olivier Christophe Hugo Louis Lucas Gabriel Arthur Jules Raphaël Théo Maxime "
    "Étienne Guillaume Baptiste Romain Vincent Benoît"
)
_FR_FEMALE = _words(
    "Marie Nathalie Isabelle Sylvie Catherine Sophie Céline Camille Léa Chloé Manon Emma Inès "
    "Juliette Claire Aurélie Émilie Julie Amélie Hélène Margaux Océane Anaïs Mathilde Pauline "
    "Élodie Charlotte Lucie"
)
_FR_FAMILY = _words(
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent "
    "Lefebvre Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Lefèvre "
    "Mercier Dupont Lambert Bonnet François Martinez Legrand Garnier Faure Rousseau Blanc "
    "Guérin Muller Henry Roussel Nicolas Perrin Morin Mathieu Clément Gauthier Dumont Lopez "
    "Fontaine Chevalier Robin"
)

_ES_MALE = _words(
    "Antonio José Manuel Francisco David Juan Javier Daniel Carlos Jesús Alejandro Miguel "
    "Rafael Pablo Sergio Fernando Jorge Alberto Luis Álvaro Diego Adrián Raúl Iván Rubén Hugo "
    "Mario Enrique Ramón Andrés"
)
_ES_FEMALE = _words(
    "María Carmen Ana Isabel Laura Cristina Marta Lucía Elena Paula Sara Raquel Rosa Pilar "
    "Teresa Beatriz Nuria Silvia Patricia Irene Andrea Alba Claudia Sofía Natalia Mercedes "
    "Julia Inés Eva Rocío"
)
_ES_FAMILY = _words(
    "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín Jiménez "
    "Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres "
    "Domínguez Vázquez Ramos Gil Ramírez Serrano Blanco Molina Morales Suárez Ortega Delgado "
    "Castro Ortiz Rubio Marín Sanz Núñez"
)

_NL_MALE = _words(
    "Daan Sem Lucas Levi Finn Milan Jesse Bram Thijs Ruben Lars Tim Jeroen Pieter Jan Willem "
    "Sander Bas Joost Maarten Koen Niels Wouter Hendrik Gijs Stijn"
)
_NL_FEMALE = _words(
    "Emma Julia Sophie Tess Anna Sanne Lotte Fleur Eva Lisa Femke Anouk Marieke Iris Noor "
    "Saskia Ingrid Annelies Esther Linda Maaike Floor"
)
_NL_FAMILY = _words(
    "de Jong|Jansen|de Vries|van den Berg|van Dijk|Bakker|Janssen|Visser|Smit|Meijer|"
    "de Boer|Mulder|de Groot|Bos|Vos|Peters|Hendriks|van Leeuwen|Dekker|Brouwer|de Wit|"
    "Dijkstra|Smits|de Graaf|van der Meer|van der Linden|Kok|Jacobs|de Haan|Vermeulen|"
    "van den Heuvel|van der Veen|van den Broek|de Bruijn|van der Heijden|Schouten|van Beek|"
    "Willems|van Vliet|Hoekstra",
    "|",
)

_JA_MALE = _words(
    "Haruto Sota Yuto Hiroshi Takashi Kenji Daiki Ryota Kazuki Takumi Shota Naoki Yuki Kenta "
    "Makoto Satoshi Akira Kaito Ren Sho Tsubasa Yusuke Hiroki Masato"
)
_JA_FEMALE = _words(
    "Yui Hina Sakura Yuna Aoi Mei Rin Akari Yoko Keiko Naomi Haruka Ayaka Misaki Mai Nanami "
    "Emi Kaori Yumi Tomoko Aya Megumi"
)
_JA_FAMILY = _words(
    "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida "
    "Yamada Sasaki Yamaguchi Matsumoto Inoue Kimura Hayashi Shimizu Yamazaki Mori Abe Ikeda "
    "Hashimoto Yamashita Ishikawa Nakajima Maeda Fujita Ogawa Goto Okada Hasegawa Murakami "
    "Kondo"
)

_SG_MALE = _words(
    "Wei Jie|Jun Jie|Kai Xiang|Zhi Hao|Wen Jie|Jian Hong|Ryan|Darren|Gerald|Kelvin|Melvin|"
    "Eugene|Shawn|Arjun|Ravi|Muhammad|Hafiz|Marcus|Jonathan|Benjamin",
    "|",
)
_SG_FEMALE = _words(
    "Wei Ling|Jia Hui|Hui Min|Xin Yi|Mei Ling|Shu Fen|Li Hua|Jasmine|Cheryl|Rachel|Vanessa|"
    "Priya|Siti|Nur Aisyah|Farah|Michelle|Grace|Joanne",
    "|",
)
_SG_FAMILY = _words(
    "Tan Lim Lee Ng Ong Wong Goh Chua Chan Koh Teo Ang Yeo Tay Ho Low Toh Sim Chong Chia "
    "Kumar Singh Nair Rahman Abdullah Ismail"
)

NAME_POOLS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": (_EN_MALE, _EN_FEMALE, _EN_FAMILY),
    "de": (_DE_MALE, _DE_FEMALE, _DE_FAMILY),
    "fr": (_FR_MALE, _FR_FEMALE, _FR_FAMILY),
    "es": (_ES_MALE, _ES_FEMALE, _ES_FAMILY),
    "nl": (_NL_MALE, _NL_FEMALE, _NL_FAMILY),
    "ja": (_JA_MALE, _JA_FEMALE, _JA_FAMILY),
    "sg": (_SG_MALE, _SG_FEMALE, _SG_FAMILY),
}

#: Formal given name -> informal forms people use in some systems (and the reverse works
#: for matching purposes: a record may say "Bill" where another says "William").
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "John": ("Jon", "Johnny", "Jack"),
    "Jonathan": ("Jon", "Jonny"),
    "Elizabeth": ("Liz", "Beth", "Eliza"),
    "Katherine": ("Kate", "Katie", "Kathy"),
    "Catherine": ("Cathy", "Cat"),
    "Michael": ("Mike", "Mikey"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Alexander": ("Alex",),
    "Joseph": ("Joe", "Joey"),
    "Richard": ("Rick", "Rich", "Dick"),
    "Anthony": ("Tony",),
    "Steven": ("Steve",),
    "Matthew": ("Matt",),
    "Andrew": ("Andy", "Drew"),
    "Nicholas": ("Nick",),
    "Benjamin": ("Ben",),
    "Samuel": ("Sam",),
    "Edward": ("Ed", "Ted"),
    "Gregory": ("Greg",),
    "Timothy": ("Tim",),
    "Patricia": ("Pat", "Patty", "Trish"),
    "Jennifer": ("Jen", "Jenny"),
    "Rebecca": ("Becky", "Becca"),
    "Stephanie": ("Steph",),
    "Jessica": ("Jess",),
    "Susan": ("Sue", "Susie"),
    "Margaret": ("Maggie", "Peggy"),
    "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam",),
    "Abigail": ("Abby",),
    "Johannes": ("Hans",),
    "Josef": ("Sepp",),
    "Alexandra": ("Alex",),
    "Francisco": ("Paco",),
    "José": ("Pepe",),
    "Maximilian": ("Max",),
    "Sebastian": ("Basti",),
    "Katharina": ("Kathi",),
    "Franziska": ("Franzi",),
    "Christina": ("Tina",),
    "Nicolas": ("Nico",),
    "Willem": ("Wim",),
    "Hendrik": ("Henk",),
}


MIDDLE_NAMES_EN = _words(
    "James Marie Ann Lee Michael Elizabeth Rose Grace Lynn Edward Alexander Jane Louise "
    "Joseph William Anne Thomas Ray Mae Scott"
)

# --------------------------------------------------------------------------------------
# Companies and job titles
# --------------------------------------------------------------------------------------

COMPANY_HEADS = _words(
    "North Blue Bright Silver Red Green Iron Clear Swift Stone Sun Star Oak Maple River Lake "
    "Summit Cloud Data Quantum Nova Vertex Apex Pioneer Harbor Atlas Orion Zenith Evergreen "
    "Golden Crystal Polar Metro Urban Prime Alpine Coastal Falcon Eagle Fox Wolf Bear Lion "
    "Cedar Pine Willow Aurora Horizon Beacon Acme Globex Vector Lumen Helix Nimbus Copper"
)
COMPANY_TAILS = _words(
    "wind peak line field bridge gate works stone path point wave light forge craft logic "
    "scape ridge view way port tech soft lab mark sphere stack grid loop"
)
COMPANY_SECTORS = _words(
    "Analytics Systems Logistics Solutions Robotics Health Energy Capital Media Foods "
    "Software Consulting Labs Networks Manufacturing Pharma Retail Insurance Motors Design "
    "Studios Biotech Partners Group Ventures Mobility Security Cloud"
)

JOB_TITLES = tuple(
    _words(
        "Software Engineer|Senior Software Engineer|Engineering Manager|VP Engineering|CTO|CEO|"
        "COO|CFO|Head of Marketing|Marketing Manager|Growth Marketer|Product Manager|"
        "Senior Product Manager|Director of Product|Data Scientist|Data Engineer|"
        "Account Executive|Sales Director|Sales Manager|Customer Success Manager|"
        "Operations Manager|HR Business Partner|Recruiter|Financial Analyst|Controller|"
        "Procurement Manager|UX Designer|Office Manager|IT Administrator|Solutions Architect|"
        "Consultant|Business Analyst|Project Manager|General Counsel|Head of Partnerships|"
        "Founder",
        "|",
    )
)
_SENIOR_PREFIXES = ("Senior ", "Lead ", "Principal ", "Head of ")


def family_name(rng: random.Random, country: str, names: list[str]) -> str:
    """A family name from ``names`` (a pool's family names); in Spain (``country == "ES"``)
    half the time two different ones, ``García López``."""
    family = rng.choice(names)
    if country == "ES" and rng.random() < 0.5:
        second = rng.choice(names)
        if second != family:
            family = f"{family} {second}"
    return family


def promoted_title(rng: random.Random, title: str | None) -> str:
    """A later job title for the same person (promotion or move)."""
    if title and not title.startswith(_SENIOR_PREFIXES) and rng.random() < 0.6:
        prefix = rng.choice(("Senior ", "Lead ", "Principal "))
        return prefix + title
    return rng.choice(JOB_TITLES)
