"""A release's terms: JSON with ODRL 2.2 names, read strictly, and the check a buyer's governance runs per use.

Terms say which actions a licensee may take on imported cubes (``permission``, each optionally limited by a use
count, an end time, or a time since the grant), which are refused outright (``prohibition``), the SPDX license
expression, a price label, and how long a buyer node may go without a fresh log checkpoint. Anything not permitted
is prohibited. The grammar, bounds and reasons are in docs/marketplace.md ("Terms").
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boolean
import license_expression

from memos_grpc import reasons
from memos_grpc.marketplace import ijson
from memos_grpc.primitives.bounds import MAX_SAFE_INTEGER, is_integer_in
from memos_grpc.primitives.canonical import canonical_json, format_time, parse_time

#: The actions terms may name (ODRL action names; ``transform`` derives caches or adapters from the cubes).
ACTIONS = ("import", "recall", "search", "export", "transform", "redistribute")
#: Constraint left operands (ODRL names); each takes the operator ``lteq`` only.
LEFT_OPERANDS = ("count", "dateTime", "elapsedTime")
OPERATOR = "lteq"

MAX_TERMS_BYTES = 64 * 1024
MAX_LICENSE_CHARS = 512
MAX_PRICE_LABEL_CHARS = 256
MIN_MAX_OFFLINE_SECONDS = 1
#: A little over a year: a node offline longer has no business holding licensed cubes.
MAX_MAX_OFFLINE_SECONDS = 366 * 86400
MIN_COUNT = 1
MAX_COUNT = MAX_SAFE_INTEGER
#: elapsedTime is at most 36,500 days (about a century) and at least one second.
MAX_ELAPSED = timedelta(days=36500)

_MEMBERS = {"license", "permission", "prohibition", "priceLabel", "maxOfflineSeconds"}
_REQUIRED = ("license", "permission", "maxOfflineSeconds")
_PERMISSION_MEMBERS = {"action", "constraint"}
_PROHIBITION_MEMBERS = {"action"}
_CONSTRAINT_MEMBERS = {"leftOperand", "operator", "rightOperand"}
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_NUMBER = r"(?:0|[1-9][0-9]{0,8})"
_ELAPSED = re.compile(
    rf"P(?:(?P<d>{_NUMBER})D)?(?:(?P<t>T)(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?"
)
#: SPDX user-defined license references (SPDX 2.3 annex D idstring); DocumentRef- prefixes are not accepted.
_LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]{1,200}")
#: Control characters (C0, DEL, C1) have no place in a label shown to people.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TermsError(ValueError):
    """The terms are refused; ``reason`` is stable (docs/marketplace.md, "Terms")."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Permission:
    """One permitted action and its limits (None: not limited that way)."""

    action: str
    #: At most this many uses in all (``count lteq N``).
    count: int | None = None
    #: No use after this instant (``dateTime lteq T``).
    until: datetime | None = None
    #: No use later than this long after the grant's start (``elapsedTime lteq D``).
    elapsed: timedelta | None = None


