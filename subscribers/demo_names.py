"""Names of the demo's made-up people (subscribers.demo and the history of analytics.demo)."""

FIRST = ["Anna", "Ben", "Clara", "Deniz", "Emil", "Fatma", "Greta", "Hannes", "Ilse", "Jonas", "Katja", "Luca",
         "Mia", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tuğba", "Uwe", "Vera", "Wim", "Yasmin", "Zoe"]  # fmt: skip
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
        "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Yılmaz", "Kaya", "Nowak", "Rossi"]  # fmt: skip
