import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from memos_grpc._proto.memos.v1 import cube_pb2 as _cube_pb2
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as _interchange_service_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as _vault_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TermsAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TERMS_ACTION_UNSPECIFIED: _ClassVar[TermsAction]
    TERMS_ACTION_IMPORT: _ClassVar[TermsAction]
    TERMS_ACTION_RECALL: _ClassVar[TermsAction]
    TERMS_ACTION_SEARCH: _ClassVar[TermsAction]
    TERMS_ACTION_EXPORT: _ClassVar[TermsAction]
    TERMS_ACTION_TRANSFORM: _ClassVar[TermsAction]
    TERMS_ACTION_REDISTRIBUTE: _ClassVar[TermsAction]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_PUBLISH: _ClassVar[EventType]
    EVENT_TYPE_YANK: _ClassVar[EventType]
    EVENT_TYPE_REVOKE: _ClassVar[EventType]
TERMS_ACTION_UNSPECIFIED: TermsAction
TERMS_ACTION_IMPORT: TermsAction
TERMS_ACTION_RECALL: TermsAction
TERMS_ACTION_SEARCH: TermsAction
TERMS_ACTION_EXPORT: TermsAction
TERMS_ACTION_TRANSFORM: TermsAction
TERMS_ACTION_REDISTRIBUTE: TermsAction
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_PUBLISH: EventType
EVENT_TYPE_YANK: EventType
EVENT_TYPE_REVOKE: EventType

class Listing(_message.Message):
    __slots__ = ("name", "title", "description", "tags", "owner", "publisher_threshold", "publisher_keys", "latest_release", "license", "license_ids", "memory_types", "release_count", "create_time", "update_time", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_KEYS_FIELD_NUMBER: _ClassVar[int]
    LATEST_RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_IDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPES_FIELD_NUMBER: _ClassVar[int]
    RELEASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    description: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    owner: str
    publisher_threshold: int
    publisher_keys: _containers.RepeatedScalarFieldContainer[str]
    latest_release: str
    license: str
    license_ids: _containers.RepeatedScalarFieldContainer[str]
    memory_types: _containers.RepeatedScalarFieldContainer[_cube_pb2.MemoryType]
    release_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., owner: _Optional[str] = ..., publisher_threshold: _Optional[int] = ..., publisher_keys: _Optional[_Iterable[str]] = ..., latest_release: _Optional[str] = ..., license: _Optional[str] = ..., license_ids: _Optional[_Iterable[str]] = ..., memory_types: _Optional[_Iterable[_Union[_cube_pb2.MemoryType, str]]] = ..., release_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class TermsConstraint(_message.Message):
    __slots__ = ("count", "date_time", "elapsed_time")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_TIME_FIELD_NUMBER: _ClassVar[int]
    count: int
    date_time: _timestamp_pb2.Timestamp
    elapsed_time: _duration_pb2.Duration
    def __init__(self, count: _Optional[int] = ..., date_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., elapsed_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TermsPermission(_message.Message):
    __slots__ = ("action", "constraints")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    action: TermsAction
    constraints: _containers.RepeatedCompositeFieldContainer[TermsConstraint]
    def __init__(self, action: _Optional[_Union[TermsAction, str]] = ..., constraints: _Optional[_Iterable[_Union[TermsConstraint, _Mapping]]] = ...) -> None: ...

class Terms(_message.Message):
    __slots__ = ("json", "digest", "license", "permissions", "prohibitions", "price_label", "max_offline_seconds")
    JSON_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    PROHIBITIONS_FIELD_NUMBER: _ClassVar[int]
    PRICE_LABEL_FIELD_NUMBER: _ClassVar[int]
    MAX_OFFLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    json: str
    digest: str
    license: str
    permissions: _containers.RepeatedCompositeFieldContainer[TermsPermission]
    prohibitions: _containers.RepeatedScalarFieldContainer[TermsAction]
    price_label: str
    max_offline_seconds: int
    def __init__(self, json: _Optional[str] = ..., digest: _Optional[str] = ..., license: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[TermsPermission, _Mapping]]] = ..., prohibitions: _Optional[_Iterable[_Union[TermsAction, str]]] = ..., price_label: _Optional[str] = ..., max_offline_seconds: _Optional[int] = ...) -> None: ...

