"""Ground-truth people and the lookup tables they are drawn from.

Everything here is hand-rolled (no Faker): name pools per locale, company name parts, street
and city tables per country, and phone numbering plans whose ranges were checked against
``phonenumbers.is_valid_number`` (mobile ranges in use, no drama/fictional ranges).

:class:`PeopleFactory` draws :class:`Person` objects from a ``random.Random``; nothing here
touches the global random state, so a seed fully determines the population.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------


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

_MIDDLE_EN = _words(
    "James Marie Ann Lee Michael Elizabeth Rose Grace Lynn Edward Alexander Jane Louise "
    "Joseph William Anne Thomas Ray Mae Scott"
)

# --------------------------------------------------------------------------------------
# Countries, addresses and numbering plans
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class City:
    name: str
    state: str | None
    postal: str  # prefix (or a full outward code for GB/CA), see _postal_code
    area_codes: tuple[str, ...]  # landline area codes, national significant digits


@dataclass(frozen=True, slots=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str
    region: str  # eu | uk | us | apac (idgraph.settings defaults)
    locales: tuple[str, ...]  # BCP 47 locales people there use
    name_pool: str
    timezone: str
    calling_code: str
    trunk: str  # national (trunk) prefix, "" when none
    weight: float  # share of the population
    cities: tuple[City, ...]
    streets: tuple[str, ...]
    legal_suffixes: tuple[str, ...]
    company_tlds: tuple[str, ...]
    personal_domains: tuple[tuple[str, int], ...]  # (domain, weight)


def _cities(*rows: tuple) -> tuple[City, ...]:
    return tuple(City(r[0], r[1], r[2], tuple(r[3])) for r in rows)


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in [
        Country(
            "US",
            "United States",
            "us",
            ("en-US", "es-US"),
            "en",
            "America/New_York",
            "1",
            "",
            0.27,
            _cities(
                ("New York", "NY", "100", ["212", "646", "917"]),
                ("Brooklyn", "NY", "112", ["718", "347"]),
                ("San Francisco", "CA", "941", ["415", "628"]),
                ("Los Angeles", "CA", "900", ["213", "310", "323"]),
                ("Seattle", "WA", "981", ["206"]),
                ("Chicago", "IL", "606", ["312", "773"]),
                ("Boston", "MA", "021", ["617", "857"]),
                ("Austin", "TX", "787", ["512", "737"]),
                ("Denver", "CO", "802", ["303", "720"]),
                ("Atlanta", "GA", "303", ["404", "470"]),
                ("Miami", "FL", "331", ["305", "786"]),
                ("Portland", "OR", "972", ["503", "971"]),
            ),
            (
                "Main St",
                "Oak Ave",
                "Maple St",
                "Cedar Ln",
                "Pine St",
                "Elm St",
                "Washington Ave",
                "Park Ave",
                "Market St",
                "Lake St",
                "Hill Rd",
                "Sunset Blvd",
                "Broadway",
                "1st Ave",
                "2nd St",
                "Mission St",
                "Madison Ave",
                "Highland Dr",
                "Lincoln Way",
                "Jefferson St",
            ),
            ("Inc.", "LLC", "Corp.", "Inc"),
            (".com", ".com", ".io", ".co"),
            (
                ("gmail.com", 50),
                ("yahoo.com", 14),
                ("outlook.com", 9),
                ("hotmail.com", 8),
                ("icloud.com", 12),
                ("aol.com", 3),
            ),
        ),
        Country(
            "CA",
            "Canada",
            "us",
            ("en-CA", "fr-CA"),
            "en",
            "America/Toronto",
            "1",
            "",
            0.06,
            _cities(
                ("Toronto", "ON", "M5V", ["416", "647"]),
                ("Vancouver", "BC", "V6B", ["604", "778"]),
                ("Montréal", "QC", "H2X", ["514", "438"]),
                ("Calgary", "AB", "T2P", ["403", "587"]),
                ("Ottawa", "ON", "K1P", ["613", "343"]),
            ),
            (
                "King St W",
                "Queen St E",
                "Yonge St",
                "Bay St",
                "Robson St",
                "Granville St",
                "Rue Sainte-Catherine",
                "Boulevard Saint-Laurent",
                "Bank St",
                "Elgin St",
                "Stephen Ave",
                "Bloor St W",
            ),
            ("Inc.", "Ltd.", "Corp."),
            (".ca", ".com"),
            (
                ("gmail.com", 45),
                ("hotmail.com", 15),
                ("outlook.com", 10),
                ("yahoo.ca", 10),
                ("icloud.com", 10),
                ("shaw.ca", 4),
            ),
        ),
        Country(
            "GB",
            "United Kingdom",
            "uk",
            ("en-GB",),
            "en",
            "Europe/London",
            "44",
            "0",
            0.12,
            _cities(
                ("London", "Greater London", "EC1A", ["20"]),
                ("London", "Greater London", "SW1A", ["20"]),
                ("London", "Greater London", "N1", ["20"]),
                ("Manchester", "Greater Manchester", "M1", []),
                ("Birmingham", "West Midlands", "B1", []),
                ("Leeds", "West Yorkshire", "LS1", []),
                ("Bristol", None, "BS1", []),
                ("Edinburgh", "Scotland", "EH1", []),
                ("Glasgow", "Scotland", "G1", []),
            ),
            (
                "High Street",
                "Station Road",
                "Church Lane",
                "Victoria Road",
                "Park Road",
                "Green Lane",
                "Queen's Road",
                "King Street",
                "London Road",
                "Mill Lane",
                "The Crescent",
                "Oxford Street",
                "Baker Street",
                "Deansgate",
            ),
            ("Ltd", "Limited", "PLC", "Ltd."),
            (".co.uk", ".com", ".io", ".uk"),
            (
                ("gmail.com", 40),
                ("outlook.com", 10),
                ("hotmail.co.uk", 14),
                ("yahoo.co.uk", 8),
                ("btinternet.com", 7),
                ("icloud.com", 10),
                ("sky.com", 3),
            ),
        ),
        Country(
            "DE",
            "Germany",
            "eu",
            ("de-DE",),
            "de",
            "Europe/Berlin",
            "49",
            "0",
            0.14,
            _cities(
                ("Berlin", "Berlin", "10", ["30"]),
                ("München", "Bayern", "80", ["89"]),
                ("Hamburg", "Hamburg", "20", ["40"]),
                ("Köln", "Nordrhein-Westfalen", "50", ["221"]),
                ("Frankfurt am Main", "Hessen", "60", ["69"]),
                ("Stuttgart", "Baden-Württemberg", "70", ["711"]),
                ("Düsseldorf", "Nordrhein-Westfalen", "40", ["211"]),
                ("Leipzig", "Sachsen", "04", ["341"]),
            ),
            (
                "Hauptstraße",
                "Bahnhofstraße",
                "Gartenstraße",
                "Schillerstraße",
                "Goethestraße",
                "Friedrichstraße",
                "Lindenstraße",
                "Berliner Allee",
                "Kastanienallee",
                "Am Markt",
                "Schulstraße",
                "Ringstraße",
                "Mozartstraße",
                "Kirchweg",
                "Torstraße",
            ),
            ("GmbH", "AG", "GmbH & Co. KG", "SE"),
            (".de", ".de", ".com", ".io"),
            (
                ("gmail.com", 30),
                ("web.de", 20),
                ("gmx.de", 18),
                ("t-online.de", 8),
                ("outlook.de", 5),
                ("icloud.com", 6),
                ("posteo.de", 2),
            ),
        ),
        Country(
            "FR",
            "France",
            "eu",
            ("fr-FR",),
            "fr",
            "Europe/Paris",
            "33",
            "0",
            0.09,
            _cities(
                ("Paris", "Île-de-France", "750", ["1"]),
                ("Lyon", "Auvergne-Rhône-Alpes", "6900", ["4"]),
                ("Marseille", "Provence-Alpes-Côte d'Azur", "130", ["4"]),
                ("Toulouse", "Occitanie", "310", ["5"]),
                ("Bordeaux", "Nouvelle-Aquitaine", "330", ["5"]),
                ("Lille", "Hauts-de-France", "590", ["3"]),
                ("Nantes", "Pays de la Loire", "440", ["2"]),
            ),
            (
                "rue de la République",
                "rue Victor Hugo",
                "avenue des Champs-Élysées",
                "boulevard Saint-Germain",
                "rue du Faubourg Saint-Honoré",
                "place Bellecour",
                "rue de Rivoli",
                "rue Lafayette",
                "avenue Jean Jaurès",
                "rue Nationale",
                "boulevard Haussmann",
                "rue Pasteur",
            ),
            ("SAS", "SA", "SARL"),
            (".fr", ".com", ".io"),
            (
                ("gmail.com", 35),
                ("orange.fr", 16),
                ("free.fr", 10),
                ("laposte.net", 7),
                ("hotmail.fr", 10),
                ("outlook.fr", 5),
                ("yahoo.fr", 5),
                ("sfr.fr", 4),
            ),
        ),
        Country(
            "ES",
            "Spain",
            "eu",
            ("es-ES", "ca-ES"),
            "es",
            "Europe/Madrid",
            "34",
            "",
            0.06,
            _cities(
                ("Madrid", "Madrid", "280", ["91"]),
                ("Barcelona", "Cataluña", "080", ["93"]),
                ("Valencia", "Comunidad Valenciana", "460", ["96"]),
                ("Sevilla", "Andalucía", "410", ["95"]),
                ("Bilbao", "País Vasco", "480", ["94"]),
                ("Málaga", "Andalucía", "290", ["95"]),
            ),
            (
                "Calle Mayor",
                "Gran Vía",
                "Paseo de la Castellana",
                "Calle de Alcalá",
                "Avinguda Diagonal",
                "Carrer de Balmes",
                "Calle Serrano",
                "Avenida de la Constitución",
                "Calle Larios",
                "Plaza Mayor",
                "Calle Colón",
            ),
            ("S.L.", "S.A.", "SL"),
            (".es", ".com"),
            (
                ("gmail.com", 45),
                ("hotmail.com", 15),
                ("hotmail.es", 10),
                ("yahoo.es", 7),
                ("outlook.es", 6),
                ("telefonica.net", 3),
            ),
        ),
        Country(
            "NL",
            "Netherlands",
            "eu",
            ("nl-NL",),
            "nl",
            "Europe/Amsterdam",
            "31",
            "0",
            0.06,
            _cities(
                ("Amsterdam", "Noord-Holland", "10", ["20"]),
                ("Rotterdam", "Zuid-Holland", "30", ["10"]),
                ("Utrecht", "Utrecht", "35", ["30"]),
                ("Den Haag", "Zuid-Holland", "25", ["70"]),
                ("Eindhoven", "Noord-Brabant", "56", ["40"]),
            ),
            (
                "Keizersgracht",
                "Prinsengracht",
                "Herengracht",
                "Damrak",
                "Kalverstraat",
                "Coolsingel",
                "Oudegracht",
                "Stationsplein",
                "Kerkstraat",
                "Dorpsstraat",
                "Lange Voorhout",
                "Stratumseind",
            ),
            ("B.V.", "N.V.", "BV"),
            (".nl", ".com", ".io"),
            (
                ("gmail.com", 40),
                ("hotmail.com", 15),
                ("outlook.com", 10),
                ("ziggo.nl", 8),
                ("kpnmail.nl", 6),
                ("live.nl", 4),
                ("icloud.com", 6),
            ),
        ),
        Country(
            "JP",
            "Japan",
            "apac",
            ("ja-JP",),
            "ja",
            "Asia/Tokyo",
            "81",
            "0",
            0.08,
            _cities(
                ("Tokyo", "Tokyo", "1", ["3"]),
                ("Osaka", "Osaka", "5", ["6"]),
                ("Yokohama", "Kanagawa", "2", ["45"]),
                ("Nagoya", "Aichi", "4", ["52"]),
                ("Fukuoka", "Fukuoka", "8", ["92"]),
            ),
            (
                "Shibuya",
                "Shinjuku",
                "Minato",
                "Chiyoda",
                "Meguro",
                "Naka",
                "Kita",
                "Chuo",
                "Nishi",
                "Higashi",
            ),
            ("K.K.", "Co., Ltd.", "Inc."),
            (".co.jp", ".jp", ".com"),
            (
                ("gmail.com", 35),
                ("yahoo.co.jp", 25),
                ("icloud.com", 15),
                ("docomo.ne.jp", 8),
                ("outlook.jp", 5),
            ),
        ),
        Country(
            "AU",
            "Australia",
            "apac",
            ("en-AU",),
            "en",
            "Australia/Sydney",
            "61",
            "0",
            0.08,
            _cities(
                ("Sydney", "NSW", "2000", ["2"]),
                ("Melbourne", "VIC", "3000", ["3"]),
                ("Brisbane", "QLD", "4000", ["7"]),
                ("Perth", "WA", "6000", ["8"]),
                ("Adelaide", "SA", "5000", ["8"]),
            ),
            (
                "George St",
                "Collins St",
                "Queen St",
                "Pitt St",
                "Bourke St",
                "Elizabeth St",
                "Hay St",
                "King William St",
                "Flinders St",
                "Chapel St",
                "Oxford St",
            ),
            ("Pty Ltd", "Pty. Ltd.", "Ltd"),
            (".com.au", ".com", ".io"),
            (
                ("gmail.com", 40),
                ("bigpond.com", 10),
                ("outlook.com", 10),
                ("hotmail.com", 10),
                ("icloud.com", 12),
                ("optusnet.com.au", 4),
            ),
        ),
        Country(
            "SG",
            "Singapore",
            "apac",
            ("en-SG", "zh-SG"),
            "sg",
            "Asia/Singapore",
            "65",
            "",
            0.04,
            _cities(
                ("Singapore", None, "", []),
            ),
            (
                "Orchard Road",
                "Raffles Place",
                "Marina Boulevard",
                "Ang Mo Kio Avenue 3",
                "Tampines Street 21",
                "Jurong West Street 42",
                "Bukit Timah Road",
                "Shenton Way",
                "Robinson Road",
                "Clementi Avenue 2",
            ),
            ("Pte. Ltd.", "Pte Ltd", "Ltd"),
            (".com.sg", ".sg", ".com"),
            (
                ("gmail.com", 45),
                ("yahoo.com.sg", 12),
                ("hotmail.com", 12),
                ("singnet.com.sg", 5),
                ("icloud.com", 10),
                ("outlook.com", 6),
            ),
        ),
    ]
}

COUNTRY_CODES = tuple(COUNTRIES)
COUNTRY_WEIGHTS = tuple(c.weight for c in COUNTRIES.values())
COUNTRY_CUM_WEIGHTS = tuple(sum(COUNTRY_WEIGHTS[: i + 1]) for i in range(len(COUNTRY_WEIGHTS)))

#: Personal-mail domains treated specially by the default normaliser settings.
DOT_INSENSITIVE_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
PLUS_TAG_DOMAINS = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "icloud.com", "fastmail.com"}
)

# Mobile ranges: (leading digits choices, number of further digits). Each leading string was
# checked to yield only valid numbers (phonenumbers 9.x) for any further digits.
# GB: 074-079 except 0770 (07700 900xxx is reserved for drama) and 0791 (contains 07911).
_GB_MOBILE_LEADS = tuple(
    f"7{a}{b}" for a in "45789" for b in "0123456789" if f"7{a}{b}" not in ("770", "791")
)
LANDLINE_COUNTRIES = frozenset({"DE", "FR", "JP"})

MOBILE_PLANS: dict[str, tuple[tuple[str, ...], int, tuple[int, ...]]] = {
    # country: (leading digits, further digits, display grouping of the national number)
    "US": ((), 0, (3, 3, 4)),  # built from city area codes, see Phone generation
    "CA": ((), 0, (3, 3, 4)),
    "GB": (_GB_MOBILE_LEADS, 7, (4, 6)),
    "DE": (
        (
            "151",
            "152",
            "157",
            "159",
            "160",
            "162",
            "170",
            "171",
            "172",
            "173",
            "175",
            "176",
            "177",
            "178",
            "179",
        ),
        8,
        (3, 8),
    ),
    "FR": (
        ("60", "61", "62", "64", "65", "66", "67", "68", "73", "74", "75", "76", "77", "78"),
        7,
        (1, 2, 2, 2, 2),
    ),
    "ES": (("60", "61", "62", "63", "64", "65", "66", "67", "68", "69", "71", "72"), 7, (3, 3, 3)),
    "NL": (("61", "62", "63", "64", "65"), 7, (1, 8)),
    "JP": (
        (
            "901",
            "902",
            "903",
            "905",
            "906",
            "907",
            "908",
            "909",
            "801",
            "802",
            "803",
            "804",
            "805",
            "806",
            "807",
            "808",
            "809",
            "701",
            "702",
            "703",
        ),
        7,
        (2, 4, 4),
    ),
    "AU": (("40", "41", "42", "43", "46"), 7, (3, 3, 3)),
    "SG": (
        (
            "81",
            "82",
            "83",
            "84",
            "85",
            "86",
            "87",
            "88",
            "89",
            "90",
            "91",
            "92",
            "93",
            "94",
            "95",
            "96",
            "97",
            "98",
        ),
        6,
        (4, 4),
    ),
}

_US_EXCLUDED_EXCHANGES = frozenset({"555", "211", "311", "411", "511", "611", "711", "811", "911"})


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number in a country's numbering plan (always valid)."""

    country: str
    nsn: str  # national significant number
    groups: tuple[int, ...]  # how the national number is displayed
    mobile: bool = True

    @property
    def calling_code(self) -> str:
        return COUNTRIES[self.country].calling_code

    @property
    def e164(self) -> str:
        return f"+{self.calling_code}{self.nsn}"

    def _parts(self) -> list[str]:
        out, i = [], 0
        for g in self.groups:
            out.append(self.nsn[i : i + g])
            i += g
        if i < len(self.nsn):
            out[-1] += self.nsn[i:]
        return out

    def format(self, style: str) -> str:
        """Render in one of :data:`PHONE_STYLES` (the ways CRM users type numbers)."""
        parts = self._parts()
        cc = self.calling_code
        trunk = COUNTRIES[self.country].trunk
        if style == "e164":
            return self.e164
        if style == "intl":
            return f"+{cc} " + " ".join(parts)
        if style == "intl_dash":
            return f"+{cc}-" + "-".join(parts)
        if style == "intl_trunk" and trunk:
            return f"+{cc} ({trunk})" + " ".join(parts)
        if style == "national_compact":
            return (trunk if trunk else "") + self.nsn
        if style == "national_dash":
            return trunk + "-".join(parts) if trunk else "-".join(parts)
        if style == "national_dot" and cc == "1":
            return ".".join(parts)
        # national, the country's usual display
        if cc == "1":
            return f"({parts[0]}) {parts[1]}-{parts[2]}"
        if self.country == "JP":
            return trunk + "-".join(parts)
        return trunk + " ".join(parts) if trunk else " ".join(parts)


