"""What iiqsync copies: each IIQ list declared as data.

An entity names its route, method, request body, sort key, primary key and the
columns it lands as, each with the JSON path it is read from. Adding an entity is
a new declaration here, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Column kinds. The dialect registry maps each kind to a SQL type.
GUID = "guid"
TEXT = "text"  # bounded by [Database] StringLength where the database needs a bound
LONGTEXT = "longtext"  # descriptions, notes: unbounded
INT = "int"
BOOL = "bool"
FLOAT = "float"
MONEY = "money"
DATETIME = "datetime"

KINDS = (GUID, TEXT, LONGTEXT, INT, BOOL, FLOAT, MONEY, DATETIME)

# Custom-field entity type ids (reference §4.1) and the definitions' Strategy value.
ASSET_ENTITY_TYPE = "888891ac-91aa-e711-80c2-100dffa00002"
USER_ENTITY_TYPE = "888891ac-91aa-e711-80c2-100dffa00003"
TICKET_ENTITY_TYPE = "888891ac-91aa-e711-80c2-100dffa00001"

DEVICES_ASSET_TYPE = "2a1561e5-34ff-4fcf-87de-2a146f0e1c01"


@dataclass(frozen=True)
class Column:
    """One column of a final table, read from ``path`` in each item."""

    name: str
    kind: str
    path: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r} for {self.name}")
        if not self.path:
            object.__setattr__(self, "path", (self.name,))


@dataclass(frozen=True)
class CustomFields:
    """Where an entity's custom fields are defined and which table they land in."""

    strategy: str  # body "Strategy" of POST /custom-fields
    table_key: str  # key in the [Tables] section
    default_table: str


@dataclass(frozen=True)
class Entity:
    """A paged IIQ list and the table it is copied into."""

    name: str  # CLI and task argument: "assets"
    table_key: str  # key in the [Tables] section
    default_table: str
    route: str
    method: str  # "GET" or "POST"
    key: str  # primary key, also the unique sort key
    columns: tuple[Column, ...]
    body: dict | None = None
    max_page_size: int | None = None
    custom_fields: CustomFields | None = None
    sort_direction: str = "Ascending"
    extra_query: dict = field(default_factory=dict)

    @property
    def key_column(self) -> Column:
        return next(c for c in self.columns if c.name == self.key)


def _cols(*specs) -> tuple[Column, ...]:
    """Build columns from (name, kind) or (name, kind, "Dotted.Path") tuples."""
    out = []
    for spec in specs:
        name, kind, *path = spec
        out.append(Column(name, kind, tuple(path[0].split(".")) if path else ()))
    return tuple(out)


USERS = Entity(
    name="users",
    table_key="Users",
    default_table="Users",
    route="/api/v1.0/users",
    method="POST",
    key="UserId",
    body={"OnlyShowDeleted": False},
    max_page_size=1000,  # IIQ returns at most 1000 users per page
    custom_fields=CustomFields("AggregateUser", "UsersCustomFields", "UserCustomFields"),
    columns=_cols(
        ("UserId", GUID),
        ("SiteId", GUID),
        ("ProductId", GUID),
        ("CreatedDate", DATETIME),
        ("ModifiedDate", DATETIME),
        ("IsDeleted", BOOL),
        ("IsActive", BOOL),
        ("IsOnline", BOOL),
        ("IsOnlineLastUpdated", DATETIME),
        ("LocationId", GUID),
        ("LocationName", TEXT),
        ("Name", TEXT),
        ("FirstName", TEXT),
        ("LastName", TEXT),
        ("Email", TEXT),
        ("Username", TEXT),
        ("Phone", TEXT),
        ("SchoolIdNumber", TEXT),
        ("Grade", TEXT),
        ("Homeroom", TEXT),
        ("ExternalId", TEXT),
        ("InternalComments", LONGTEXT),
        ("RoleId", GUID),
        ("RoleName", TEXT, "Role.Name"),
        ("AuthenticatedBy", TEXT),
        ("AccountSetupProgress", INT),
        ("TrainingPercentComplete", INT),
        ("IsEmailVerified", BOOL),
        ("IsWelcomeEmailSent", BOOL),
        ("PreventProviderUpdates", BOOL),
        ("IsOutOfOffice", BOOL),
        ("Portal", INT),
    ),
)

