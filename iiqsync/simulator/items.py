"""Item generation: one JSON-ready dict per (entity, key, version), cheaply.

Every item is a pure function of the district seed, its entity, its generation
index and its edit version, so nothing is stored per item. Small shared sub-objects
(location, room, model, status, role and user summaries) are built once and reused.
Items follow IIQ's wire habits (reference §5): PascalCase keys, null properties
omitted, zero GUIDs and ``0001-01-01T00:00:00`` in nested summaries, naive timestamps
with a trimmed fraction, numeric text for ticket numbers and grades.
"""

from __future__ import annotations

import unicodedata
import zlib
from bisect import bisect_left
from functools import lru_cache
from random import Random
from time import gmtime
from typing import NamedTuple

import orjson

from . import pools as P

M64 = 0xFFFFFFFFFFFFFFFF
ENTITY_NAMES = ("users", "assets", "locations", "rooms", "teams", "tickets")
KEY_FIELDS = {
    "users": "UserId",
    "assets": "AssetId",
    "locations": "LocationId",
    "rooms": "LocationRoomId",
    "teams": "TeamId",
    "tickets": "TicketId",
}
# Base items use key sub-slots in [BASE_LO, BASE_HI); inserted ones use the rest.
BASE_LO = 0x1000
BASE_HI = 0x8000

START = 1498867200  # 2017-07-01: the district went live
END = 1767571200  # 2026-01-05: the generated history ends; drift happens after it
SPAN = END - START

ZERO = P.ZERO_GUID
ZDATE = P.ZERO_DATE


def mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def hseed(*parts: int) -> int:
    x = 0x243F6A8885A308D3
    for p in parts:
        x = mix(x ^ (p & M64))
    return x