#: Styles that need the record's country to be known when parsed.
NATIONAL_STYLES = ("national", "national_dash", "national_compact", "national_dot")
INTERNATIONAL_STYLES = ("e164", "intl", "intl_dash", "intl_trunk")

# --------------------------------------------------------------------------------------
# Companies, titles, devices
# --------------------------------------------------------------------------------------

_COMPANY_HEADS = _words(
    "North Blue Bright Silver Red Green Iron Clear Swift Stone Sun Star Oak Maple River Lake "
    "Summit Cloud Data Quantum Nova Vertex Apex Pioneer Harbor Atlas Orion Zenith Evergreen "
    "Golden Crystal Polar Metro Urban Prime Alpine Coastal Falcon Eagle Fox Wolf Bear Lion "
    "Cedar Pine Willow Aurora Horizon Beacon Acme Globex Vector Lumen Helix Nimbus Copper"
)
_COMPANY_TAILS = _words(
    "wind peak line field bridge gate works stone path point wave light forge craft logic "
    "scape ridge view way port tech soft lab mark sphere stack grid loop"
)
_COMPANY_SECTORS = _words(
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
_SENIOR_PREFIX = ("Senior ", "Lead ", "Principal ", "Head of ")

IOS_MODELS = (
    ("Apple", "iPhone15,2", False),
    ("Apple", "iPhone14,5", False),
    ("Apple", "iPhone16,1", False),
    ("Apple", "iPhone13,2", False),
    ("Apple", "iPad13,18", True),
    ("Apple", "iPad14,1", True),
)
ANDROID_MODELS = (
    ("samsung", "SM-S911B", False),
    ("samsung", "SM-A546B", False),
    ("Google", "Pixel 8", False),
    ("Google", "Pixel 7a", False),
    ("Xiaomi", "23049PCD8G", False),
    ("OnePlus", "CPH2449", False),
    ("samsung", "SM-X710", True),
)
IOS_VERSIONS = ("16.7.8", "17.4.1", "17.5.1", "17.6", "18.0.1")
ANDROID_VERSIONS = ("12", "13", "14")

# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Company:
    name: str  # canonical display name without legal suffix, e.g. "Bluepeak Analytics"
    short: str  # the brand people also write, e.g. "Bluepeak"
    legal_suffix: str  # e.g. "GmbH"
    domain: str  # e.g. "bluepeak-analytics.de"
    country: str
    employees: list[str] = field(default_factory=list)  # person ids

    @property
    def legal_name(self) -> str:
        sep = ", " if self.legal_suffix in ("Inc.", "Ltd.", "LLC") and self.country == "US" else " "
        return f"{self.name}{sep}{self.legal_suffix}"


@dataclass(slots=True, eq=False)
class Device:
    """A phone/tablet app install or a web browser (cookie)."""

    kind: str  # "ios" | "android" | "web"
    anonymous_id: str  # Segment anonymousId (per install / per browser cookie)
    owner: str  # person id of the first household member to log in on it
    device_id: str | None = None  # IDFV / Android ID; None for web
    advertising_id: str | None = None  # IDFA / GAID when tracking is allowed
    ad_tracking: bool = False
    manufacturer: str | None = None
    model: str | None = None
    os_version: str | None = None
    tablet: bool = False
    ip: str = ""
    zero_idfa: bool = False  # sends the all-zero IDFA placeholder (junk, not an identifier)
    shared_with: list[str] = field(default_factory=list)  # other household members using it


@dataclass(slots=True, eq=False)
class Person:
    """One real human: the ground truth every generated record belongs to."""

    person_id: str
    given_name: str
    middle_name: str | None
    family_name: str
    gender: str  # "f" | "m"
    birth_date: date
    country: str
    locale: str
    timezone: str
    street: str
    city: str
    state: str | None
    postal_code: str
    company: Company | None
    job_title: str | None
    emails: list[str]  # first is the primary; canonical (lower-case) form
    work_email: str | None
    phones: list[Phone]
    devices: list[Device] = field(default_factory=list)
    user_id: str | None = None  # app account ID (Segment userId); None: never signs up
    app_email: str | None = None  # the email used to sign up in the app
    household_id: str | None = None
    nickname: str | None = None

    @property
    def region(self) -> str:
        return COUNTRIES[self.country].region

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def personal_emails(self) -> list[str]:
        return [e for e in self.emails if e != self.work_email]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

_GERMAN_FOLD = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)
_SLUG_CACHE: dict[tuple[str, bool], str] = {}


