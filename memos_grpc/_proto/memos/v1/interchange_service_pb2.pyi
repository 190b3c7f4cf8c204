import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from memos_grpc._proto.memos.v1 import trust_pb2 as _trust_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_SKIP: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_NEW_VERSION: _ClassVar[ConflictPolicy]
    CONFLICT_POLICY_REPLACE: _ClassVar[ConflictPolicy]
CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy
CONFLICT_POLICY_SKIP: ConflictPolicy
CONFLICT_POLICY_NEW_VERSION: ConflictPolicy
CONFLICT_POLICY_REPLACE: ConflictPolicy

class ExportBundleRequest(_message.Message):
    __slots__ = ("parent", "names", "filter", "release")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    names: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    release: ReleaseInfo
    def __init__(self, parent: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ..., release: _Optional[_Union[ReleaseInfo, _Mapping]] = ...) -> None: ...

class ReleaseInfo(_message.Message):
    __slots__ = ("listing", "release", "license", "terms_digest")
    LISTING_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    TERMS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    listing: str
    release: str
    license: str
    terms_digest: str
    def __init__(self, listing: _Optional[str] = ..., release: _Optional[str] = ..., license: _Optional[str] = ..., terms_digest: _Optional[str] = ...) -> None: ...

class ExportBundleResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class TrustPolicy(_message.Message):
    __slots__ = ("role", "required_key_ids")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    role: _trust_pb2.KeyRole
    required_key_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, role: _Optional[_Union[_trust_pb2.KeyRole, str]] = ..., required_key_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ImportBundleRequest(_message.Message):
    __slots__ = ("parent", "conflict_policy", "trust_policy", "chunk", "license")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    TRUST_POLICY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    parent: str
    conflict_policy: ConflictPolicy
    trust_policy: TrustPolicy
    chunk: bytes
    license: ReleaseLicense
    def __init__(self, parent: _Optional[str] = ..., conflict_policy: _Optional[_Union[ConflictPolicy, str]] = ..., trust_policy: _Optional[_Union[TrustPolicy, _Mapping]] = ..., chunk: _Optional[bytes] = ..., license: _Optional[_Union[ReleaseLicense, _Mapping]] = ...) -> None: ...

class ReleaseLicense(_message.Message):
    __slots__ = ("grant", "proof")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    grant: bytes
    proof: str
    def __init__(self, grant: _Optional[bytes] = ..., proof: _Optional[str] = ...) -> None: ...

class SignatureCheck(_message.Message):
    __slots__ = ("key_id_hint", "key_id", "status", "principal")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[SignatureCheck.Status]
        STATUS_COUNTED: _ClassVar[SignatureCheck.Status]
        STATUS_DUPLICATE_KEY: _ClassVar[SignatureCheck.Status]
        STATUS_UNKNOWN_KEY: _ClassVar[SignatureCheck.Status]
        STATUS_BAD_SIGNATURE: _ClassVar[SignatureCheck.Status]
        STATUS_KEY_REVOKED: _ClassVar[SignatureCheck.Status]
        STATUS_KEY_EXPIRED: _ClassVar[SignatureCheck.Status]
    STATUS_UNSPECIFIED: SignatureCheck.Status
    STATUS_COUNTED: SignatureCheck.Status
    STATUS_DUPLICATE_KEY: SignatureCheck.Status
    STATUS_UNKNOWN_KEY: SignatureCheck.Status
    STATUS_BAD_SIGNATURE: SignatureCheck.Status
    STATUS_KEY_REVOKED: SignatureCheck.Status
    STATUS_KEY_EXPIRED: SignatureCheck.Status
    KEY_ID_HINT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    key_id_hint: str
    key_id: str
    status: SignatureCheck.Status
    principal: str
    def __init__(self, key_id_hint: _Optional[str] = ..., key_id: _Optional[str] = ..., status: _Optional[_Union[SignatureCheck.Status, str]] = ..., principal: _Optional[str] = ...) -> None: ...

class AppliedRedaction(_message.Message):
    __slots__ = ("sensitivity_label", "action", "cube_count")
    SENSITIVITY_LABEL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CUBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    sensitivity_label: str
    action: str
    cube_count: int
    def __init__(self, sensitivity_label: _Optional[str] = ..., action: _Optional[str] = ..., cube_count: _Optional[int] = ...) -> None: ...