@dataclass(frozen=True)
class Decision:
    """Whether one more use is allowed; ``remaining`` is the uses left after it (None: no count limit)."""

    allowed: bool
    reason: str = ""
    remaining: int | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Terms:
    """A release's terms as read: permitted actions and their limits, prohibitions, license, price, offline allowance.

    Immutable; built by ``parse`` (from bytes) or ``from_json`` (a grant's terms), which raise ``TermsError`` with a
    stable reason for terms they refuse.
    """

    #: The bytes the terms were read from (for terms inside a grant: their canonical JSON).
    raw: bytes
    #: The JSON object, as read (a grant carries it verbatim).
    document: dict[str, Any]
    license: str
    permissions: tuple[Permission, ...]
    prohibitions: tuple[str, ...]
    price_label: str | None
    max_offline_seconds: int

    @classmethod
    def parse(cls, data: bytes) -> Terms:
        """Terms from their bytes, as I-JSON under the grammar of docs/marketplace.md; raises TermsError."""
        if len(data) > MAX_TERMS_BYTES:
            raise TermsError(reasons.TERMS_TOO_LARGE, f"the terms are {len(data)} bytes; at most {MAX_TERMS_BYTES}")
        try:
            document = ijson.loads(data)
        except ijson.IJsonError as exc:
            reason = {
                "ENCODING": reasons.TERMS_ENCODING_INVALID,
                "DUPLICATE_MEMBER": reasons.TERMS_DUPLICATE_MEMBER,
                "NUMBER": reasons.TERMS_NUMBER_INVALID,
            }.get(exc.problem, reasons.TERMS_JSON_INVALID)
            raise TermsError(reason, f"the terms are not strict I-JSON: {exc.message}") from exc
        return cls._from_document(document, data)

    @classmethod
    def from_json(cls, document: Any) -> Terms:
        """Terms from a JSON value already read strictly (a grant's ``terms``); ``raw`` is its canonical JSON."""
        terms = cls._from_document(document, b"")
        return cls(
            canonical_json(document),
            terms.document,
            terms.license,
            terms.permissions,
            terms.prohibitions,
            terms.price_label,
            terms.max_offline_seconds,
        )

    @classmethod
    def _from_document(cls, document: Any, raw: bytes) -> Terms:
        if not isinstance(document, dict):
            raise TermsError(reasons.TERMS_JSON_INVALID, "the terms must be a JSON object")
        _members(document, _MEMBERS, "the terms")
        for name in _REQUIRED:
            if name not in document:
                raise TermsError(reasons.TERMS_MISSING_MEMBER, f"the terms need {name!r}")
        license_text = check_license_expression(document["license"])
        permissions = _permissions(document["permission"])
        prohibitions = _prohibitions(document["prohibition"]) if "prohibition" in document else ()
        both = sorted({p.action for p in permissions} & set(prohibitions))
        if both:
            raise TermsError(reasons.TERMS_CONFLICT, f"{', '.join(both)} is both permitted and prohibited")
        price_label = document.get("priceLabel")
        if price_label is not None and (
            not isinstance(price_label, str)
            or not 1 <= len(price_label) <= MAX_PRICE_LABEL_CHARS
            or _CONTROL.search(price_label)
        ):
            raise TermsError(
                reasons.TERMS_VALUE_INVALID,
                f"priceLabel must be 1 to {MAX_PRICE_LABEL_CHARS} characters of text without control characters",
            )
        offline = document["maxOfflineSeconds"]
        if not is_integer_in(offline, MIN_MAX_OFFLINE_SECONDS, MAX_MAX_OFFLINE_SECONDS):
            raise TermsError(
                reasons.TERMS_VALUE_INVALID,
                f"maxOfflineSeconds must be an integer from {MIN_MAX_OFFLINE_SECONDS} to {MAX_MAX_OFFLINE_SECONDS}",
            )
        return cls(raw, document, license_text, permissions, prohibitions, price_label, offline)

    def digest(self) -> str:
        """``sha256:<hex>`` of the exact bytes the terms were read from."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    def permission(self, action: str) -> Permission | None:
        return next((p for p in self.permissions if p.action == action), None)

    def permits(self, action: str, uses_so_far: int, granted_at: datetime, now: datetime) -> Decision:
        """May the licensee use the cubes for ``action`` once more, having used them ``uses_so_far`` times?

        ``granted_at`` is the grant's start (its ``notBefore``), from which ``elapsedTime`` runs. Every limit is
        inclusive (ODRL ``lteq``): the Nth use of ``count lteq N`` is allowed, and a use at ``dateTime`` itself.
        """
        if action not in ACTIONS:
            raise ValueError(f"{action!r} is not an action terms can name ({', '.join(ACTIONS)})")
        if uses_so_far < 0:
            raise ValueError("uses_so_far is never negative")
        if action in self.prohibitions:
            return Decision(False, reasons.TERMS_ACTION_PROHIBITED, 0)
        permission = self.permission(action)
        if permission is None:
            return Decision(False, reasons.TERMS_ACTION_NOT_PERMITTED, 0)
        if permission.until is not None and now > permission.until:
            return Decision(False, reasons.TERMS_DATETIME_PASSED, 0)
        if permission.elapsed is not None and now - granted_at > permission.elapsed:
            return Decision(False, reasons.TERMS_ELAPSED_TIME_PASSED, 0)
        if permission.count is None:
            return Decision(True, "", None)
        if uses_so_far >= permission.count:
            return Decision(False, reasons.TERMS_COUNT_EXHAUSTED, 0)
        return Decision(True, "", permission.count - uses_so_far - 1)


@functools.cache
def _licensing() -> license_expression.Licensing:
    """The SPDX licensing of license-expression: the SPDX license and exception list, shipped with the package."""
    return license_expression.get_spdx_licensing()


def check_license_expression(text: Any) -> str:
    """``text`` if it is an SPDX license expression of known ids in canonical form; raises TermsError.

    Canonical form is what the SPDX library renders: ids spelled as in the SPDX list (no deprecated ids),
    operators in upper case, single spaces, parentheses exactly around nested compound expressions. Ids are
    known SPDX license or exception ids, or ``LicenseRef-<idstring>`` for custom and AI-specific licenses.
    """
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_LICENSE_CHARS or not text.isascii():
        raise TermsError(
            reasons.TERMS_LICENSE_INVALID,
            f"license must be an SPDX license expression of 1 to {MAX_LICENSE_CHARS} ASCII characters",
        )
    licensing = _licensing()
    try:
        parsed = licensing.parse(text, validate=False, strict=True)
    # The library's parser fails with IndexError on "()" (an empty group), and with AssertionError or TypeError on
    # an operator right after an opening parenthesis ("(OR MIT"): none of them is an expression.
    except (license_expression.ExpressionError, boolean.ParseError, IndexError, AssertionError, TypeError) as exc:
        detail = f": {exc}" if isinstance(exc, license_expression.ExpressionError | boolean.ParseError) else ""
        raise TermsError(
            reasons.TERMS_LICENSE_INVALID, f"license {text[:80]!r} is not an SPDX expression{detail}"
        ) from exc
    if parsed is None:
        raise TermsError(reasons.TERMS_LICENSE_INVALID, "license is empty")
    known = licensing.known_symbols
    for symbol in licensing.license_symbols(parsed, unique=True, decompose=True):
        if symbol.key not in known and not _LICENSE_REF.fullmatch(symbol.key):
            raise TermsError(
                reasons.TERMS_LICENSE_UNKNOWN,
                f"{symbol.key[:80]!r} is not an SPDX license id; write a custom license as LicenseRef-<id>",
            )
    rendered = str(parsed.render())
    if rendered != text:
        raise TermsError(reasons.TERMS_LICENSE_INVALID, f"license must be written in canonical SPDX form: {rendered!r}")
    return text


def _members(document: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise TermsError(
            reasons.TERMS_UNKNOWN_MEMBER,
            f"{where} hold unknown member(s) {', '.join(repr(n[:60]) for n in unknown[:5])}; "
            f"the members are {', '.join(sorted(allowed))} (names are case-sensitive)",
        )


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in ACTIONS:
        raise TermsError(reasons.TERMS_ACTION_UNKNOWN, f"{where}.action must be one of {', '.join(ACTIONS)}")
    return value


def _permissions(value: Any) -> tuple[Permission, ...]:
    if not isinstance(value, list):
        raise TermsError(reasons.TERMS_VALUE_INVALID, "permission must be a list of {action, constraint} objects")
    permissions: list[Permission] = []
    for index, item in enumerate(value):
        where = f"permission[{index}]"
        if not isinstance(item, dict):
            raise TermsError(reasons.TERMS_VALUE_INVALID, f"{where} must be an object")
        _members(item, _PERMISSION_MEMBERS, where)
        if "action" not in item:
            raise TermsError(reasons.TERMS_MISSING_MEMBER, f"{where} needs 'action'")
        action = _action(item["action"], where)
        if any(p.action == action for p in permissions):
            raise TermsError(reasons.TERMS_ACTION_REPEATED, f"{action} is permitted twice; give it one permission")
        permissions.append(_constrained(action, item.get("constraint"), where, "constraint" in item))
    return tuple(permissions)


def _constrained(action: str, value: Any, where: str, present: bool) -> Permission:
    if not present:
        return Permission(action)
    # An empty list would be a second way to write "no constraint": absent is the one way.
    if not isinstance(value, list) or not value:
        raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, f"{where}.constraint must be a non-empty list (or absent)")
    limits: dict[str, Any] = {}
    for index, item in enumerate(value):
        at = f"{where}.constraint[{index}]"
        if not isinstance(item, dict):
            raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, f"{at} must be an object")
        _members(item, _CONSTRAINT_MEMBERS, at)
        for name in sorted(_CONSTRAINT_MEMBERS):
            if name not in item:
                raise TermsError(reasons.TERMS_MISSING_MEMBER, f"{at} needs {name!r}")
        operand = item["leftOperand"]
        if operand not in LEFT_OPERANDS:
            raise TermsError(
                reasons.TERMS_CONSTRAINT_INVALID, f"{at}.leftOperand must be one of {', '.join(LEFT_OPERANDS)}"
            )
        if item["operator"] != OPERATOR:
            raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, f"{at}.operator must be {OPERATOR!r}")
        if operand in limits:
            raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, f"{where} limits {operand} twice")
        limits[operand] = _right_operand(operand, item["rightOperand"], at)
    return Permission(action, limits.get("count"), limits.get("dateTime"), limits.get("elapsedTime"))


def _right_operand(operand: str, value: Any, at: str) -> Any:
    if operand == "count":
        if not is_integer_in(value, MIN_COUNT, MAX_COUNT):
            raise TermsError(
                reasons.TERMS_CONSTRAINT_INVALID, f"{at}: a count is an integer from {MIN_COUNT} to 2^53 - 1"
            )
        return value
    if operand == "dateTime":
        return _date_time(value, at)
    return parse_elapsed_time(value, at)


def _date_time(value: Any, at: str) -> datetime:
    problem = f"{at}: a dateTime is an RFC 3339 UTC time to the second, like 2027-01-01T00:00:00Z"
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, problem)
    try:
        when = parse_time(value)
    except ValueError as exc:
        raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, f"{problem}: {exc}") from exc
    if format_time(when) != value:
        raise TermsError(reasons.TERMS_CONSTRAINT_INVALID, problem)
    return when


def parse_elapsed_time(value: Any, at: str = "elapsedTime") -> timedelta:
    """An ISO 8601 duration of the subset ``PnDTnHnMnS`` (docs/marketplace.md); raises TermsError."""
    match = _ELAPSED.fullmatch(value) if isinstance(value, str) else None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k != "t"} if match else {}
    # "P" alone, or "T" with nothing after it, is no duration.
    if match is None or not parts or (match["t"] and not parts.keys() & {"h", "m", "s"}):
        raise TermsError(
            reasons.TERMS_CONSTRAINT_INVALID,
            f"{at}: an elapsedTime is an ISO 8601 duration PnDTnHnMnS (days, hours, minutes, seconds), like P30D",
        )
    elapsed = timedelta(
        days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0)
    )
    if not timedelta(seconds=1) <= elapsed <= MAX_ELAPSED:
        raise TermsError(
            reasons.TERMS_CONSTRAINT_INVALID, f"{at}: an elapsedTime is from 1 second to {MAX_ELAPSED.days} days"
        )
    return elapsed


def _prohibitions(value: Any) -> tuple[str, ...]:
    # A non-empty list when present: absent is the one way to prohibit nothing explicitly.
    if not isinstance(value, list) or not value:
        raise TermsError(
            reasons.TERMS_VALUE_INVALID, "prohibition must be a non-empty list of {action} objects (or absent)"
        )
    actions: list[str] = []
    for index, item in enumerate(value):
        where = f"prohibition[{index}]"
        if not isinstance(item, dict):
            raise TermsError(reasons.TERMS_VALUE_INVALID, f"{where} must be an object")
        _members(item, _PROHIBITION_MEMBERS, where)
        if "action" not in item:
            raise TermsError(reasons.TERMS_MISSING_MEMBER, f"{where} needs 'action'")
        action = _action(item["action"], where)
        if action in actions:
            raise TermsError(reasons.TERMS_ACTION_REPEATED, f"{action} is prohibited twice")
        actions.append(action)
    return tuple(actions)