def slug(text: str, german: bool = False) -> str:
    """ASCII letters/digits of ``text`` in lower case ("Müller" -> "muller"/"mueller")."""
    key = (text, german)
    out = _SLUG_CACHE.get(key)
    if out is None:
        t = text.translate(_GERMAN_FOLD) if german else text.replace("ß", "ss")
        t = unicodedata.normalize("NFKD", t)
        out = "".join(ch for ch in t.lower() if ch.isascii() and ch.isalnum())
        _SLUG_CACHE[key] = out
    return out


def canonical_email(raw: str) -> str:
    """The normalised form under the default settings (what record keys use).

    Mirrors ``resolver.normalize.Normalizer.email`` with default settings: trim, lower-case,
    ``googlemail.com`` -> ``gmail.com``, drop ``+tag`` on plus-tag domains and dots on
    Gmail. Used only when no normaliser is passed to :func:`idgraph.generator.generate`.
    """
    e = raw.strip().lower()
    local, _, domain = e.rpartition("@")
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain in PLUS_TAG_DOMAINS and "+" in local:
        local = local.split("+", 1)[0]
    if domain in DOT_INSENSITIVE_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def weighted_table(pairs: tuple[tuple[str, int], ...]) -> list[str]:
    """Expand (value, weight) pairs into a list for ``rng.choice``."""
    out: list[str] = []
    for value, weight in pairs:
        out.extend([value] * weight)
    return out