class BundleVerification(_message.Message):
    __slots__ = ("valid", "reason", "message", "statement_digest", "role", "threshold", "signatures", "statement", "cube_count", "blob_count", "blob_bytes", "bundle_bytes", "exporter_principal", "exporter_node", "source_server", "create_time", "embedding_fingerprint", "model_fingerprints", "redactions")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    CUBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOB_COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOB_BYTES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_NODE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SERVER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    REDACTIONS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    message: str
    statement_digest: str
    role: _trust_pb2.KeyRole
    threshold: int
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureCheck]
    statement: bytes
    cube_count: int
    blob_count: int
    blob_bytes: int
    bundle_bytes: int
    exporter_principal: str
    exporter_node: str
    source_server: str
    create_time: _timestamp_pb2.Timestamp
    embedding_fingerprint: str
    model_fingerprints: _containers.RepeatedScalarFieldContainer[str]
    redactions: _containers.RepeatedCompositeFieldContainer[AppliedRedaction]
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., statement_digest: _Optional[str] = ..., role: _Optional[_Union[_trust_pb2.KeyRole, str]] = ..., threshold: _Optional[int] = ..., signatures: _Optional[_Iterable[_Union[SignatureCheck, _Mapping]]] = ..., statement: _Optional[bytes] = ..., cube_count: _Optional[int] = ..., blob_count: _Optional[int] = ..., blob_bytes: _Optional[int] = ..., bundle_bytes: _Optional[int] = ..., exporter_principal: _Optional[str] = ..., exporter_node: _Optional[str] = ..., source_server: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., embedding_fingerprint: _Optional[str] = ..., model_fingerprints: _Optional[_Iterable[str]] = ..., redactions: _Optional[_Iterable[_Union[AppliedRedaction, _Mapping]]] = ...) -> None: ...

class ImportedCube(_message.Message):
    __slots__ = ("provenance_id", "name", "action", "reembedded")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[ImportedCube.Action]
        ACTION_CREATED: _ClassVar[ImportedCube.Action]
        ACTION_SKIPPED: _ClassVar[ImportedCube.Action]
        ACTION_NEW_VERSION: _ClassVar[ImportedCube.Action]
        ACTION_REPLACED: _ClassVar[ImportedCube.Action]
    ACTION_UNSPECIFIED: ImportedCube.Action
    ACTION_CREATED: ImportedCube.Action
    ACTION_SKIPPED: ImportedCube.Action
    ACTION_NEW_VERSION: ImportedCube.Action
    ACTION_REPLACED: ImportedCube.Action
    PROVENANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_FIELD_NUMBER: _ClassVar[int]
    provenance_id: str
    name: str
    action: ImportedCube.Action
    reembedded: bool
    def __init__(self, provenance_id: _Optional[str] = ..., name: _Optional[str] = ..., action: _Optional[_Union[ImportedCube.Action, str]] = ..., reembedded: _Optional[bool] = ...) -> None: ...

class ImportBundleResponse(_message.Message):
    __slots__ = ("verification", "cubes", "created_count", "skipped_count", "new_version_count", "replaced_count", "reembedded_count")
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    CUBES_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEW_VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    verification: BundleVerification
    cubes: _containers.RepeatedCompositeFieldContainer[ImportedCube]
    created_count: int
    skipped_count: int
    new_version_count: int
    replaced_count: int
    reembedded_count: int
    def __init__(self, verification: _Optional[_Union[BundleVerification, _Mapping]] = ..., cubes: _Optional[_Iterable[_Union[ImportedCube, _Mapping]]] = ..., created_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., new_version_count: _Optional[int] = ..., replaced_count: _Optional[int] = ..., reembedded_count: _Optional[int] = ...) -> None: ...

class VerifyBundleRequest(_message.Message):
    __slots__ = ("trust_policy", "chunk")
    TRUST_POLICY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    trust_policy: TrustPolicy
    chunk: bytes
    def __init__(self, trust_policy: _Optional[_Union[TrustPolicy, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class VerifyBundleResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: BundleVerification
    def __init__(self, verification: _Optional[_Union[BundleVerification, _Mapping]] = ...) -> None: ...

class ImportFromPeerRequest(_message.Message):
    __slots__ = ("parent", "peer_target", "peer_token", "peer_ca_certificates", "peer_tls_server_name", "peer_plaintext", "selection", "conflict_policy", "trust_policy")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PEER_TARGET_FIELD_NUMBER: _ClassVar[int]
    PEER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PEER_CA_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    PEER_TLS_SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    PEER_PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_POLICY_FIELD_NUMBER: _ClassVar[int]
    TRUST_POLICY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    peer_target: str
    peer_token: str
    peer_ca_certificates: bytes
    peer_tls_server_name: str
    peer_plaintext: bool
    selection: ExportBundleRequest
    conflict_policy: ConflictPolicy
    trust_policy: TrustPolicy
    def __init__(self, parent: _Optional[str] = ..., peer_target: _Optional[str] = ..., peer_token: _Optional[str] = ..., peer_ca_certificates: _Optional[bytes] = ..., peer_tls_server_name: _Optional[str] = ..., peer_plaintext: _Optional[bool] = ..., selection: _Optional[_Union[ExportBundleRequest, _Mapping]] = ..., conflict_policy: _Optional[_Union[ConflictPolicy, str]] = ..., trust_policy: _Optional[_Union[TrustPolicy, _Mapping]] = ...) -> None: ...