class Yank(_message.Message):
    __slots__ = ("reason", "yank_time", "log_index")
    REASON_FIELD_NUMBER: _ClassVar[int]
    YANK_TIME_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    reason: str
    yank_time: _timestamp_pb2.Timestamp
    log_index: int
    def __init__(self, reason: _Optional[str] = ..., yank_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., log_index: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("name", "state", "yank", "bundle_digest", "size_bytes", "statement_digest", "license", "terms", "cube_count", "memory_types", "embedding_fingerprint", "model_fingerprints", "publisher", "signer_keys", "log_index", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Release.State]
        STATE_ACTIVE: _ClassVar[Release.State]
        STATE_YANKED: _ClassVar[Release.State]
    STATE_UNSPECIFIED: Release.State
    STATE_ACTIVE: Release.State
    STATE_YANKED: Release.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    YANK_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    CUBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    SIGNER_KEYS_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: Release.State
    yank: Yank
    bundle_digest: str
    size_bytes: int
    statement_digest: str
    license: str
    terms: Terms
    cube_count: int
    memory_types: _containers.RepeatedScalarFieldContainer[_cube_pb2.MemoryType]
    embedding_fingerprint: str
    model_fingerprints: _containers.RepeatedScalarFieldContainer[str]
    publisher: str
    signer_keys: _containers.RepeatedScalarFieldContainer[str]
    log_index: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[Release.State, str]] = ..., yank: _Optional[_Union[Yank, _Mapping]] = ..., bundle_digest: _Optional[str] = ..., size_bytes: _Optional[int] = ..., statement_digest: _Optional[str] = ..., license: _Optional[str] = ..., terms: _Optional[_Union[Terms, _Mapping]] = ..., cube_count: _Optional[int] = ..., memory_types: _Optional[_Iterable[_Union[_cube_pb2.MemoryType, str]]] = ..., embedding_fingerprint: _Optional[str] = ..., model_fingerprints: _Optional[_Iterable[str]] = ..., publisher: _Optional[str] = ..., signer_keys: _Optional[_Iterable[str]] = ..., log_index: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("reason", "revoke_time", "log_index")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    reason: str
    revoke_time: _timestamp_pb2.Timestamp
    log_index: int
    def __init__(self, reason: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., log_index: _Optional[int] = ...) -> None: ...