_PERSONAL_TABLES = {c.code: weighted_table(c.personal_domains) for c in COUNTRIES.values()}


def hex_id(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def uuid4_str(rng: random.Random, upper: bool = False) -> str:
    """An RFC 4122 version-4 UUID drawn from ``rng`` (deterministic, unlike uuid.uuid4)."""
    v = rng.getrandbits(128)
    v = (v & ~(0xF << 76)) | (0x4 << 76)  # version 4
    v = (v & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    h = f"{v:032x}"
    s = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return s.upper() if upper else s


# --------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------


class EmailRegistry:
    """Canonical email -> owner, so no two people ever share a mailbox."""

    def __init__(self, canon=canonical_email) -> None:
        self.owner: dict[str, str] = {}
        self.canon = canon

    def claim(self, email: str, person_id: str) -> bool:
        key = self.canon(email)
        cur = self.owner.get(key)
        if cur is None:
            self.owner[key] = person_id
            return True
        return cur == person_id


class PeopleFactory:
    """Draws companies and people from one ``random.Random``."""

    def __init__(self, rng: random.Random, registry: EmailRegistry | None = None) -> None:
        self.rng = rng
        self.registry = registry or EmailRegistry()
        self.companies: list[Company] = []
        self._company_names: set[str] = set()
        self._domains: set[str] = set()
        self._households: dict[str, list[Person]] = {}
        self._by_country: dict[str, list[Company]] = {}
        self._phones: set[str] = set()
        self._suffix: dict[tuple[str, str], int] = {}

    # ---- companies -------------------------------------------------------------------

    def make_companies(self, n: int) -> list[Company]:
        rng = self.rng
        for _ in range(n):
            country = COUNTRIES[rng.choices(COUNTRY_CODES, cum_weights=COUNTRY_CUM_WEIGHTS)[0]]
            for _attempt in range(50):
                head = rng.choice(_COMPANY_HEADS)
                tail = rng.choice(_COMPANY_TAILS)
                brand = head + tail
                name = f"{brand} {rng.choice(_COMPANY_SECTORS)}" if rng.random() < 0.6 else brand
                if name not in self._company_names:
                    break
            else:
                name = f"{name} {len(self.companies)}"
            self._company_names.add(name)
            base = slug(name)
            if " " in name and rng.random() < 0.5:
                base = "-".join(slug(w) for w in name.split())
            tld = rng.choice(country.company_tlds)
            domain = base + tld
            k = 2
            while domain in self._domains:
                domain = f"{base}{k}{tld}"
                k += 1
            self._domains.add(domain)
            c = Company(
                name=name,
                short=brand,
                legal_suffix=rng.choice(country.legal_suffixes),
                domain=domain,
                country=country.code,
            )
            self.companies.append(c)
            self._by_country.setdefault(country.code, []).append(c)
        return self.companies

    # ---- phones ----------------------------------------------------------------------

    def phone(self, country: str, city: City | None = None, mobile: bool = True) -> Phone:
        rng = self.rng
        while True:
            if country in ("US", "CA"):
                areas = city.area_codes if city and city.area_codes else ("212", "415", "312")
                area = rng.choice(areas)
                while True:
                    ex = f"{rng.randrange(200, 1000)}"
                    if ex not in _US_EXCLUDED_EXCHANGES and ex[1:] != "11":
                        break
                nsn = f"{area}{ex}{rng.randrange(10000):04d}"
                p = Phone(country, nsn, (3, 3, 4), mobile)
            elif not mobile and city and city.area_codes and country in LANDLINE_COUNTRIES:
                area = rng.choice(city.area_codes)
                total = {"DE": 10 + rng.randrange(2), "FR": 9, "JP": 9}[country]
                rest = total - len(area) - 1
                # FR 059x/026x are overseas departments: keep the first subscriber digit low
                nsn = (
                    area
                    + rng.choice("1234" if country == "FR" else "2345678")
                    + f"{rng.randrange(10**rest):0{rest}d}"
                )
                if country == "FR":
                    groups = (1, 2, 2, 2, 2)
                elif country == "JP":
                    groups = (1, 4, 4) if len(area) == 1 else (len(area), 3, 4)
                else:
                    groups = (len(area), total - len(area))
                p = Phone(country, nsn, groups, False)
            else:
                leads, further, groups = MOBILE_PLANS[country]
                nsn = rng.choice(leads) + f"{rng.randrange(10**further):0{further}d}"
                p = Phone(country, nsn, groups, True)
            if p.nsn not in self._phones:
                self._phones.add(p.nsn)
                return p

    # ---- people ----------------------------------------------------------------------

    def _pick_company(self, country: str) -> Company:
        rng = self.rng
        local = self._by_country.get(country)
        if local and rng.random() < 0.85:
            return rng.choice(local)
        return rng.choice(self.companies)

    def _email_local(
        self, given: str, family: str, german: bool, personal: bool, birth_year: int
    ) -> str:
        rng = self.rng
        f = slug(given.split()[0], german)
        fam = family.split()[-1] if " " in family and not family[0].islower() else family
        if family.split()[0] in ("van", "de", "van der", "van den"):
            fam = family  # Dutch: "dejong", "vandenberg"
        if " " in family and family.split()[0][0].isupper():
            fam = family.split()[0]  # Spanish double surname: first one
        la = slug(fam, german) or "x"
        f = f or "x"
        if not personal:
            pattern = rng.random()
            if pattern < 0.55:
                return f"{f}.{la}"
            if pattern < 0.75:
                return f"{f[0]}{la}"
            if pattern < 0.85:
                return f"{f}"
            if pattern < 0.93:
                return f"{f}{la}"
            return f"{f}_{la}"
        pattern = rng.random()
        yy = f"{birth_year % 100:02d}"
        if pattern < 0.3:
            return f"{f}.{la}"
        if pattern < 0.45:
            return f"{f}{la}"
        if pattern < 0.6:
            return f"{f}.{la}{yy}"
        if pattern < 0.72:
            return f"{f}{la}{rng.randrange(1, 100)}"
        if pattern < 0.8:
            return f"{f[0]}{la}{rng.randrange(1, 1000)}"
        if pattern < 0.88:
            return f"{la}.{f}"
        if pattern < 0.94:
            return f"{f}_{la}{birth_year}"
        return f"{f}{rng.choice(('', '.', '_'))}{rng.choice(('music', 'runner', 'travel', 'dev', 'photo', 'chef'))}{rng.randrange(1, 100)}"

    def _unique_email(self, local: str, domain: str, person_id: str) -> str:
        email = f"{local}@{domain}"
        if self.registry.claim(email, person_id):
            return email
        base = (local, domain)
        k = self._suffix.get(base, 2)
        while True:
            email = f"{local}{k}@{domain}"
            k += 1
            if self.registry.claim(email, person_id):
                self._suffix[base] = k
                return email

    def make_person(
        self, index: int, *, household_rate: float = 0.15, prior: list[Person] | None = None
    ) -> Person:
        rng = self.rng
        pid = f"person-{index:07d}"
        head: Person | None = None
        if prior and rng.random() < household_rate:
            cand = prior[rng.randrange(len(prior))]
            hid = cand.household_id or f"household-{cand.person_id[7:]}"
            members = self._households.setdefault(hid, [cand])
            if len(members) < 4:
                head = cand
                cand.household_id = hid
        if head is not None:
            cc = COUNTRIES[head.country]
        else:
            cc = COUNTRIES[rng.choices(COUNTRY_CODES, cum_weights=COUNTRY_CUM_WEIGHTS)[0]]
        male, female, fam = NAME_POOLS[cc.name_pool]
        gender = "f" if rng.random() < 0.5 else "m"
        given = rng.choice(female if gender == "f" else male)
        if head is not None and rng.random() < 0.75:
            family = head.family_name
        else:
            family = rng.choice(fam)
            if cc.code == "ES" and rng.random() < 0.5:
                second = rng.choice(fam)
                if second != family:
                    family = f"{family} {second}"
        middle = None
        if cc.name_pool == "en" and rng.random() < 0.35:
            middle = rng.choice(_MIDDLE_EN)
        elif cc.name_pool in ("de", "fr") and rng.random() < 0.12:
            middle = rng.choice(female if gender == "f" else male)
            if middle == given:
                middle = None
        age_days = rng.randrange(19 * 365, 72 * 365)
        birth = date(2024, 1, 1) - timedelta(days=age_days)
        locale = (
            cc.locales[0] if len(cc.locales) == 1 or rng.random() < 0.8 else rng.choice(cc.locales)
        )

        if head is not None:
            street, city_name, state, postal = head.street, head.city, head.state, head.postal_code
            city = next((c for c in cc.cities if c.name == city_name), cc.cities[0])
        else:
            city = rng.choice(cc.cities)
            street = _street(rng, cc, city)
            city_name, state, postal = city.name, city.state, _postal_code(rng, cc, city)

        german = cc.code == "DE"
        employed = rng.random() < 0.85
        company = self._pick_company(cc.code) if employed else None
        title = rng.choice(JOB_TITLES) if company else None
        emails: list[str] = []
        work = None
        if company is not None:
            local = self._email_local(given, family, german, False, birth.year)
            work = self._unique_email(local, company.domain, pid)
            emails.append(work)
            company.employees.append(pid)
        n_personal = 1 if rng.random() < 0.75 else 2
        if company is not None and rng.random() < 0.2:
            n_personal = 0  # only a work address
        if not emails and n_personal == 0:
            n_personal = 1
        table = _PERSONAL_TABLES[cc.code]
        used_domains: set[str] = set()
        for _ in range(n_personal):
            domain = rng.choice(table)
            if domain in used_domains:
                domain = "gmail.com" if "gmail.com" not in used_domains else "outlook.com"
            used_domains.add(domain)
            local = self._email_local(given, family, german, True, birth.year)
            emails.append(self._unique_email(local, domain, pid))
        if company is None or rng.random() < 0.4:
            # personal address first for people who mostly use it
            emails.sort(key=lambda e: e == work)

        phones: list[Phone] = []
        r = rng.random()
        n_phones = 0 if r < 0.15 else (1 if r < 0.75 else 2)
        for k in range(n_phones):
            phones.append(
                self.phone(cc.code, city, mobile=(k == 0 or cc.code not in LANDLINE_COUNTRIES))
            )

        nickname = None
        nicks = NICKNAMES.get(given)
        if nicks:
            nickname = rng.choice(nicks)

        person = Person(
            person_id=pid,
            given_name=given,
            middle_name=middle,
            family_name=family,
            gender=gender,
            birth_date=birth,
            country=cc.code,
            locale=locale,
            timezone=cc.timezone,
            street=street,
            city=city_name,
            state=state,
            postal_code=postal,
            company=company,
            job_title=title,
            emails=emails,
            work_email=work,
            phones=phones,
            nickname=nickname,
        )
        if head is not None:
            person.household_id = head.household_id
            self._households[head.household_id].append(person)
        self._make_devices(person)
        return person

    def _make_devices(self, person: Person) -> None:
        rng = self.rng
        r = rng.random()
        n = 0 if r < 0.18 else (1 if r < 0.62 else (2 if r < 0.9 else 3))
        ios_share = 0.65 if person.country in ("JP", "US", "AU", "GB") else 0.4
        for _ in range(n):
            r = rng.random()
            if r < 0.38:
                kind = "web"
            elif r < 0.38 + 0.62 * ios_share:
                kind = "ios"
            else:
                kind = "android"
            ip = _ip(rng)
            if kind == "web":
                d = Device(kind="web", anonymous_id=uuid4_str(rng), owner=person.person_id, ip=ip)
            elif kind == "ios":
                manufacturer, model, tablet = rng.choice(IOS_MODELS)
                tracking = rng.random() < 0.35
                d = Device(
                    kind="ios",
                    anonymous_id=uuid4_str(rng, upper=True),
                    owner=person.person_id,
                    device_id=uuid4_str(rng, upper=True),
                    advertising_id=uuid4_str(rng, upper=True) if tracking else None,
                    ad_tracking=tracking,
                    manufacturer=manufacturer,
                    model=model,
                    os_version=rng.choice(IOS_VERSIONS),
                    tablet=tablet,
                    ip=ip,
                )
            else:
                manufacturer, model, tablet = rng.choice(ANDROID_MODELS)
                tracking = rng.random() < 0.85
                d = Device(
                    kind="android",
                    anonymous_id=uuid4_str(rng),
                    owner=person.person_id,
                    device_id=hex_id(rng, 16),
                    advertising_id=uuid4_str(rng) if tracking else None,
                    ad_tracking=tracking,
                    manufacturer=manufacturer,
                    model=model,
                    os_version=rng.choice(ANDROID_VERSIONS),
                    tablet=tablet,
                    ip=ip,
                )
            person.devices.append(d)

    def households(self) -> dict[str, list[Person]]:
        return self._households


def _street(rng: random.Random, cc: Country, city: City) -> str:
    s = rng.choice(cc.streets)
    n = rng.randrange(1, 200)
    code = cc.code
    if code in ("US", "CA", "AU"):
        n = rng.randrange(1, 9999) if code == "US" else rng.randrange(1, 999)
        line = f"{n} {s}"
        if rng.random() < 0.2:
            line += rng.choice(
                (
                    f" Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}",
                    f" Suite {rng.randrange(1, 30) * 100}",
                    f" Unit {rng.randrange(1, 60)}",
                )
            )
        return line
    if code == "GB":
        return f"{n} {s}" if rng.random() < 0.8 else f"Flat {rng.randrange(1, 30)}, {n} {s}"
    if code == "FR":
        return f"{n} {s}" if rng.random() < 0.85 else f"{n} bis {s}"
    if code == "ES":
        return f"{s}, {n}" + (
            f", {rng.randrange(1, 9)}º {rng.choice('ABCD')}" if rng.random() < 0.6 else ""
        )
    if code == "JP":
        return f"{rng.randrange(1, 8)}-{rng.randrange(1, 30)}-{rng.randrange(1, 20)} {s}"
    if code == "SG":
        return f"{n} {s} #{rng.randrange(2, 40):02d}-{rng.randrange(1, 120):02d}"
    return f"{s} {n}" + (rng.choice(("", "", "a", "b")) if code in ("DE", "NL") else "")


_GB_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def _postal_code(rng: random.Random, cc: Country, city: City) -> str:
    code, p = cc.code, city.postal
    if code == "US":
        return f"{p}{rng.randrange(100):02d}"
    if code == "CA":
        return f"{p} {rng.randrange(10)}{rng.choice('ABCEGHJKLMNPRSTVWXYZ')}{rng.randrange(10)}"
    if code == "GB":
        return f"{p} {rng.randrange(10)}{rng.choice(_GB_INWARD_LETTERS)}{rng.choice(_GB_INWARD_LETTERS)}"
    if code == "DE":
        return f"{p}{rng.randrange(1000):03d}"
    if code == "FR":
        if len(p) == 3:
            return f"{p}{rng.randrange(1, 21):02d}"
        return f"{p}{rng.randrange(10)}"
    if code == "ES":
        return f"{p}{rng.randrange(1, 60):02d}"
    if code == "NL":
        letters = rng.choice("ABCEGHJKLMNPRTVWXZ") + rng.choice("ABCEGHJKLMNPRTVWXZ")
        return f"{p}{rng.randrange(10, 100)} {letters}"
    if code == "JP":
        return f"{p}{rng.randrange(10, 100)}-{rng.randrange(10000):04d}"
    if code == "AU":
        return f"{int(p) + rng.randrange(0, 200)}"
    if code == "SG":
        return f"{rng.choice(('01', '04', '23', '24', '31', '46', '56', '64', '23'))}{rng.randrange(10000):04d}"
    return p


def _ip(rng: random.Random) -> str:
    first = rng.choice(
        (24, 31, 46, 62, 73, 77, 81, 84, 87, 91, 98, 103, 109, 121, 151, 176, 185, 203)
    )
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def promoted_title(rng: random.Random, title: str | None) -> str:
    """A later job title for the same person (promotion or move)."""
    if title and not title.startswith(_SENIOR_PREFIX) and rng.random() < 0.6:
        prefix = rng.choice(("Senior ", "Lead ", "Principal "))
        return prefix + title
    return rng.choice(JOB_TITLES)
