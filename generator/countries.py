"""Countries people live in: cities, streets, company suffixes and mail domains.

Contract: plain data, no randomness. :data:`COUNTRIES` (ISO 3166-1 alpha-2 -> :class:`Country`)
is drawn from by weight through :data:`COUNTRY_CODES`/:data:`COUNTRY_CUM_WEIGHTS`, in the
table's order; :data:`PERSONAL_DOMAIN_TABLES` expands each country's personal-mail domains by
weight for ``rng.choice``. Regions are the ``idgraph.settings`` defaults (eu, uk, us, apac).
Every table is read by position, so reordering or editing an entry changes the population
drawn for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COUNTRIES",
    "COUNTRY_CODES",
    "COUNTRY_CUM_WEIGHTS",
    "COUNTRY_WEIGHTS",
    "PERSONAL_DOMAIN_TABLES",
    "City",
    "Country",
    "weighted_table",
]


@dataclass(frozen=True, slots=True)
class City:
    """A city people live in, with its postal prefix and landline area codes."""

    name: str
    state: str | None
    postal: str  # prefix (or a full outward code for GB/CA), see addresses.postal_code
    area_codes: tuple[str, ...]  # landline area codes, national significant digits


@dataclass(frozen=True, slots=True)
class Country:
    """A country's people, places, numbering, companies and mail domains."""

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
    """``(name, state, postal, [area codes])`` rows."""
    return tuple(City(r[0], r[1], r[2], tuple(r[3])) for r in rows)


def _streets(text: str) -> tuple[str, ...]:
    """Street names written as one ``|``-separated string."""
    return tuple(text.split("|"))