def text_salt(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def guid(x: int) -> str:
    """A random-looking (v4-shaped) lowercase GUID derived from ``x``."""
    a = mix(x)
    b = mix(a ^ 0x5BD1E9955BD1E995)
    h = f"{a:016x}{b:016x}"
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


# Fraction digits of a timestamp: mostly SQL datetime (3), some datetime2 (7), some none.
_FRAC = (3, 3, 3, 3, 3, 3, 3, 2, 1, 7, 7, 0)
_POW = tuple(10**n for n in range(8))


_DAYS: dict[int, str] = {}


def _date(days: int) -> str:
    text = _DAYS.get(days)
    if text is None:
        t = gmtime(days * 86400)
        text = _DAYS[days] = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return text


def ts(sec: float, r: Random) -> str:
    """Naive ISO timestamp with 0-7 fraction digits, trailing zeros trimmed."""
    days, rem = divmod(int(sec), 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    s = f"{_date(days)}T{h:02d}:{m:02d}:{sec:02d}"
    nd = _FRAC[int(r.random() * 12)]
    if nd:
        f = f"{int(r.random() * _POW[nd]):0{nd}d}".rstrip("0")
        if f:
            return f"{s}.{f}"
    return s


def day(sec: float) -> str:
    return f"{_date(int(sec) // 86400)}T00:00:00"


_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def b36(x: int, n: int) -> str:
    out = []
    for _ in range(n):
        x, d = divmod(x, 36)
        out.append(_B36[d])
    return "".join(out)


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _pick(r: Random, seq):
    return seq[int(r.random() * len(seq))]


class UserCore(NamedTuple):
    first: str
    last: str
    role: tuple
    loc: int  # base location index or -1
    grade: str | None
    school_id: str | None
    username: str
    email: str
    verified: bool


class AssetCore(NamedTuple):
    type_index: int
    model: int
    tag: str
    serial: str


class LocationCore(NamedTuple):
    name: str
    abbr: str | None
    ltype: tuple


class FieldDef(NamedTuple):
    """A custom-field definition as the generator sees it (immutable snapshot)."""

    type_id: str
    field_id: str
    name: str
    editor_type: int
    fill: float
    is_hidden: bool
    is_required: bool
    is_read_only: bool
    options: tuple  # ((option id, option name), ...)
    display_order: int
    salt: int
    created: str


def role_for(idx: int) -> tuple:
    if idx % 50 == 0:
        return P.ROLE_ADMIN
    if idx % 20 == 1:
        return P.ROLE_AGENT
    if idx % 6 == 2:
        return P.ROLE_FACULTY
    return P.ROLE_STUDENT


class ItemFactory:
    """Builds items for one district (seed and base sizes)."""

    def __init__(self, seed: int, sizes: dict[str, int]):
        self.seed = seed
        self.sizes = dict(sizes)
        self.salt = {e: hseed(seed, text_salt(e)) for e in ENTITY_NAMES}
        self.cf_salt = {e: hseed(seed, text_salt(e), 0xCF) for e in ENTITY_NAMES}
        s = hseed(seed, 0x51E)
        self.site_id = guid(s)
        city = P.CITIES[s % len(P.CITIES)]
        self.city = city
        slug = _ascii(city[0])
        self.domain = f"{slug}usd.org"
        self.student_domain = f"students.{self.domain}"
        self.site_name = f"{city[0]} Unified School District"
        self.site = {
            "SiteId": self.site_id,
            "CreatedDate": ZDATE,
            "Name": self.site_name,
            "OffsetInMinutesFromUtc": 0,
            "WorkMinutesPerDay": 0,
            "DbClusterIndex": 0,
            "PreviousDbClusterIndex": 0,
            "StatusTypeId": ZERO,
            "WorkHoursStartUtc": "00:00:00",
            "WorkHoursEndUtc": "00:00:00",
            "SystemUserId": ZERO,
            "AnonymousUserId": ZERO,
            "IsSandbox": False,
        }
        # SQL-Server-sequential-looking key tails, one per entity.
        node = f"{mix(s ^ 7) & 0xFFFFFFFFFFFF:012x}"
        self.key_tail = {
            e: f"-e{7 + i:x}11-80c{i + 1:x}-{node}" for i, e in enumerate(ENTITY_NAMES)
        }
        self._base_sub_salt = {e: hseed(seed, text_salt(e), 0x5B) for e in ENTITY_NAMES}
        self._build_catalogs()
        self._ascii = {n: _ascii(n) for n in P.FIRST_NAMES + P.LAST_NAMES}
        self.user_core = lru_cache(maxsize=65536)(self._user_core)
        self.asset_core = lru_cache(maxsize=65536)(self._asset_core)
        self.location_core = lru_cache(maxsize=4096)(self._location_core)
        self.owner_summary = lru_cache(maxsize=65536)(self._owner_summary)
        self.ticket_user = lru_cache(maxsize=65536)(self._ticket_user)
        self.location_summary = lru_cache(maxsize=4096)(self._location_summary)
        self.room_summary = lru_cache(maxsize=16384)(self._room_summary)
        self.team_summary = lru_cache(maxsize=4096)(self._team_summary)
        self._school_locs = self._schools()

    # -- keys -----------------------------------------------------------------
    def base_sub(self, entity: str, idx: int) -> int:
        return BASE_LO + mix(self._base_sub_salt[entity] ^ idx) % (BASE_HI - BASE_LO)

    def base_ord(self, entity: str, idx: int) -> int:
        return (idx << 16) | self.base_sub(entity, idx)

    def key(self, entity: str, ordinal: int) -> str:
        return f"{ordinal >> 16:08x}-{ordinal & 0xFFFF:04x}{self.key_tail[entity]}"

    def base_key(self, entity: str, idx: int) -> str:
        return self.key(entity, self.base_ord(entity, idx))

    def parse_key(self, entity: str, key: str) -> int | None:
        """The ordinal of a key this district could have issued, else None."""
        if not isinstance(key, str) or len(key) != 36:
            return None
        key = key.lower()
        if key[13:] != self.key_tail[entity]:
            return None
        try:
            return (int(key[0:8], 16) << 16) | int(key[9:13], 16)
        except ValueError:
            return None

    # -- catalogs ---------------------------------------------------------------
    def _build_catalogs(self) -> None:
        seed = self.seed
        self.asset_type_names = [t[1] for t in P.ASSET_TYPES]
        self.asset_type_ids = [t[0] for t in P.ASSET_TYPES]
        manufacturers: dict[str, dict] = {}
        categories: dict[str, dict] = {}
        self.models = []
        self.models_by_type: list[list[int]] = [[] for _ in P.ASSET_TYPES]
        for mi, (maker, name, cat, tname, price) in enumerate(P.MODELS):
            if maker not in manufacturers:
                manufacturers[maker] = {
                    "ManufacturerId": guid(hseed(seed, 0xAA, text_salt(maker))),
                    "Scope": "All",
                    "Name": maker,
                    "EsoIsVisible": False,
                }
            if cat not in categories:
                cid = guid(hseed(seed, 0xCA, text_salt(cat)))
                c = {"Scope": "Site", "CategoryId": cid, "Level": 0, "SortOrder": 0,
                     "CategoryTypeId": ZERO, "Name": cat}
                if len(categories) % 3 == 0:
                    c["Icon"] = "fa-" + _ascii(cat)[:12]
                categories[cat] = c
            ti = self.asset_type_names.index(tname)
            model_id = guid(hseed(seed, 0x30DE1, mi))
            m = {
                "ModelId": model_id,
                "Scope": "Site" if mi % 4 else "All",
                "Name": f"{maker} {name}",
                "ModelName": name,
                "AssetTypeId": self.asset_type_ids[ti],
                "ManufacturerId": manufacturers[maker]["ManufacturerId"],
                "Manufacturer": manufacturers[maker],
                "CategoryId": categories[cat]["CategoryId"],
                "Category": categories[cat],
                "CreatedDate": ZDATE,
                "ModifiedDate": ZDATE,
                "EsoIsVisible": False,
                "IsGenericModel": False,
            }
            if mi % 3 != 2:
                m["ImageId"] = guid(hseed(seed, 0x1A6E, mi))
            self.models.append((m, price, maker))
            self.models_by_type[ti].append(mi)
        self.statuses = [
            {"AssetStatusTypeId": sid, "Scope": "All", "Name": name, "IsRetired": retired,
             "SupportsNSAs": False}
            for sid, name, retired in P.ASSET_STATUSES
        ]
        self.funding = [
            {"AssetFundingTypeId": guid(hseed(seed, 0xF0D, i)), "Name": name, "Scope": "Site",
             "SiteId": self.site_id}
            for i, name in enumerate(P.FUNDING_SOURCES)
        ]
        self.roles = {}
        for role in (P.ROLE_ADMIN, P.ROLE_AGENT, P.ROLE_FACULTY, P.ROLE_STUDENT):
            self.roles[role[0]] = {"RoleId": role[0], "Name": role[1], "Portal": role[2],
                                   "Visibility": 127, "Users": 0}
        self.issues = []
        for ii, (cat, name, _subjects, _device) in enumerate(P.ISSUES):
            self.issues.append({
                "IssueId": guid(hseed(seed, 0x155E, ii)),
                "Name": name,
                "IssueTypeId": guid(hseed(seed, 0x1557, ii % 4)),
                "IssueCategoryId": guid(hseed(seed, 0x15CA, text_salt(cat))),
                "IssueCategoryName": cat,
                "Scope": "Site",
                "SortOrder": ii,
            })
        workflow_id = guid(hseed(seed, 0xF10))
        self.steps = []
        for si, (step, status, closed, color) in enumerate(P.WORKFLOW_STEPS):
            self.steps.append({
                "WorkflowStepId": guid(hseed(seed, 0x57E9, si)),
                "WorkflowId": workflow_id,
                "WorkflowName": "Technology Support",
                "StepName": step,
                "StatusId": guid(hseed(seed, 0x57A7, text_salt(status))),
                "StatusName": status,
                "IsClosed": closed,
                "DisplayOrder": si,
                "Color": color,
            })
        self.room_types = [{"LocationRoomTypeId": rid, "Name": name} for rid, name in P.ROOM_TYPES]
        # Asset-type layout: every block of 20 consecutive asset indexes holds a fixed
        # number of each type, in a per-block shuffled order.
        self._slots = []
        for ti, (_tid, _name, count) in enumerate(P.ASSET_TYPES):
            self._slots.extend([ti] * count)
        self.type_counts = [t[2] for t in P.ASSET_TYPES]
        self._block = lru_cache(maxsize=8192)(self._block_layout)

    def _schools(self) -> list[int]:
        n = min(self.sizes.get("locations", 0), 2000)
        schools = [i for i in range(n) if self.location_core(i).ltype is not P.LT_ADMIN]
        return schools or list(range(n))

    # -- asset type layout -------------------------------------------------------
    def _block_layout(self, block: int):
        r = Random(hseed(self.seed, 0xB10C, block))
        slots = list(self._slots)
        r.shuffle(slots)
        positions = [[] for _ in P.ASSET_TYPES]
        for pos, ti in enumerate(slots):
            positions[ti].append(pos)
        return tuple(slots), tuple(tuple(p) for p in positions)

    def asset_type_of(self, idx: int) -> int:
        """Asset type index of generation index ``idx`` (base or inserted)."""
        n = self.sizes["assets"]
        if idx < n:
            b, o = divmod(idx, P.ASSET_TYPE_BLOCK)
            return self._block(b)[0][o]
        x = mix(self.salt["assets"] ^ idx ^ 0x7E) % P.ASSET_TYPE_BLOCK
        return self._slots[x]

    def type_count_below(self, ti: int, x: int) -> int:
        """How many base assets of type ``ti`` have an index < x."""
        x = min(x, self.sizes["assets"])
        b, o = divmod(x, P.ASSET_TYPE_BLOCK)
        c = b * self.type_counts[ti]
        if o:
            c += bisect_left(self._block(b)[1][ti], o)
        return c

    def type_iter(self, ti: int, x: int):
        """Base asset indexes of type ``ti`` from ``x`` upwards."""
        n = self.sizes["assets"]
        b, o = divmod(x, P.ASSET_TYPE_BLOCK)
        while True:
            base = b * P.ASSET_TYPE_BLOCK
            if base >= n:
                return
            for p in self._block(b)[1][ti]:
                if p >= o:
                    idx = base + p
                    if idx >= n:
                        return
                    yield idx
            b += 1
            o = 0

    # -- cores and summaries -------------------------------------------------------
    def _location_core(self, idx: int) -> LocationCore:
        r = Random(self.salt["locations"] ^ idx ^ 0xC0C0C0C0)
        if idx == 0:
            return LocationCore("District Office", "DO", P.LT_ADMIN)
        x = r.random()
        if x < 0.55:
            lt = P.LT_ELEM
        elif x < 0.75:
            lt = P.LT_MIDDLE
        elif x < 0.9:
            lt = P.LT_HIGH
        else:
            lt = P.LT_ADMIN
        names = P.SCHOOL_NAMES
        k = (self.seed * 7 + idx * 17) % len(names)
        base = names[k]
        rnd = idx // len(names)
        if lt is P.LT_ADMIN:
            name = P.ADMIN_SITES[idx % len(P.ADMIN_SITES)]
        else:
            name = f"{base} {lt[1].replace(' School', '')}"
            if lt is P.LT_HIGH:
                name = f"{base} High School"
            elif lt is P.LT_MIDDLE:
                name = f"{base} Middle School"
            else:
                name = f"{base} Elementary"
        if rnd:
            name = f"{name} {rnd + 1}"
        abbr = None
        if r.random() < 0.8:
            abbr = "".join(w[0] for w in name.split() if w[0].isalpha()).upper()
            if rnd:
                abbr += str(rnd + 1)
        return LocationCore(name, abbr, lt)

    def _location_summary(self, idx: int) -> dict:
        c = self.location_core(idx)
        s = {"Name": c.name}
        if c.abbr:
            s["Abbreviation"] = c.abbr
        s.update({
            "LocationId": self.base_key("locations", idx),
            "SiteId": ZERO,
            "AddressId": ZERO,
            "LocationTypeId": c.ltype[0],
            "LocationType": {"LocationTypeId": c.ltype[0], "Name": c.ltype[1],
                             "CreatedDate": ZDATE, "ModifiedDate": ZDATE, "IsDeleted": False,
                             "Scope": "System"},
            "LocationStatusTypeId": ZERO,
            "IsReservable": False,
            "IsDeleted": False,
            "CreatedDate": ZDATE,
            "ModifiedDate": ZDATE,
        })
        return s

    def rooms_of(self, loc: int) -> range:
        """Base room indexes that belong to base location ``loc``."""
        n_rooms, n_locs = self.sizes["rooms"], self.sizes["locations"]
        if n_locs <= 0:
            return range(0)
        lo = -(-loc * n_rooms // n_locs)
        hi = -(-(loc + 1) * n_rooms // n_locs)
        return range(lo, min(hi, n_rooms))

    def room_location(self, idx: int) -> int:
        n_rooms, n_locs = self.sizes["rooms"], self.sizes["locations"]
        if n_locs <= 0:
            return -1
        if idx < n_rooms:
            return idx * n_locs // n_rooms
        return mix(self.salt["rooms"] ^ idx) % min(n_locs, 2000)

    def room_core(self, idx: int):
        loc = self.room_location(idx)
        if idx < self.sizes["rooms"] and loc >= 0:
            k = idx - self.rooms_of(loc).start
        else:
            k = 2 * (mix(self.salt["rooms"] ^ idx ^ 0x4B) % 30)
        if k % 2 == 1 and k // 2 < len(P.SPECIAL_ROOMS):
            name, rt = P.SPECIAL_ROOMS[k // 2]
            number = None
        else:
            number = str(100 + k) if k < 60 else str(200 + k)
            name, rt = f"Room {number}", 0
            if k % 11 == 10:
                name, number = f"Portable {k // 11 + 1}", None
        return name, loc, rt, number

    def _room_summary(self, idx: int) -> dict:
        name, _loc, rt, _number = self.room_core(idx)
        return {
            "SiteId": self.site_id,
            "LocationRoomId": self.base_key("rooms", idx),
            "Name": name,
            "NameFormatted": name,
            "LocationId": ZERO,
            "LocationRoomTypeId": self.room_types[rt]["LocationRoomTypeId"],
            "IsAvailable": True,
            "IsExternallyAvailable": False,
            "IsDeleted": False,
            "CreatedDate": ZDATE,
            "ModifiedDate": ZDATE,
        }

    def _team_name(self, idx: int) -> str:
        names = P.TEAM_NAMES
        name = names[idx % len(names)]
        return name if idx < len(names) else f"{name} {idx // len(names) + 1}"

    def _team_counts(self, idx: int):
        r = Random(self.salt["teams"] ^ idx ^ 0xC0C0C0C0)
        return 1 + int(r.random() * 9), int(r.random() * 400)

    def _team_summary(self, idx: int) -> dict:
        members, tickets = self._team_counts(idx)
        return {"TeamId": self.base_key("teams", idx), "TeamName": self._team_name(idx),
                "MembersCount": members, "Tickets": tickets}

    def _user_core(self, idx: int) -> UserCore:
        return self._user_core_draw(Random(self.salt["users"] ^ idx), idx)

    def _user_core_draw(self, r: Random, idx: int) -> UserCore:
        """The user's identity: the first draws of the user's own generator, so the
        user item and every summary of that user agree."""
        role = role_for(idx)
        first = _pick(r, P.FIRST_NAMES)
        last = _pick(r, P.LAST_NAMES)
        nloc = min(self.sizes["locations"], 2000)
        grade = school_id = None
        if role is P.ROLE_STUDENT:
            loc = _pick(r, self._school_locs) if self._school_locs else -1
            lt = self.location_core(loc).ltype if loc >= 0 else P.LT_ELEM
            if lt is P.LT_HIGH:
                g = 9 + int(r.random() * 4)
            elif lt is P.LT_MIDDLE:
                g = 6 + int(r.random() * 3)
            else:
                g = int(r.random() * 6)
            grade = "KG" if g == 0 else f"{g:02d}"
            school_id = str(200000 + idx)
            username = f"{self._ascii[first][:1]}{self._ascii[last]}{school_id[-4:]}"
            email = f"{username}@{self.student_domain}"
        else:
            loc = int(r.random() * nloc) if nloc else -1
            username = f"{self._ascii[first]}.{self._ascii[last]}"
            if r.random() < 0.3:
                username += str(idx % 1000)
            email = f"{username}@{self.domain}"
            if r.random() < 0.5:
                school_id = f"E{10000 + idx}"
        return UserCore(first, last, role, loc, grade, school_id, username, email,
                        r.random() < 0.7)

    def _owner_summary(self, idx: int) -> dict:
        c = self.user_core(idx)
        s = {
            "UserId": self.base_key("users", idx),
            "SiteId": self.site_id,
            "Name": f"{c.first} {c.last}",
            "FullName": f"{c.first} {c.last}",
            "Initials": f"{c.first[:1]}{c.last[:1]}",
            "FirstName": c.first,
            "LastName": c.last,
            "LocationId": self.base_key("locations", c.loc) if c.loc >= 0 else ZERO,
            "RoleId": c.role[0],
            "RoleName": c.role[1],
            "Email": c.email,
            "Username": c.username,
            "IsOnline": False,
            "IsEmailVerified": c.verified,
        }
        if c.school_id:
            s["SchoolIdNumber"] = c.school_id
        if c.grade:
            s["Grade"] = c.grade
        return s

    def _ticket_user(self, idx: int, relationship: str) -> dict:
        c = self.user_core(idx)
        s = {
            "UserId": self.base_key("users", idx),
            "Relationship": relationship,
            "Name": f"{c.first} {c.last}",
            "FirstName": c.first,
            "LastName": c.last,
            "Initials": f"{c.first[:1]}{c.last[:1]}",
            "Email": c.email,
            "Username": c.username,
            "RoleId": c.role[0],
            "Role": {"RoleId": c.role[0], "Name": c.role[1]},
            "IsOnline": False,
        }
        if c.loc >= 0:
            s["LocationId"] = self.base_key("locations", c.loc)
            s["LocationName"] = self.location_core(c.loc).name
        if c.school_id:
            s["SchoolIdNumber"] = c.school_id
        return s

    def _asset_core(self, idx: int) -> AssetCore:
        return self._asset_core_draw(Random(self.salt["assets"] ^ idx), idx)

    def _asset_core_draw(self, r: Random, idx: int) -> AssetCore:
        ti = self.asset_type_of(idx)
        models = self.models_by_type[ti]
        mi = models[int(r.random() * len(models))]
        maker = self.models[mi][2]
        x = int(r.random() * 36**12)
        if maker == "Dell":
            serial = b36(x, 7)
        elif maker == "Apple":
            serial = b36(x, 12)
        elif maker == "Lenovo":
            serial = "PF" + b36(x, 6)
        elif maker == "HP":
            serial = f"5CD{x % 10**7:07d}"
        else:
            serial = b36(x, 10)
        return AssetCore(ti, mi, str(100000 + idx), serial)

    def random_agent(self, r: Random) -> int:
        n = self.sizes["users"]
        k = (n - 2) // 20 + 1 if n >= 2 else 0
        if k <= 0:
            return -1
        return 20 * int(r.random() * k) + 1

    # -- custom-field values ---------------------------------------------------------
    def cf_values(self, defs: tuple, ih: int, version: int) -> list:
        out = []
        for d in defs:
            x = mix(ih ^ d.salt)
            if version and (mix(d.salt ^ version) & 3) == 0:
                x = mix(x ^ version)
            if (x & 0xFFFF) >= d.fill * 65536:
                continue
            out.append({"CustomFieldTypeId": d.type_id, "EditorTypeId": d.editor_type,
                        "Value": self.cf_value(d, x >> 16), "IsHidden": d.is_hidden})
        return out

    def cf_value(self, d: FieldDef, x: int) -> str:
        et = d.editor_type
        lname = d.name.lower()
        if et in (9, 10, 31):
            if not d.options:
                return ""
            if et == 10:
                k = 1 + x % min(3, len(d.options))
                picked = sorted({d.options[(x >> (4 * i)) % len(d.options)][0] for i in range(k)})
                return orjson.dumps(picked).decode()
            return orjson.dumps([d.options[x % len(d.options)][0]]).decode()
        if et == 4:
            if "id" in lname:
                return str(100000 + x % 900000)
            return str(x % 1000) if x & 1 else f"{x % 10000 / 100:.2f}"
        if et == 5:
            lo = x % 50
            return orjson.dumps({"Min": lo, "Max": lo + (x >> 8) % 50}).decode()
        if et == 6:
            return day(START + x % SPAN)
        if et == 7:
            a = START + x % SPAN
            return orjson.dumps({"Start": day(a), "End": day(a + 86400 * (1 + (x >> 20) % 300))}).decode()
        if et == 8:
            return "true" if x & 1 else "false"
        if et == 11:
            c = self.user_core(x % max(1, self.sizes["users"]))
            return f"{self._ascii[c.first]}.{self._ascii[c.last]}@example.com"
        if et == 12:
            return f"({200 + x % 700}) 555-{(x >> 10) % 10000:04d}"
        if et == 13:
            return orjson.dumps({"Street1": f"{100 + x % 9000} {P.STREETS[(x >> 16) % len(P.STREETS)]}",
                                 "City": self.city[0], "State": self.city[1],
                                 "Zip": f"{self.city[2]}{(x >> 24) % 100:02d}"}).decode()
        if et == 18:
            return f"10.{x % 256}.{(x >> 8) % 256}.{(x >> 16) % 254 + 1}"
        if et in (21, 32):
            n = self.sizes["users"]
            if not n:
                return "[]"
            u = x % n
            c = self.user_core(u)
            return orjson.dumps([{"UserId": self.base_key("users", u),
                                  "Name": f"{c.first} {c.last}"}]).decode()
        if et == 22:
            n = min(self.sizes["locations"], 2000)
            if not n:
                return "{}"
            loc = x % n
            return orjson.dumps({"LocationId": self.base_key("locations", loc),
                                 "Name": self.location_core(loc).name}).decode()
        if et == 23:
            n = self.sizes["assets"]
            return orjson.dumps([self.base_key("assets", x % n)] if n else []).decode()
        if et == 33:
            n = self.sizes["teams"]
            if not n:
                return "{}"
            return orjson.dumps({"TeamId": self.base_key("teams", x % n),
                                 "TeamName": self._team_name(x % n)}).decode()
        if et in (2, 3):
            w = P.WORDS
            text = " ".join(w[(x >> (5 * i)) % len(w)] for i in range(6))
            return f"<p>{text}</p>" if et == 3 else text.replace(" see ", "\nsee ")
        # Text and everything else: shaped by the field's name where it says what it is.
        if "mac" in lname:
            return "-".join(f"{(x >> (8 * i)) & 0xFF:02X}" for i in range(6))
        if "purchase order" in lname or lname.startswith("po"):
            return f"PO-{2018 + x % 8}-{(x >> 8) % 100000:05d}"
        if "tag" in lname:
            return str(100000 + x % max(1, self.sizes["assets"]))
        if "serial" in lname:
            return b36(x, 10)
        if "id" in lname.split() or "number" in lname or "#" in lname:
            return str(100000 + x % 900000)
        w = P.WORDS
        return " ".join(w[(x >> (5 * i)) % len(w)] for i in range(1 + x % 3)).capitalize()

    # -- items ------------------------------------------------------------------------
    def created(self, entity: str, idx: int, r: Random) -> float:
        """Creation second: base items spread over the history in index order, inserted
        ones (idx past the base) after it."""
        n = self.sizes[entity]
        if idx < n:
            return START + SPAN * (idx + r.random()) / n
        return END + (idx - n) * 37 + r.random() * 30

    def make(self, entity: str, ordinal: int, idx: int, version: int, defs: tuple = ()) -> dict:
        return self._makers[entity](self, ordinal, idx, version, defs)

    def _user(self, ordinal, idx, version, defs):
        r = Random(self.salt["users"] ^ idx)
        c = self._user_core_draw(r, idx)
        created = self.created("users", idx, r)
        modified = created + r.random() * (END - created) if idx < self.sizes["users"] else created
        student = c.role is P.ROLE_STUDENT
        d = {
            "UserId": self.key("users", ordinal),
            "IsDeleted": False,
            "SiteId": self.site_id,
            "ProductId": P.PRODUCT_TICKETING,
            "CreatedDate": ts(created, r),
            "ModifiedDate": None,
        }
        if c.loc >= 0:
            lsum = self.location_summary(c.loc)
            d["LocationId"] = lsum["LocationId"]
            d["LocationName"] = lsum["Name"]
            d["Location"] = lsum
        d["IsActive"] = r.random() < 0.96
        d["IsOnline"] = False
        if r.random() < 0.6:
            d["IsOnlineLastUpdated"] = ts(modified - r.random() * 86400 * 30, r)
        d["Name"] = f"{c.first} {c.last}"
        d["FirstName"] = c.first
        d["LastName"] = c.last
        d["Email"] = c.email
        d["Username"] = c.username
        x = r.random()
        if x < (0.05 if student else 0.4):
            d["Phone"] = f"({self.city[2][:1]}{50 + idx % 50}) 555-{idx % 10000:04d}"
        elif x < (0.08 if student else 0.5):
            d["Phone"] = ""
        if c.school_id:
            d["SchoolIdNumber"] = c.school_id
        if c.grade:
            d["Grade"] = c.grade
        if student and r.random() < 0.7:
            t = self.user_core(20 * (idx // 20) + 2 if idx >= 2 else 2)
            d["Homeroom"] = f"{t.last}, {t.first} (Rm: {100 + idx % 40 if r.random() < 0.7 else ''})"
        x = r.random()
        if x < 0.55:
            d["ExternalId"] = guid(hseed(self.salt["users"], idx, 0xE7))
        elif x < 0.85:
            d["ExternalId"] = str(900000 + idx)
        if r.random() < 0.03:
            d["InternalComments"] = "Shares device with sibling; see note from front office.\nVerified 2024."
        d["RoleId"] = c.role[0]
        d["Role"] = self.roles[c.role[0]]
        d["AuthenticatedBy"] = _pick(r, P.AUTH_PROVIDERS)
        d["AccountSetupProgress"] = 100 if r.random() < 0.8 else int(r.random() * 5) * 25
        if r.random() < 0.4:
            d["TrainingPercentComplete"] = 0 if student else int(r.random() * 11) * 10
        d["IsEmailVerified"] = c.verified
        d["IsWelcomeEmailSent"] = r.random() < 0.3
        d["PreventProviderUpdates"] = r.random() < 0.02
        d["IsOutOfOffice"] = (not student) and r.random() < 0.03
        d["Portal"] = 0 if r.random() < 0.05 else c.role[2]
        d["DataMappings"] = {}
        d["CustomFieldValues"] = self.cf_values(defs, mix(self.cf_salt["users"] ^ idx), version)
        if version:
            e = Random(hseed(self.salt["users"], idx, version))
            modified = max(modified, END + version * 41 + e.random() * 30)
            d["IsOnline"] = e.random() < 0.5
            d["IsOnlineLastUpdated"] = ts(modified, e)
            if e.random() < 0.5:
                d["Phone"] = f"(555) 555-{int(e.random() * 10000):04d}"
            if student:
                d["Homeroom"] = f"Portable {1 + version % 9}"
        d["ModifiedDate"] = ts(modified, r)
        return d

    def _asset(self, ordinal, idx, version, defs):
        r = Random(self.salt["assets"] ^ idx)
        c = self._asset_core_draw(r, idx)
        model, price, _maker = self.models[c.model]
        created = self.created("assets", idx, r)
        base = idx < self.sizes["assets"]
        modified = created + r.random() * (END - created) if base else created
        devices = c.type_index == 0
        x = r.random()
        si = 0
        while x * 100 >= P.ASSET_STATUS_WEIGHTS[si]:
            si += 1
        status = self.statuses[si]
        d = {
            "AssetId": self.key("assets", ordinal),
            "SiteId": self.site_id,
            "Site": self.site,
            "ProductId": P.PRODUCT_TICKETING,
            "CreatedDate": ts(created, r),
            "ModifiedDate": None,
            "AssetTypeId": self.asset_type_ids[c.type_index],
            "AssetTypeName": self.asset_type_names[c.type_index],
            "AssetInventoryTypeId": "a1f3c6e0-5d3b-4c8e-9a57-0f2d1e3b4c01",
            "AssetInventoryTypeName": "Serialized",
            "IsDeleted": False,
        }
        if r.random() < 0.5:
            d["IsTraining"] = False
        d["StatusTypeId"] = status["AssetStatusTypeId"]
        d["Status"] = status
        x = r.random()
        if x < 0.97:
            d["AssetTag"] = c.tag
        elif x < 0.99:
            d["AssetTag"] = ""
        if c.type_index != 2 or r.random() < 0.2:
            d["SerialNumber"] = c.serial
        if r.random() < 0.3:
            d["ExternalId"] = guid(hseed(self.salt["assets"], idx, 0xE7))
        if r.random() < 0.4:
            d["Name"] = f"{model['Category']['Name'][:4].upper()}-{c.tag}"
        d["CanOwnerManage"] = r.random() < 0.1
        d["CanSubmitTicket"] = r.random() < 0.9
        d["IsFavorite"] = r.random() < 0.01
        d["ModelId"] = model["ModelId"]
        d["Model"] = model
        d["CategoryId"] = model["CategoryId"]
        if "ImageId" in model:
            d["ImageId"] = model["ImageId"]
        n_users = self.sizes["users"]
        loc = -1
        if n_users and r.random() < (0.75 if devices else 0.25) and not status["IsRetired"]:
            owner = int(r.random() * n_users)
            oc = self.user_core(owner)
            osum = self.owner_summary(owner)
            d["OwnerId"] = osum["UserId"]
            d["Owner"] = osum
            loc = oc.loc
            if r.random() < 0.15:
                prev = int(r.random() * n_users)
                psum = self.owner_summary(prev)
                d["PreviousOwnerId"] = psum["UserId"]
                d["PreviousOwner"] = psum
        n_locs = min(self.sizes["locations"], 2000)
        if loc < 0 and n_locs and r.random() < 0.97:
            loc = int(r.random() * n_locs)
        if loc >= 0:
            lsum = self.location_summary(loc)
            d["LocationId"] = lsum["LocationId"]
            d["Location"] = lsum
            x = r.random()
            if x < 0.15:
                d["LocationDetails"] = f"Cart {1 + int(r.random() * 12)}"
            elif x < 0.2:
                d["LocationDetails"] = ""
            rooms = self.rooms_of(loc)
            if rooms and r.random() < 0.5:
                room = rooms[int(r.random() * len(rooms))]
                rsum = self.room_summary(room)
                d["LocationRoomId"] = rsum["LocationRoomId"]
                d["LocationRoom"] = rsum
        x = r.random()
        if x < 0.12:
            d["Notes"] = "Loaner issued while device out for repair."
        elif x < 0.15:
            d["Notes"] = ""
        open_tickets = 1 + int(r.random() * 2) if r.random() < 0.08 else 0
        d["HasOpenTickets"] = open_tickets > 0
        d["OpenTickets"] = open_tickets
        bought = created - r.random() * 86400 * 60
        if r.random() < 0.85:
            d["PurchasedDate"] = day(bought)
        if r.random() < 0.7:
            d["DeployedDate"] = day(bought + 86400 * (7 + int(r.random() * 60)))
        if status["IsRetired"]:
            d["RetiredDate"] = day(created + r.random() * (END + 86400 - created))
        x = r.random()
        if x < 0.8:
            d["PurchasePrice"] = round(price * (0.85 + r.random() * 0.3), 2)
        elif x < 0.83:
            d["PurchasePrice"] = 0.0
        x = r.random()
        if x < 0.5:
            year = 2017 + int((created - START) // 31536000)
            d["PurchasePoNumber"] = f"PO{year}-{int(r.random() * 99999):05d}"
        elif x < 0.55:
            d["PurchasePoNumber"] = ""
        if r.random() < 0.6:
            d["WarrantyExpirationDate"] = day(bought + 86400 * 365 * (1 + int(r.random() * 4)))
        if r.random() < 0.3:
            d["WarrantyInfo"] = _pick(r, ("ADP 3yr", "Standard 1yr", "ProSupport 4yr", "AppleCare+"))
        if r.random() < 0.4:
            d["LastInventoryDate"] = ts(created + r.random() * (END - created), r)
        if r.random() < 0.3:
            d["InvoiceNumber"] = f"INV{int(r.random() * 10**8):08d}"
        if r.random() < 0.45:
            d["Vendor"] = _pick(r, P.VENDORS)
        if r.random() < 0.1:
            d["InsuranceExpirationDate"] = day(bought + 86400 * 365)
            d["InsuranceInfo"] = _pick(r, ("Worth Ave Group", "Parent plan", "Self-insured"))
        if r.random() < 0.5:
            f = _pick(r, self.funding)
            d["FundingSourceId"] = f["AssetFundingTypeId"]
            d["FundingSource"] = f
        if r.random() < 0.5:
            d["IsReadOnly"] = False
            d["IsExternallyManaged"] = False
        if status["Name"] == "In Storage" and n_locs:
            sl = int(r.random() * n_locs)
            d["StorageLocationId"] = self.base_key("locations", sl)
            d["StorageLocationName"] = self.location_core(sl).name
            d["StorageUnitNumber"] = f"C{1 + int(r.random() * 20)}"
            d["StorageSlotNumber"] = 1 + int(r.random() * 36)
        d["SourceId"] = 1 if r.random() < 0.8 else 4
        d["LinkedAssetIds"] = []
        d["CustomFieldValues"] = self.cf_values(defs, mix(self.cf_salt["assets"] ^ idx), version)
        if version:
            e = Random(hseed(self.salt["assets"], idx, version))
            modified = max(modified, END + version * 41 + e.random() * 30)
            d["Notes"] = f"Checked during inventory sweep {version}."
            d["LastInventoryDate"] = ts(modified, e)
            if e.random() < 0.3:
                st = _pick(e, self.statuses[:5])
                d["StatusTypeId"] = st["AssetStatusTypeId"]
                d["Status"] = st
            if e.random() < 0.3:
                d["HasOpenTickets"] = True
                d["OpenTickets"] = 1
        d["ModifiedDate"] = ts(modified, r)
        return d

    def _location(self, ordinal, idx, version, defs):
        r = Random(self.salt["locations"] ^ idx)
        c = self.location_core(idx)
        created = self.created("locations", idx, r)
        modified = created + r.random() * (END - created) if idx < self.sizes["locations"] else created
        city, state, zip3, lat, lon = self.city
        address_id = guid(hseed(self.salt["locations"], idx, 0xADD))
        address = {
            "AddressId": address_id,
            "SiteId": ZERO,
            "CreatedDate": ZDATE,
            "ModifiedDate": ZDATE,
        }
        x = r.random()
        if x < 0.6:
            address["Attn"] = "Front Office" if r.random() < 0.5 else f"{c.name} Office"
        elif x < 0.7:
            address["Attn"] = ""
        address["Street1"] = f"{100 + int(r.random() * 9800)} {_pick(r, P.STREETS)}"
        if idx % 4 == 1 or r.random() < 0.05:
            address["Street2"] = f"Suite {100 + int(r.random() * 300)}"
        address["City"] = city
        address["State"] = state
        z = f"{zip3}{int(r.random() * 100):02d}"
        address["Zip"] = z if r.random() < 0.8 else f"{z}-{int(r.random() * 10000):04d}"
        address["Country"] = "USA"
        address["Latitude"] = round(lat + (r.random() - 0.5) * 0.2, 6)
        address["Longitude"] = round(lon + (r.random() - 0.5) * 0.2, 6)
        d = {
            "LocationId": self.key("locations", ordinal),
            "SiteId": self.site_id,
            "Name": c.name,
        }
        if c.abbr:
            d["Abbreviation"] = c.abbr
        d["CreatedDate"] = ts(created, r)
        d["ModifiedDate"] = None
        d["AddressId"] = address_id
        d["Address"] = address
        d["LocationTypeId"] = c.ltype[0]
        d["LocationType"] = {"LocationTypeId": c.ltype[0], "Name": c.ltype[1]}
        if r.random() < 0.7:
            d["LogoId"] = guid(hseed(self.salt["locations"], idx, 0x1060))
        if idx % 5 == 3 or r.random() < 0.1:
            d["FloorplanId"] = guid(hseed(self.salt["locations"], idx, 0xF100))
        d["IsReservable"] = r.random() < 0.1
        d["IsDeleted"] = False
        if r.random() < 0.3:
            d["Description"] = f"{c.ltype[1]} serving {city}"
        d["RoomCount"] = len(self.rooms_of(idx)) if idx < self.sizes["locations"] else 0
        d["CustomFieldValues"] = []
        if version:
            e = Random(hseed(self.salt["locations"], idx, version))
            modified = max(modified, END + version * 41 + e.random() * 30)
            address["Attn"] = f"Principal's Office {version}"
            d["Description"] = f"Updated {version}"
        d["ModifiedDate"] = ts(modified, r)
        return d

    def _room(self, ordinal, idx, version, defs):
        r = Random(self.salt["rooms"] ^ idx)
        name, loc, rt, number = self.room_core(idx)
        created = self.created("rooms", idx, r)
        modified = created + r.random() * (END - created) if idx < self.sizes["rooms"] else created
        d = {
            "LocationRoomId": self.key("rooms", ordinal),
            "SiteId": self.site_id,
            "Name": name,
            "NameFormatted": name,
        }
        if number:
            d["Number"] = number
        if loc >= 0:
            lc = self.location_core(loc)
            d["LocationId"] = self.base_key("locations", loc)
            d["LocationName"] = lc.name
            if lc.abbr:
                d["LocationAbbreviation"] = lc.abbr
        rtype = self.room_types[rt]
        d["LocationRoomTypeId"] = rtype["LocationRoomTypeId"]
        d["LocationRoomTypeName"] = rtype["Name"]
        x = r.random()
        if x < 0.25:
            near = _pick(r, ("the gym", "the front office", "the library", "the quad"))
            d["Description"] = f"{rtype['Name']} near {near}"
        elif x < 0.35:
            d["Description"] = ""
        d["IsAvailable"] = r.random() < 0.95
        d["IsExternallyAvailable"] = r.random() < 0.05
        d["IsDeleted"] = False
        if r.random() < 0.4:
            d["SeatingCapacity"] = 20 + int(r.random() * 20)
        d["CreatedDate"] = ts(created, r)
        d["ModifiedDate"] = None
        d["CustomFieldValues"] = []
        if version:
            e = Random(hseed(self.salt["rooms"], idx, version))
            modified = max(modified, END + version * 41 + e.random() * 30)
            d["Description"] = f"Renovated, phase {version}"
            d["IsAvailable"] = e.random() < 0.5
        d["ModifiedDate"] = ts(modified, r)
        return d

    def _team(self, ordinal, idx, version, defs):
        r = Random(self.salt["teams"] ^ idx)
        members, tickets = self._team_counts(idx)
        if version:
            e = Random(hseed(self.salt["teams"], idx, version))
            members = 1 + int(e.random() * 12)
            tickets += 1 + int(e.random() * 20)
        picked = {self.random_agent(r) for _ in range(members)} - {-1}
        member_ids = [self.base_key("users", a) for a in sorted(picked)]
        name = self._team_name(idx)
        d = {
            "TeamId": self.key("teams", ordinal),
            "SiteId": self.site_id,
            "ProductId": P.PRODUCT_FACILITIES if "Facilities" in name else P.PRODUCT_TICKETING,
            "TeamName": name,
            "MembersCount": len(member_ids),
            "MemberIds": member_ids,
            "Tickets": tickets,
            "IsDeleted": False,
            "CreatedDate": ts(self.created("teams", idx, r), r),
        }
        return d

    def _ticket(self, ordinal, idx, version, defs):
        r = Random(self.salt["tickets"] ^ idx)
        n = self.sizes["tickets"]
        created = self.created("tickets", idx, r)
        ii = int(r.random() * len(self.issues))
        issue = self.issues[ii]
        cat, _name, subjects, device = P.ISSUES[ii]
        facilities = cat == "Facilities"
        closed = r.random() < (0.95 if idx < 0.85 * n else 0.4 if idx < n else 0.0)
        if closed:
            step = self.steps[5 if r.random() < 0.3 else 6]
        else:
            step = self.steps[int(r.random() * 5)]
        end = END if idx < n else created
        closed_at = created + r.random() * min(86400 * 30, end - created) if closed else None
        modified = closed_at + 1 + r.random() * 600 if closed else created + r.random() * (end - created)
        d = {
            "TicketId": self.key("tickets", ordinal),
            "SiteId": self.site_id,
            "ProductId": P.PRODUCT_FACILITIES if facilities else P.PRODUCT_TICKETING,
            "TicketNumber": str(1001 + idx),
            "Subject": _pick(r, subjects),
        }
        x = r.random()
        if x < 0.8:
            d["IssueDescription"] = (
                f"{d['Subject']}. Reported by teacher during period {1 + int(r.random() * 7)}.\n"
                "Student says it started yesterday. " * (1 + int(r.random() * 3))
            ).strip()
        elif x < 0.85:
            d["IssueDescription"] = ""
        d["CreatedDate"] = ts(created, r)
        d["ModifiedDate"] = None
        if closed or r.random() < 0.5:
            d["StartedDate"] = ts(created + (closed_at - created if closed else 3600) * r.random(), r)
        if closed:
            d["ClosedDate"] = ts(closed_at, r)
        due = None
        if r.random() < 0.3:
            due = created + 86400 * (1 + int(r.random() * 14))
            d["DueDate"] = ts(due, r)
        d["IsDeleted"] = False
        d["IsClosed"] = closed
        d["IsPastDue"] = bool(due and not closed and due < END)
        d["IsIssueConfirmed"] = r.random() < 0.6
        d["IsUrgent"] = r.random() < 0.05
        if r.random() < 0.5:
            d["IsTraining"] = False
        d["HasSensitiveInformation"] = False
        d["Priority"] = int(r.random() * 2000) if r.random() < 0.9 else 0
        d["SourceId"] = _pick(r, (1, 1, 1, 2, 3))
        n_users = self.sizes["users"]
        loc = -1
        if n_users:
            req = int(r.random() * n_users)
            owner = req if r.random() < 0.7 else (2 + 6 * int(r.random() * max(1, (n_users - 2) // 6)))
            owner = min(owner, n_users - 1)
            tu = self.ticket_user(owner, "Owner")
            d["OwnerId"] = tu["UserId"]
            d["Owner"] = tu
            tu = self.ticket_user(req, "For")
            d["ForId"] = tu["UserId"]
            d["For"] = tu
            loc = self.user_core(req).loc
            if r.random() < 0.7:
                agent = self.random_agent(r)
                if agent >= 0:
                    tu = self.ticket_user(agent, "Agent")
                    d["AssignedToUserId"] = tu["UserId"]
                    d["AssignedToUser"] = tu
        n_teams = self.sizes["teams"]
        if n_teams and r.random() < 0.8:
            team = int(r.random() * n_teams)
            ts_ = self.team_summary(team)
            d["AssignedToTeamId"] = ts_["TeamId"]
            d["AssignedToTeam"] = ts_
        n_locs = min(self.sizes["locations"], 2000)
        if loc < 0 and n_locs:
            loc = int(r.random() * n_locs)
        if loc >= 0:
            lsum = self.location_summary(loc)
            d["LocationId"] = lsum["LocationId"]
            d["Location"] = lsum
            if r.random() < 0.1:
                d["LocationDetails"] = "Back of the classroom"
            rooms = self.rooms_of(loc)
            if rooms and r.random() < 0.6:
                room = rooms[int(r.random() * len(rooms))]
                rsum = self.room_summary(room)
                d["LocationRoomId"] = rsum["LocationRoomId"]
                d["LocationRoom"] = rsum
        d["IssueId"] = issue["IssueId"]
        d["Issue"] = issue
        d["WorkflowStepId"] = step["WorkflowStepId"]
        d["WorkflowStep"] = step
        assets = []
        n_assets = self.sizes["assets"]
        if device and n_assets and r.random() < 0.7:
            a = int(r.random() * n_assets)
            ac = self.asset_core(a)
            m = self.models[ac.model][0]
            assets.append({
                "TicketAssetId": guid(hseed(self.salt["tickets"], idx, 0xA55E7)),
                "AssetId": self.base_key("assets", a),
                "AssetTag": ac.tag,
                "SerialNumber": ac.serial,
                "ModelId": m["ModelId"],
                "ModelName": m["Name"],
                "CategoryId": m["CategoryId"],
                "AssetTypeId": self.asset_type_ids[ac.type_index],
                "CreatedDate": d["CreatedDate"],
            })
        d["Assets"] = assets
        d["Tags"] = []
        if closed and r.random() < 0.2:
            d["OverallSurveyRating"] = 1 + int(r.random() * 5)
        d["CustomFieldValues"] = self.cf_values(defs, mix(self.cf_salt["tickets"] ^ idx), version)
        if version:
            e = Random(hseed(self.salt["tickets"], idx, version))
            modified = max(modified, END + version * 41 + e.random() * 30)
            k = self.steps.index(step)
            step = self.steps[min(k + 1 + int(e.random() * 2), len(self.steps) - 1)]
            d["WorkflowStepId"] = step["WorkflowStepId"]
            d["WorkflowStep"] = step
            if step["IsClosed"] and not closed:
                d["IsClosed"] = True
                d["ClosedDate"] = ts(modified, e)
        d["ModifiedDate"] = ts(modified, r)
        return d

    _makers = {
        "users": _user,
        "assets": _asset,
        "locations": _location,
        "rooms": _room,
        "teams": _team,
        "tickets": _ticket,
    }
