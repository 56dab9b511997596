"""Fixed vocabularies and well-known IIQ constants the generated district draws from.

Global ids (product, asset type "Devices", status "In Service", location types,
roles, custom-field entity types) are the ones real districts share (reference §1.3,
§3.1-§3.3, §4.1); the rest are invented but shaped like IIQ's.
"""

from __future__ import annotations

from ..entities import (
    ASSET_ENTITY_TYPE,
    DEVICES_ASSET_TYPE,
    TICKET_ENTITY_TYPE,
    USER_ENTITY_TYPE,
)

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
ZERO_DATE = "0001-01-01T00:00:00"

PRODUCT_TICKETING = "88df910c-91aa-e711-80c2-0004ffa00010"
PRODUCT_FACILITIES = "88df910c-91aa-e711-80c2-0004ffa00020"
PRODUCT_ASSETS = "88df910c-91aa-e711-80c2-0004ffa00050"

ENTITY_TYPE_IDS = {
    "assets": ASSET_ENTITY_TYPE,
    "users": USER_ENTITY_TYPE,
    "tickets": TICKET_ENTITY_TYPE,
}
STRATEGIES = {
    "aggregateasset": "assets",
    "aggregateassettype": "assets",
    "aggregateuser": "users",
    "aggregateticket": "tickets",
}

# Asset types: (id, name, slots out of every block of 20 assets, model kinds)
ASSET_TYPE_BLOCK = 20
ASSET_TYPES = (
    (DEVICES_ASSET_TYPE, "Devices", 14),
    ("2a1561e5-34ff-4fcf-87de-2a146f0e1c02", "Peripherals", 3),
    ("2a1561e5-34ff-4fcf-87de-2a146f0e1c03", "Textbooks", 1),
    ("7b3e40d2-5c1a-4e0b-9d5e-6f2f8b1a0c11", "Musical Instruments", 1),
    ("7b3e40d2-5c1a-4e0b-9d5e-6f2f8b1a0c12", "Furniture", 1),
)
assert sum(t[2] for t in ASSET_TYPES) == ASSET_TYPE_BLOCK

# (Manufacturer, model name, category, asset type name, typical price)
MODELS = (
    ("Dell", "Chromebook 3110", "Chromebooks", "Devices", 289.0),
    ("Dell", "Chromebook 3100 2-in-1", "Chromebooks", "Devices", 319.0),
    ("Lenovo", "300e Chromebook Gen 3", "Chromebooks", "Devices", 305.5),
    ("Lenovo", "100e Chromebook Gen 4", "Chromebooks", "Devices", 249.99),
    ("HP", "Chromebook 11 G9 EE", "Chromebooks", "Devices", 279.0),
    ("Acer", "Chromebook Spin 511", "Chromebooks", "Devices", 329.0),
    ("Apple", "iPad (9th Generation)", "Tablets", "Devices", 299.0),
    ("Apple", 'MacBook Air 13" M1', "Laptops", "Devices", 899.0),
    ("Dell", "Latitude 3420", "Laptops", "Devices", 749.0),
    ("Dell", "OptiPlex 7010", "Desktops", "Devices", 812.37),
    ("HP", "ProBook 450 G8", "Laptops", "Devices", 689.0),
    ("Epson", "PowerLite 1781W", "Projectors", "Devices", 629.0),
    ("Promethean", "ActivPanel 9 75\"", "Interactive Displays", "Devices", 3495.0),
    ("Logitech", "H390 USB Headset", "Headsets", "Peripherals", 24.99),
    ("Logitech", "K120 Keyboard", "Keyboards", "Peripherals", 12.5),
    ("IPEVO", "V4K Document Camera", "Document Cameras", "Peripherals", 109.0),
    ("Dell", "65W USB-C Charger", "Chargers", "Peripherals", 39.0),
    ("Apple", "Pencil (1st Generation)", "Styluses", "Peripherals", 89.0),
    ("Savvas", "enVision Mathematics Grade 4", "Math", "Textbooks", 84.97),
    ("McGraw Hill", "Inspire Science Grade 7", "Science", "Textbooks", 112.0),
    ("Houghton Mifflin", "Into Literature Grade 10", "English Language Arts", "Textbooks", 97.45),
    ("Yamaha", "YCL-255 Clarinet", "Woodwinds", "Musical Instruments", 549.0),
    ("Bach", "TR300H2 Trumpet", "Brass", "Musical Instruments", 689.0),
    ("Virco", "9000 Series Student Chair", "Seating", "Furniture", 64.0),
    ("Smith System", "Flavors Desk", "Desks", "Furniture", 219.0),
)