class License(_message.Message):
    __slots__ = ("name", "release", "licensee", "licensee_key", "not_before", "not_after", "acquirer", "terms", "grant_envelope", "grant_digest", "log_index", "tlog_proof", "state", "revocation", "release_yank", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[License.State]
        STATE_ACTIVE: _ClassVar[License.State]
        STATE_REVOKED: _ClassVar[License.State]
    STATE_UNSPECIFIED: License.State
    STATE_ACTIVE: License.State
    STATE_REVOKED: License.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSEE_FIELD_NUMBER: _ClassVar[int]
    LICENSEE_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    GRANT_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    GRANT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    TLOG_PROOF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    RELEASE_YANK_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    release: str
    licensee: str
    licensee_key: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    acquirer: str
    terms: Terms
    grant_envelope: bytes
    grant_digest: str
    log_index: int
    tlog_proof: str
    state: License.State
    revocation: Revocation
    release_yank: Yank
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., release: _Optional[str] = ..., licensee: _Optional[str] = ..., licensee_key: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acquirer: _Optional[str] = ..., terms: _Optional[_Union[Terms, _Mapping]] = ..., grant_envelope: _Optional[bytes] = ..., grant_digest: _Optional[str] = ..., log_index: _Optional[int] = ..., tlog_proof: _Optional[str] = ..., state: _Optional[_Union[License.State, str]] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ..., release_yank: _Optional[_Union[Yank, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateListingRequest(_message.Message):
    __slots__ = ("listing_id", "listing", "validate_only")
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    listing_id: str
    listing: Listing
    validate_only: bool
    def __init__(self, listing_id: _Optional[str] = ..., listing: _Optional[_Union[Listing, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetListingRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListListingsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListListingsResponse(_message.Message):
    __slots__ = ("listings", "next_page_token")
    LISTINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    listings: _containers.RepeatedCompositeFieldContainer[Listing]
    next_page_token: str
    def __init__(self, listings: _Optional[_Iterable[_Union[Listing, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchListingsRequest(_message.Message):
    __slots__ = ("text", "mode", "filter", "top_k")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    text: str
    mode: _vault_service_pb2.SearchMode
    filter: str
    top_k: int
    def __init__(self, text: _Optional[str] = ..., mode: _Optional[_Union[_vault_service_pb2.SearchMode, str]] = ..., filter: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class ScoredListing(_message.Message):
    __slots__ = ("listing", "score")
    LISTING_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    listing: Listing
    score: float
    def __init__(self, listing: _Optional[_Union[Listing, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchListingsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoredListing]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoredListing, _Mapping]]] = ...) -> None: ...

class UpdateListingRequest(_message.Message):
    __slots__ = ("listing", "update_mask")
    LISTING_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    listing: Listing
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, listing: _Optional[_Union[Listing, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class PublishReleaseRequest(_message.Message):
    __slots__ = ("parent", "release_id", "terms_json", "expected_digest", "expected_size", "validate_only", "chunk")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TERMS_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    parent: str
    release_id: str
    terms_json: str
    expected_digest: str
    expected_size: int
    validate_only: bool
    chunk: bytes
    def __init__(self, parent: _Optional[str] = ..., release_id: _Optional[str] = ..., terms_json: _Optional[str] = ..., expected_digest: _Optional[str] = ..., expected_size: _Optional[int] = ..., validate_only: _Optional[bool] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PublishReleaseResponse(_message.Message):
    __slots__ = ("release", "tlog_proof", "verification")
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    TLOG_PROOF_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    release: Release
    tlog_proof: str
    verification: _interchange_service_pb2.BundleVerification
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ..., tlog_proof: _Optional[str] = ..., verification: _Optional[_Union[_interchange_service_pb2.BundleVerification, _Mapping]] = ...) -> None: ...

class GetReleaseRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListReleasesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter", "show_yanked")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SHOW_YANKED_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    show_yanked: bool
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., show_yanked: _Optional[bool] = ...) -> None: ...

class ListReleasesResponse(_message.Message):
    __slots__ = ("releases", "next_page_token")
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[Release]
    next_page_token: str
    def __init__(self, releases: _Optional[_Iterable[_Union[Release, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DownloadReleaseRequest(_message.Message):
    __slots__ = ("name", "license")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    license: str
    def __init__(self, name: _Optional[str] = ..., license: _Optional[str] = ...) -> None: ...

class DownloadReleaseResponse(_message.Message):
    __slots__ = ("release", "chunk")
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    release: Release
    chunk: bytes
    def __init__(self, release: _Optional[_Union[Release, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class YankReleaseRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AcquireLicenseRequest(_message.Message):
    __slots__ = ("license",)
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    license: License
    def __init__(self, license: _Optional[_Union[License, _Mapping]] = ...) -> None: ...

class GetLicenseRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListLicensesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListLicensesResponse(_message.Message):
    __slots__ = ("licenses", "next_page_token")
    LICENSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    licenses: _containers.RepeatedCompositeFieldContainer[License]
    next_page_token: str
    def __init__(self, licenses: _Optional[_Iterable[_Union[License, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeLicenseRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("types", "tags", "listings", "query", "min_score", "start_index")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LISTINGS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[EventType]
    tags: _containers.RepeatedScalarFieldContainer[str]
    listings: _containers.RepeatedScalarFieldContainer[str]
    query: str
    min_score: float
    start_index: int
    def __init__(self, types: _Optional[_Iterable[_Union[EventType, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., listings: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ..., min_score: _Optional[float] = ..., start_index: _Optional[int] = ...) -> None: ...

class MarketplaceEvent(_message.Message):
    __slots__ = ("log_index", "type", "entry", "tree_size", "release", "license", "revocation", "score", "ref_index")
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REF_INDEX_FIELD_NUMBER: _ClassVar[int]
    log_index: int
    type: EventType
    entry: bytes
    tree_size: int
    release: Release
    license: str
    revocation: Revocation
    score: float
    ref_index: int
    def __init__(self, log_index: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., entry: _Optional[bytes] = ..., tree_size: _Optional[int] = ..., release: _Optional[_Union[Release, _Mapping]] = ..., license: _Optional[str] = ..., revocation: _Optional[_Union[Revocation, _Mapping]] = ..., score: _Optional[float] = ..., ref_index: _Optional[int] = ...) -> None: ...