ASSETS = Entity(
    name="assets",
    table_key="Assets",
    default_table="Assets",
    route="/api/v1.0/assets",
    method="POST",
    key="AssetId",
    # Filters are filled from [General] AssetTypes at request time (empty = every type).
    body={"OnlyShowDeleted": False, "Filters": []},
    custom_fields=CustomFields("AggregateAsset", "AssetsCustomFields", "AssetCustomFields"),
    columns=_cols(
        ("AssetId", GUID),
        ("SiteId", GUID),
        ("ProductId", GUID),
        ("CreatedDate", DATETIME),
        ("ModifiedDate", DATETIME),
        ("AssetTypeId", GUID),
        ("AssetTypeName", TEXT),
        ("IsDeleted", BOOL),
        ("IsTraining", BOOL),
        ("StatusTypeId", GUID),
        ("StatusName", TEXT, "Status.Name"),
        ("AssetTag", TEXT),
        ("SerialNumber", TEXT),
        ("ExternalId", TEXT),
        ("Name", TEXT),
        ("CanOwnerManage", BOOL),
        ("CanSubmitTicket", BOOL),
        ("IsFavorite", BOOL),
        ("ModelId", GUID),
        ("ModelName", TEXT, "Model.Name"),
        ("ManufacturerName", TEXT, "Model.Manufacturer.Name"),
        ("CategoryName", TEXT, "Model.Category.Name"),
        ("OwnerId", GUID),
        ("OwnerName", TEXT, "Owner.Name"),
        ("OwnerUsername", TEXT, "Owner.Username"),
        ("LocationId", GUID),
        ("LocationName", TEXT, "Location.Name"),
        ("LocationDetails", TEXT),
        ("LocationRoomId", GUID),
        ("LocationRoomName", TEXT, "LocationRoom.Name"),
        ("Notes", LONGTEXT),
        ("HasOpenTickets", BOOL),
        ("OpenTickets", INT),
        ("PurchasedDate", DATETIME),
        ("DeployedDate", DATETIME),
        ("RetiredDate", DATETIME),
        ("PurchasePrice", MONEY),
        ("PurchasePoNumber", TEXT),
        ("WarrantyExpirationDate", DATETIME),
        ("WarrantyInfo", TEXT),
        ("LastInventoryDate", DATETIME),
        ("InvoiceNumber", TEXT),
        ("Vendor", TEXT),
        ("InsuranceExpirationDate", DATETIME),
        ("InsuranceInfo", TEXT),
        ("FundingSourceId", GUID),
        ("IsReadOnly", BOOL),
        ("StorageUnitNumber", TEXT),
        ("StorageSlotNumber", INT),
        ("StorageLocationId", GUID),
        ("StorageLocationName", TEXT),
    ),
)

LOCATIONS = Entity(
    name="locations",
    table_key="Locations",
    default_table="Locations",
    route="/api/v1.0/locations",
    method="GET",
    key="LocationId",
    columns=_cols(
        ("LocationId", GUID),
        ("SiteId", GUID),
        ("Name", TEXT),
        ("Abbreviation", TEXT),
        ("CreatedDate", DATETIME),
        ("ModifiedDate", DATETIME),
        ("LocationTypeId", GUID),
        ("LocationTypeName", TEXT, "LocationType.Name"),
        ("AddressId", GUID),
        ("Attn", TEXT, "Address.Attn"),
        ("Street1", TEXT, "Address.Street1"),
        ("Street2", TEXT, "Address.Street2"),
        ("City", TEXT, "Address.City"),
        ("State", TEXT, "Address.State"),
        ("Zip", TEXT, "Address.Zip"),
        ("Country", TEXT, "Address.Country"),
        ("Latitude", FLOAT, "Address.Latitude"),
        ("Longitude", FLOAT, "Address.Longitude"),
        ("LogoId", GUID),
        ("FloorplanId", GUID),
        ("IsDeleted", BOOL),
    ),
)