# (id, name, is_retired)
ASSET_STATUSES = (
    ("83a10b14-c3a9-4f3b-b104-da83276f9101", "In Service", False),
    ("83a10b14-c3a9-4f3b-b104-da83276f9102", "In Storage", False),
    ("83a10b14-c3a9-4f3b-b104-da83276f9103", "Broken", False),
    ("83a10b14-c3a9-4f3b-b104-da83276f9104", "Out for Repair", False),
    ("83a10b14-c3a9-4f3b-b104-da83276f9105", "Lost/Stolen", False),
    ("83a10b14-c3a9-4f3b-b104-da83276f9106", "Retired", True),
)
# cumulative weights (out of 100) for the statuses above
ASSET_STATUS_WEIGHTS = (78, 86, 91, 94, 96, 100)

FUNDING_SOURCES = ("General Fund", "Title I", "E-Rate", "ESSER III", "Title IV-A", "Bond Measure")
VENDORS = ("CDW-G", "SHI International", "Dell Technologies", "Apple Education",
           "Amazon Business", "Insight Public Sector", "Troxell", "Heartland Music")

# Location types (global ids)
LT_ADMIN = ("16469164-bce0-42b1-be1c-49861087c401", "Administrative Bldg")
LT_ELEM = ("16469164-bce0-42b1-be1c-49861087c402", "Elementary School")
LT_MIDDLE = ("16469164-bce0-42b1-be1c-49861087c403", "Middle School")
LT_HIGH = ("16469164-bce0-42b1-be1c-49861087c404", "High School")

SCHOOL_NAMES = (
    "Lincoln", "Washington", "Jefferson", "Roosevelt", "Kennedy", "Madison", "Franklin",
    "Jackson", "Adams", "Monroe", "Cesar Chavez", "Sequoia", "Oak Grove", "Sierra Vista",
    "Valley View", "Pioneer", "Riverside", "Mountain View", "Lakeside", "Hillcrest",
    "Sunnyside", "Maple", "Cedar Ridge", "Willow Creek", "Eagle Rock", "Harbor",
    "Mission", "Del Mar", "Rancho", "Vista del Sol", "Heritage", "Liberty", "Summit",
    "Pine Ridge", "Canyon", "Parkview", "Fairview", "Central", "Westside", "Northgate",
)
ADMIN_SITES = ("District Office", "Technology Center", "Transportation Department",
               "Maintenance & Operations", "Warehouse", "Nutrition Services")

# (City, State, zip prefix, lat, lon)
CITIES = (
    ("Fresno", "CA", "937", 36.7378, -119.7871),
    ("Springfield", "IL", "627", 39.7817, -89.6501),
    ("Round Rock", "TX", "786", 30.5083, -97.6789),
    ("Marietta", "GA", "300", 33.9526, -84.5499),
    ("Spokane", "WA", "992", 47.6588, -117.4260),
    ("Dayton", "OH", "454", 39.7589, -84.1916),
    ("Windsor", "CA", "954", 38.5471, -122.8164),
    ("Cedar Rapids", "IA", "524", 41.9779, -91.6656),
)
STREETS = ("Main St", "Oak Ave", "School Rd", "Education Way", "Maple Dr", "Pine St",
           "Washington Blvd", "Lincoln Ave", "Cedar Ln", "Park Ave", "Elm St", "Hillside Dr")

ROOM_TYPES = (
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e01", "Classroom"),
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e02", "Office"),
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e03", "Library"),
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e04", "Storage"),
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e05", "Gymnasium"),
    ("5f3a1e10-7c0d-4b9e-a3f1-1a2b3c4d5e06", "Computer Lab"),
)
SPECIAL_ROOMS = (("Library", 2), ("Main Office", 1), ("Gym", 4), ("Cafeteria", 0),
                 ("Computer Lab", 5), ("Server Room", 3), ("Book Room", 3),
                 ("Nurse's Office", 1), ("MPR", 0), ("Portable", 0))

# (RoleId, Name, Portal)
ROLE_ADMIN = ("6d5fee76-e05e-43c0-b8e9-b8447746e505", "iiQ Administrator", 3)
ROLE_AGENT = ("6d5fee76-e05e-43c0-b8e9-b8447746e504", "Agent", 2)
ROLE_FACULTY = ("6d5fee76-e05e-43c0-b8e9-b8447746e502", "Faculty", 1)
ROLE_STUDENT = ("6d5fee76-e05e-43c0-b8e9-b8447746e501", "Student", 1)