def _weights(text: str) -> tuple[tuple[str, int], ...]:
    """``"gmail.com:50 yahoo.com:14"`` -> ``(("gmail.com", 50), ("yahoo.com", 14))``."""
    return tuple((d, int(w)) for d, _, w in (pair.rpartition(":") for pair in text.split()))


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in [
        Country(
            code="US",
            name="United States",
            region="us",
            locales=("en-US", "es-US"),
            name_pool="en",
            timezone="America/New_York",
            calling_code="1",
            trunk="",
            weight=0.27,
            cities=_cities(
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
            streets=_streets(
                "Main St|Oak Ave|Maple St|Cedar Ln|Pine St|Elm St|Washington Ave|Park Ave|"
                "Market St|Lake St|Hill Rd|Sunset Blvd|Broadway|1st Ave|2nd St|Mission St|"
                "Madison Ave|Highland Dr|Lincoln Way|Jefferson St"
            ),
            legal_suffixes=("Inc.", "LLC", "Corp.", "Inc"),
            company_tlds=(".com", ".com", ".io", ".co"),
            personal_domains=_weights(
                "gmail.com:50 yahoo.com:14 outlook.com:9 hotmail.com:8 icloud.com:12 aol.com:3"
            ),
        ),
        Country(
            code="CA",
            name="Canada",
            region="us",
            locales=("en-CA", "fr-CA"),
            name_pool="en",
            timezone="America/Toronto",
            calling_code="1",
            trunk="",
            weight=0.06,
            cities=_cities(
                ("Toronto", "ON", "M5V", ["416", "647"]),
                ("Vancouver", "BC", "V6B", ["604", "778"]),
                ("Montréal", "QC", "H2X", ["514", "438"]),
                ("Calgary", "AB", "T2P", ["403", "587"]),
                ("Ottawa", "ON", "K1P", ["613", "343"]),
            ),
            streets=_streets(
                "King St W|Queen St E|Yonge St|Bay St|Robson St|Granville St|"
                "Rue Sainte-Catherine|Boulevard Saint-Laurent|Bank St|Elgin St|Stephen Ave|"
                "Bloor St W"
            ),
            legal_suffixes=("Inc.", "Ltd.", "Corp."),
            company_tlds=(".ca", ".com"),
            personal_domains=_weights(
                "gmail.com:45 hotmail.com:15 outlook.com:10 yahoo.ca:10 icloud.com:10 shaw.ca:4"
            ),
        ),
        Country(
            code="GB",
            name="United Kingdom",
            region="uk",
            locales=("en-GB",),
            name_pool="en",
            timezone="Europe/London",
            calling_code="44",
            trunk="0",
            weight=0.12,
            cities=_cities(
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
            streets=_streets(
                "High Street|Station Road|Church Lane|Victoria Road|Park Road|Green Lane|"
                "Queen's Road|King Street|London Road|Mill Lane|The Crescent|Oxford Street|"
                "Baker Street|Deansgate"
            ),
            legal_suffixes=("Ltd", "Limited", "PLC", "Ltd."),
            company_tlds=(".co.uk", ".com", ".io", ".uk"),
            personal_domains=_weights(
                "gmail.com:40 outlook.com:10 hotmail.co.uk:14 yahoo.co.uk:8 "
                "btinternet.com:7 icloud.com:10 sky.com:3"
            ),
        ),
        Country(
            code="DE",
            name="Germany",
            region="eu",
            locales=("de-DE",),
            name_pool="de",
            timezone="Europe/Berlin",
            calling_code="49",
            trunk="0",
            weight=0.14,
            cities=_cities(
                ("Berlin", "Berlin", "10", ["30"]),
                ("München", "Bayern", "80", ["89"]),
                ("Hamburg", "Hamburg", "20", ["40"]),
                ("Köln", "Nordrhein-Westfalen", "50", ["221"]),
                ("Frankfurt am Main", "Hessen", "60", ["69"]),
                ("Stuttgart", "Baden-Württemberg", "70", ["711"]),
                ("Düsseldorf", "Nordrhein-Westfalen", "40", ["211"]),
                ("Leipzig", "Sachsen", "04", ["341"]),
            ),
            streets=_streets(
                "Hauptstraße|Bahnhofstraße|Gartenstraße|Schillerstraße|Goethestraße|"
                "Friedrichstraße|Lindenstraße|Berliner Allee|Kastanienallee|Am Markt|"
                "Schulstraße|Ringstraße|Mozartstraße|Kirchweg|Torstraße"
            ),
            legal_suffixes=("GmbH", "AG", "GmbH & Co. KG", "SE"),
            company_tlds=(".de", ".de", ".com", ".io"),
            personal_domains=_weights(
                "gmail.com:30 web.de:20 gmx.de:18 t-online.de:8 "
                "outlook.de:5 icloud.com:6 posteo.de:2"
            ),
        ),
        Country(
            code="FR",
            name="France",
            region="eu",
            locales=("fr-FR",),
            name_pool="fr",
            timezone="Europe/Paris",
            calling_code="33",
            trunk="0",
            weight=0.09,
            cities=_cities(
                ("Paris", "Île-de-France", "750", ["1"]),
                ("Lyon", "Auvergne-Rhône-Alpes", "6900", ["4"]),
                ("Marseille", "Provence-Alpes-Côte d'Azur", "130", ["4"]),
                ("Toulouse", "Occitanie", "310", ["5"]),
                ("Bordeaux", "Nouvelle-Aquitaine", "330", ["5"]),
                ("Lille", "Hauts-de-France", "590", ["3"]),
                ("Nantes", "Pays de la Loire", "440", ["2"]),
            ),
            streets=_streets(
                "rue de la République|rue Victor Hugo|avenue des Champs-Élysées|"
                "boulevard Saint-Germain|rue du Faubourg Saint-Honoré|place Bellecour|"
                "rue de Rivoli|rue Lafayette|avenue Jean Jaurès|rue Nationale|"
                "boulevard Haussmann|rue Pasteur"
            ),
            legal_suffixes=("SAS", "SA", "SARL"),
            company_tlds=(".fr", ".com", ".io"),
            personal_domains=_weights(
                "gmail.com:35 orange.fr:16 free.fr:10 laposte.net:7 "
                "hotmail.fr:10 outlook.fr:5 yahoo.fr:5 sfr.fr:4"
            ),
        ),
        Country(
            code="ES",
            name="Spain",
            region="eu",
            locales=("es-ES", "ca-ES"),
            name_pool="es",
            timezone="Europe/Madrid",
            calling_code="34",
            trunk="",
            weight=0.06,
            cities=_cities(
                ("Madrid", "Madrid", "280", ["91"]),
                ("Barcelona", "Cataluña", "080", ["93"]),
                ("Valencia", "Comunidad Valenciana", "460", ["96"]),
                ("Sevilla", "Andalucía", "410", ["95"]),
                ("Bilbao", "País Vasco", "480", ["94"]),
                ("Málaga", "Andalucía", "290", ["95"]),
            ),
            streets=_streets(
                "Calle Mayor|Gran Vía|Paseo de la Castellana|Calle de Alcalá|"
                "Avinguda Diagonal|Carrer de Balmes|Calle Serrano|Avenida de la Constitución|"
                "Calle Larios|Plaza Mayor|Calle Colón"
            ),
            legal_suffixes=("S.L.", "S.A.", "SL"),
            company_tlds=(".es", ".com"),
            personal_domains=_weights(
                "gmail.com:45 hotmail.com:15 hotmail.es:10 yahoo.es:7 outlook.es:6 telefonica.net:3"
            ),
        ),
        Country(
            code="NL",
            name="Netherlands",
            region="eu",
            locales=("nl-NL",),
            name_pool="nl",
            timezone="Europe/Amsterdam",
            calling_code="31",
            trunk="0",
            weight=0.06,
            cities=_cities(
                ("Amsterdam", "Noord-Holland", "10", ["20"]),
                ("Rotterdam", "Zuid-Holland", "30", ["10"]),
                ("Utrecht", "Utrecht", "35", ["30"]),
                ("Den Haag", "Zuid-Holland", "25", ["70"]),
                ("Eindhoven", "Noord-Brabant", "56", ["40"]),
            ),
            streets=_streets(
                "Keizersgracht|Prinsengracht|Herengracht|Damrak|Kalverstraat|Coolsingel|"
                "Oudegracht|Stationsplein|Kerkstraat|Dorpsstraat|Lange Voorhout|Stratumseind"
            ),
            legal_suffixes=("B.V.", "N.V.", "BV"),
            company_tlds=(".nl", ".com", ".io"),
            personal_domains=_weights(
                "gmail.com:40 hotmail.com:15 outlook.com:10 ziggo.nl:8 "
                "kpnmail.nl:6 live.nl:4 icloud.com:6"
            ),
        ),
        Country(
            code="JP",
            name="Japan",
            region="apac",
            locales=("ja-JP",),
            name_pool="ja",
            timezone="Asia/Tokyo",
            calling_code="81",
            trunk="0",
            weight=0.08,
            cities=_cities(
                ("Tokyo", "Tokyo", "1", ["3"]),
                ("Osaka", "Osaka", "5", ["6"]),
                ("Yokohama", "Kanagawa", "2", ["45"]),
                ("Nagoya", "Aichi", "4", ["52"]),
                ("Fukuoka", "Fukuoka", "8", ["92"]),
            ),
            streets=_streets("Shibuya|Shinjuku|Minato|Chiyoda|Meguro|Naka|Kita|Chuo|Nishi|Higashi"),
            legal_suffixes=("K.K.", "Co., Ltd.", "Inc."),
            company_tlds=(".co.jp", ".jp", ".com"),
            personal_domains=_weights(
                "gmail.com:35 yahoo.co.jp:25 icloud.com:15 docomo.ne.jp:8 outlook.jp:5"
            ),
        ),
        Country(
            code="AU",
            name="Australia",
            region="apac",
            locales=("en-AU",),
            name_pool="en",
            timezone="Australia/Sydney",
            calling_code="61",
            trunk="0",
            weight=0.08,
            cities=_cities(
                ("Sydney", "NSW", "2000", ["2"]),
                ("Melbourne", "VIC", "3000", ["3"]),
                ("Brisbane", "QLD", "4000", ["7"]),
                ("Perth", "WA", "6000", ["8"]),
                ("Adelaide", "SA", "5000", ["8"]),
            ),
            streets=_streets(
                "George St|Collins St|Queen St|Pitt St|Bourke St|Elizabeth St|Hay St|"
                "King William St|Flinders St|Chapel St|Oxford St"
            ),
            legal_suffixes=("Pty Ltd", "Pty. Ltd.", "Ltd"),
            company_tlds=(".com.au", ".com", ".io"),
            personal_domains=_weights(
                "gmail.com:40 bigpond.com:10 outlook.com:10 "
                "hotmail.com:10 icloud.com:12 optusnet.com.au:4"
            ),
        ),
        Country(
            code="SG",
            name="Singapore",
            region="apac",
            locales=("en-SG", "zh-SG"),
            name_pool="sg",
            timezone="Asia/Singapore",
            calling_code="65",
            trunk="",
            weight=0.04,
            cities=_cities(
                ("Singapore", None, "", []),
            ),
            streets=_streets(
                "Orchard Road|Raffles Place|Marina Boulevard|Ang Mo Kio Avenue 3|"
                "Tampines Street 21|Jurong West Street 42|Bukit Timah Road|Shenton Way|"
                "Robinson Road|Clementi Avenue 2"
            ),
            legal_suffixes=("Pte. Ltd.", "Pte Ltd", "Ltd"),
            company_tlds=(".com.sg", ".sg", ".com"),
            personal_domains=_weights(
                "gmail.com:45 yahoo.com.sg:12 hotmail.com:12 "
                "singnet.com.sg:5 icloud.com:10 outlook.com:6"
            ),
        ),
    ]
}

COUNTRY_CODES = tuple(COUNTRIES)
COUNTRY_WEIGHTS = tuple(c.weight for c in COUNTRIES.values())
COUNTRY_CUM_WEIGHTS = tuple(sum(COUNTRY_WEIGHTS[: i + 1]) for i in range(len(COUNTRY_WEIGHTS)))


def weighted_table(pairs: tuple[tuple[str, int], ...]) -> list[str]:
    """Expand (value, weight) pairs into a list for ``rng.choice``."""
    out: list[str] = []
    for value, weight in pairs:
        out.extend([value] * weight)
    return out


#: Country code -> its personal-mail domains, each repeated by its weight.
PERSONAL_DOMAIN_TABLES: dict[str, list[str]] = {
    c.code: weighted_table(c.personal_domains) for c in COUNTRIES.values()
}