ROOMS = Entity(
    name="rooms",
    table_key="Rooms",
    default_table="Rooms",
    route="/api/v1.0/locations/rooms",
    method="GET",
    key="LocationRoomId",
    columns=_cols(
        ("LocationRoomId", GUID),
        ("SiteId", GUID),
        ("Name", TEXT),
        ("LocationId", GUID),
        ("LocationName", TEXT),
        ("LocationAbbreviation", TEXT),
        ("LocationRoomTypeId", GUID),
        ("LocationRoomTypeName", TEXT),
        ("Description", LONGTEXT),
        ("IsAvailable", BOOL),
        ("IsExternallyAvailable", BOOL),
        ("IsDeleted", BOOL),
        ("CreatedDate", DATETIME),
        ("ModifiedDate", DATETIME),
    ),
)

TEAMS = Entity(
    name="teams",
    table_key="Teams",
    default_table="Teams",
    route="/api/v1.0/teams/all",
    method="GET",
    key="TeamId",
    columns=_cols(
        ("TeamId", GUID),
        ("SiteId", GUID),
        ("ProductId", GUID),
        ("TeamName", TEXT),
        ("MembersCount", INT),
        ("Tickets", INT),
        ("IsDeleted", BOOL),
        ("CreatedDate", DATETIME),
    ),
)

TICKETS = Entity(
    name="tickets",
    table_key="Tickets",
    default_table="Tickets",
    route="/api/v1.0/tickets",
    method="POST",
    key="TicketId",
    body={"OnlyShowDeleted": False, "FilterByViewPermission": True},
    custom_fields=CustomFields("AggregateTicket", "TicketsCustomFields", "TicketCustomFields"),
    columns=_cols(
        ("TicketId", GUID),
        ("SiteId", GUID),
        ("ProductId", GUID),
        ("TicketNumber", TEXT),
        ("Subject", TEXT),
        ("IssueDescription", LONGTEXT),
        ("CreatedDate", DATETIME),
        ("ModifiedDate", DATETIME),
        ("StartedDate", DATETIME),
        ("ClosedDate", DATETIME),
        ("DueDate", DATETIME),
        ("IsDeleted", BOOL),
        ("IsClosed", BOOL),
        ("IsPastDue", BOOL),
        ("IsIssueConfirmed", BOOL),
        ("IsUrgent", BOOL),
        ("Priority", INT),
        ("OwnerId", GUID),
        ("OwnerName", TEXT, "Owner.Name"),
        ("ForId", GUID),
        ("ForName", TEXT, "For.Name"),
        ("ForUsername", TEXT, "For.Username"),
        ("AssignedToUserId", GUID),
        ("AssignedToUserName", TEXT, "AssignedToUser.Name"),
        ("AssignedToTeamId", GUID),
        ("AssignedToTeamName", TEXT, "AssignedToTeam.TeamName"),
        ("LocationId", GUID),
        ("LocationName", TEXT, "Location.Name"),
        ("LocationRoomId", GUID),
        ("LocationRoomName", TEXT, "LocationRoom.Name"),
        ("IssueId", GUID),
        ("IssueName", TEXT, "Issue.Name"),
        ("IssueCategoryName", TEXT, "Issue.IssueCategoryName"),
        ("WorkflowStepId", GUID),
        ("StatusName", TEXT, "WorkflowStep.StatusName"),
        ("WorkflowStepName", TEXT, "WorkflowStep.StepName"),
    ),
)

ENTITIES: dict[str, Entity] = {
    e.name: e for e in (USERS, ASSETS, LOCATIONS, ROOMS, TEAMS, TICKETS)
}

CUSTOM_FIELDS_ROUTE = "/api/v1.0/custom-fields"


def get_entity(name: str) -> Entity:
    """Look an entity up by its name, with an error that lists the valid ones."""
    try:
        return ENTITIES[name.lower()]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name.lower(), list(ENTITIES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(
            f"unknown entity {name!r}{hint}; choose from {', '.join(ENTITIES)}"
        ) from None