AUTH_PROVIDERS = ("Google", "Google", "Google", "Microsoft", "ClassLink", "Local")

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella",
    "Mateo", "Mia", "Lucas", "Amelia", "Levi", "Harper", "Ezra", "Evelyn", "James",
    "Camila", "Luca", "Gianna", "Asher", "Luna", "Leo", "Sofia", "Jack", "Aria",
    "Santiago", "Scarlett", "Daniel", "Nova", "Henry", "Ximena", "Sebastian", "Valentina",
    "Wyatt", "Chloe", "Jayden", "Layla", "Aiden", "Zoey", "Nguyen", "Mariana", "Diego",
    "Aaliyah", "Hiroshi", "Priya", "Arjun", "Fatima", "Omar", "Yolanda", "Marcus",
    "Keisha", "DeShawn", "Jasmine", "Andre", "Lupe", "Jesús", "María José", "Zoë",
    "Brooklyn", "Carter", "Eli", "Grace", "Hudson", "Ivy", "Jonah", "Kai", "Lily",
    "Maverick", "Nora", "Owen", "Penelope", "Quinn", "Riley", "Samuel", "Taylor",
    "Uriel", "Violet", "Willow", "Xavier", "Yara", "Zane", "Anh", "Bao", "Chen",
    "Dmitri", "Esperanza", "Fernando", "Guadalupe", "Hana", "Ines", "Jamal", "Kenji",
    "Leilani", "Mohammed", "Nadia", "O'Neil", "Paulo", "Rosa", "Siddharth", "Tamika",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
    "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell",
    "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
    "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy",
    "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross",
    "O'Brien", "Van der Berg", "Nuñez", "Østergaard", "Smith-Jones", "De La Cruz",
)

TEAM_NAMES = (
    "Tier 1 Help Desk", "Tier 2 Technicians", "Device Repair Depot", "Network Services",
    "Instructional Technology", "Student Information Systems", "Facilities - Maintenance",
    "Facilities - Custodial", "Library Services", "Purchasing", "Human Resources",
    "Security & Access Control",
)

# (issue category, issue name, subject templates, is device issue)
ISSUES = (
    ("Chromebook", "Cracked Screen", ("Chromebook screen cracked", "Screen broken after drop"), True),
    ("Chromebook", "Keyboard / Trackpad", ("Keys missing on keyboard", "Trackpad not responding"), True),
    ("Chromebook", "Will Not Power On", ("Chromebook won't turn on", "Device dead, will not charge"), True),
    ("Chromebook", "Charging Issue", ("Charger not working", "Charging port loose"), True),
    ("Accounts & Access", "Password Reset", ("Cannot log in to Google", "Password reset needed"), False),
    ("Accounts & Access", "Application Access", ("Need access to Clever", "Canvas course missing"), False),
    ("Classroom Technology", "Projector / Display",
     ("Projector not turning on", "Panel has no signal"), True),
    ("Classroom Technology", "Audio", ("No sound from speakers", "Microphone not working"), False),
    ("Network", "Wi-Fi", ("Wi-Fi keeps dropping in room", "Cannot connect to network"), False),
    ("Software", "Software Install Request", ("Please install GeoGebra", "Need Adobe Express"), False),
    ("Facilities", "HVAC", ("Room too hot", "Heater making noise"), False),
    ("Facilities", "Plumbing", ("Sink leaking", "Toilet clogged in boys restroom"), False),
)

# (StepName, StatusName, IsClosed, Color)
WORKFLOW_STEPS = (
    ("Submitted", "Open", False, "#4a90d9"),
    ("Assigned", "Open", False, "#4a90d9"),
    ("In Progress", "In Progress", False, "#f5a623"),
    ("Waiting on Requestor", "Waiting", False, "#9b9b9b"),
    ("Waiting on Parts", "Waiting", False, "#9b9b9b"),
    ("Resolved", "Resolved", True, "#7ed321"),
    ("Closed", "Closed", True, "#417505"),
)

WORDS = (
    "device", "student", "screen", "charger", "classroom", "teacher", "replaced", "loaner",
    "checked", "returned", "damaged", "keyboard", "battery", "room", "cart", "library",
    "issued", "summer", "collection", "warranty", "repair", "pending", "parent", "called",
    "note", "see", "ticket", "spare", "labeled", "imaged", "enrolled", "updated",
)
