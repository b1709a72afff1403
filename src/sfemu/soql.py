"""SOQL: parse, check against the schema and the caller's access, run over in-memory records.

Supported: SELECT of fields and one-level parent relationship fields (``Account.Name``),
``COUNT()`` and ``COUNT(field)``; FROM one object (optional alias); WHERE with
= != <> < > <= >= LIKE IN / NOT IN INCLUDES EXCLUDES, AND / OR / NOT and parentheses (mixing
AND and OR without parentheses is an error, as in Salesforce), literals (strings, numbers,
true/false/null, dates, datetimes, TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n,
THIS_MONTH, THIS_YEAR); ORDER BY with ASC/DESC and NULLS FIRST/LAST; LIMIT and OFFSET.
Not supported (MALFORMED_QUERY says so): subqueries, GROUP BY, HAVING, functions other than
COUNT, semi-joins, FOR UPDATE, WITH, TYPEOF.

String comparisons are case-insensitive and Ids compare on their 18-character form, as in
Salesforce. Filters on unique / external id fields and on Id use the store's indexes.
"""

from __future__ import annotations

import calendar
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import ids
from .errors import SalesforceError, malformed_query, unknown_sobject_type
from .permissions import AccessView, can_see
from .schema import FieldDef, FieldType, SObjectDef
from .validation import TYPE_NAMES, format_datetime, is_valid_date, parse_datetime

if TYPE_CHECKING:
    from .dml import Caller
    from .emulator import Emulator

MAX_OFFSET = 2000
CURSOR_LIFETIME_S = 15 * 60
MAX_CURSORS = 1000

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "like",
    "in",
    "includes",
    "excludes",
    "order",
    "by",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "limit",
    "offset",
    "true",
    "false",
    "null",
    "group",
    "having",
    "with",
    "for",
    "using",
    "typeof",
}
_UNSUPPORTED = {
    "group": "GROUP BY",
    "having": "HAVING",
    "with": "WITH",
    "for": "FOR",
    "using": "USING SCOPE",
    "typeof": "TYPEOF",
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "'": "'",
    '"': '"',
    "\\": "\\",
    "%": "\\%",
    "_": "\\_",
}


@dataclass
class Token:
    """One lexical token."""

    kind: str
    text: str
    pos: int

    @property
    def lower(self) -> str:
        """Lower-case text (keywords are case-insensitive)."""
        return self.text.lower()


@dataclass
class FieldRef:
    """A field as written in the query (``Name``, ``Account.Name``) and where."""

    path: str
    pos: int


@dataclass
class Literal:
    """A literal value: kind is string, number, boolean, null, date, datetime or range."""

    kind: str
    value: Any
    pos: int
    text: str


@dataclass
class Comparison:
    """``field op value``; op is one of = != < > <= >= like in nin includes excludes."""

    field: FieldRef
    op: str
    values: list[Literal]


@dataclass
class BoolExpr:
    """AND / OR of parts, or NOT of one part."""

    op: str
    parts: list[Any]


@dataclass
class OrderItem:
    """One ORDER BY entry."""

    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    """A parsed SELECT."""

    text: str
    fields: list[FieldRef]
    count: FieldRef | bool | None  # False: not a count; True: COUNT(); FieldRef: COUNT(field)
    count_alias: str | None
    sobject: str
    sobject_pos: int
    alias: str | None
    where: Any
    order: list[OrderItem]
    limit: int | None
    offset: int | None


def _located(query: str, pos: int, text: str) -> str:
    """Salesforce's error text with the query line and a caret under the culprit."""
    before = query[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    column = pos - line_start + 1
    line = query.splitlines()[row - 1] if query.splitlines() else query
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{text}"


def tokenize(query: str) -> list[Token]:
    """Split a query into tokens; MALFORMED_QUERY on a character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            if query[pos] == "'":
                raise malformed_query(
                    _located(
                        query,
                        pos,
                        "line 1:" + str(pos) + " mismatched character '<EOF>' expecting '''",
                    )
                )
            raise malformed_query(_located(query, pos, f"unexpected token: '{query[pos]}'"))
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", len(query)))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, token: Token | None = None, text: str | None = None) -> SalesforceError:
        token = token or self.tok
        if text is None:
            text = (
                "unexpected token: <EOF>"
                if token.kind == "eof"
                else f"unexpected token: '{token.text}'"
            )
        return malformed_query(_located(self.query, token.pos, text))

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.lower in words

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.error()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != char:
            raise self.error()
        return self.advance()

    def check_supported(self) -> None:
        if self.tok.kind == "ident" and self.tok.lower in _UNSUPPORTED:
            raise self.error(text=f"{_UNSUPPORTED[self.tok.lower]} is not supported by sfemu")

    def parse(self) -> Query:
        self.expect_kw("select")
        fields: list[FieldRef] = []
        count: FieldRef | bool | None = False
        count_alias = None
        while True:
            token = self.tok
            if token.kind == "punct" and token.text == "(":
                raise self.error(text="subqueries (child relationships) are not supported by sfemu")
            if token.kind != "ident" or token.lower in _KEYWORDS - {"first", "last"}:
                raise self.error()
            self.advance()
            if self.tok.kind == "punct" and self.tok.text == "(":
                if token.lower != "count":
                    raise self.error(token, f"function {token.text}() is not supported by sfemu")
                self.advance()
                if self.tok.kind == "ident":
                    count = FieldRef(self.advance().text, token.pos)
                else:
                    count = True
                self.expect_punct(")")
                if self.tok.kind == "ident" and self.tok.lower not in _KEYWORDS:
                    count_alias = self.advance().text
            else:
                fields.append(FieldRef(token.text, token.pos))
            if self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                continue
            break
        self.expect_kw("from")
        if self.tok.kind != "ident" or "." in self.tok.text:
            raise self.error()
        sobject_token = self.advance()
        alias = None
        if self.tok.kind == "ident" and self.tok.lower not in _KEYWORDS:
            alias = self.advance().text
        self.check_supported()
        where = None
        if self.is_kw("where"):
            self.advance()
            where = self.parse_condition()
        self.check_supported()
        order: list[OrderItem] = []
        if self.is_kw("order"):
            self.advance()
            self.expect_kw("by")
            while True:
                if self.tok.kind != "ident" or self.tok.lower in _KEYWORDS:
                    raise self.error()
                ref_token = self.advance()
                descending = False
                if self.is_kw("asc", "desc"):
                    descending = self.advance().lower == "desc"
                nulls_first = not descending
                if self.is_kw("nulls"):
                    self.advance()
                    if not self.is_kw("first", "last"):
                        raise self.error()
                    nulls_first = self.advance().lower == "first"
                order.append(
                    OrderItem(FieldRef(ref_token.text, ref_token.pos), descending, nulls_first)
                )
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.advance()
                    continue
                break
        limit = offset = None
        if self.is_kw("limit"):
            self.advance()
            limit = self.parse_count_value()
        if self.is_kw("offset"):
            self.advance()
            offset = self.parse_count_value()
        self.check_supported()
        if self.tok.kind != "eof":
            raise self.error()
        if count is not False and fields and count is True:
            raise self.error(self.tokens[1], "COUNT() cannot be combined with other fields")
        return Query(
            self.query,
            fields,
            count,
            count_alias,
            sobject_token.text,
            sobject_token.pos,
            alias,
            where,
            order,
            limit,
            offset,
        )

    def parse_count_value(self) -> int:
        token = self.tok
        if token.kind != "number" or not token.text.isdigit():
            raise self.error()
        self.advance()
        return int(token.text)

    def parse_condition(self) -> Any:
        parts = [self.parse_not()]
        joiner = None
        while self.is_kw("and", "or"):
            word = self.tok.lower
            if joiner is not None and word != joiner:
                # SOQL needs parentheses to mix AND and OR.
                raise self.error()
            joiner = word
            self.advance()
            parts.append(self.parse_not())
        if joiner is None:
            return parts[0]
        return BoolExpr(joiner, parts)

    def parse_not(self) -> Any:
        if self.is_kw("not"):
            self.advance()
            return BoolExpr("not", [self.parse_not()])
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.advance()
            inner = self.parse_condition()
            self.expect_punct(")")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        token = self.tok
        if token.kind != "ident" or token.lower in _KEYWORDS:
            raise self.error()
        self.advance()
        ref = FieldRef(token.text, token.pos)
        if self.tok.kind == "op":
            op = self.advance().text
            op = "!=" if op == "<>" else op
            return Comparison(ref, op, [self.parse_literal()])
        if self.is_kw("like"):
            self.advance()
            literal = self.parse_literal()
            if literal.kind != "string":
                raise self.error(text=f"LIKE needs a string, got {literal.text}")
            return Comparison(ref, "like", [literal])
        negated = False
        if self.is_kw("not"):
            self.advance()
            negated = True
            if not self.is_kw("in"):
                raise self.error()
        if self.is_kw("in", "includes", "excludes"):
            word = self.advance().lower
            if negated and word != "in":
                raise self.error()
            self.expect_punct("(")
            if self.is_kw("select"):
                raise self.error(text="semi-join subqueries are not supported by sfemu")
            values = [self.parse_literal()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                values.append(self.parse_literal())
            self.expect_punct(")")
            op = {"in": "nin" if negated else "in", "includes": "includes", "excludes": "excludes"}[
                word
            ]
            return Comparison(ref, op, values)
        raise self.error()

    def parse_literal(self) -> Literal:
        token = self.tok
        if token.kind == "string":
            self.advance()
            return Literal("string", _unquote(token.text), token.pos, token.text)
        if token.kind == "number":
            self.advance()
            return Literal(
                "number",
                float(token.text) if "." in token.text else int(token.text),
                token.pos,
                token.text,
            )
        if token.kind == "date":
            self.advance()
            if not is_valid_date(token.text):
                raise self.error(token, f"invalid date: {token.text}")
            return Literal("date", token.text, token.pos, token.text)
        if token.kind == "datetime":
            self.advance()
            moment = parse_datetime(token.text)
            if moment is None:
                raise self.error(token, f"invalid datetime: {token.text}")
            return Literal("datetime", format_datetime(moment), token.pos, token.text)
        if token.kind == "ident":
            word = token.lower
            if word in ("true", "false"):
                self.advance()
                return Literal("boolean", word == "true", token.pos, token.text)
            if word == "null":
                self.advance()
                return Literal("null", None, token.pos, token.text)
            span = self.parse_date_literal()
            if span is not None:
                return span
        raise self.error()

    def parse_date_literal(self) -> Literal | None:
        token = self.tok
        word = token.text.upper()
        today = datetime.now(UTC).date()
        span: tuple[date, date] | None = None
        if word in ("TODAY", "YESTERDAY", "TOMORROW"):
            self.advance()
            day = today + timedelta(days={"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[word])
            span = (day, day + timedelta(days=1))
        elif word in ("LAST_N_DAYS", "NEXT_N_DAYS"):
            self.advance()
            self.expect_punct(":")
            n = self.parse_count_value()
            if word == "LAST_N_DAYS":
                span = (today - timedelta(days=n), today + timedelta(days=1))
            else:
                span = (today + timedelta(days=1), today + timedelta(days=n + 1))
        elif word == "THIS_MONTH":
            self.advance()
            last_day = calendar.monthrange(today.year, today.month)[1]
            span = (today.replace(day=1), today.replace(day=last_day) + timedelta(days=1))
        elif word == "THIS_YEAR":
            self.advance()
            span = (date(today.year, 1, 1), date(today.year + 1, 1, 1))
        if span is None:
            return None
        return Literal("range", span, token.pos, token.text)


def parse(query: str) -> Query:
    """Parse a SOQL query (MALFORMED_QUERY on a syntax error)."""
    if not query or not query.strip():
        raise malformed_query("unexpected token: <EOF>")
    return _Parser(query).parse()


# -- compilation ---------------------------------------------------------------------------

# A filter's errors spell the datetime type as SOQL does.
_TYPE_NAMES = MappingProxyType({**TYPE_NAMES, FieldType.DATETIME: "dateTime"})


# The literals a field of each of these types may be compared with (a date literal such as
# LAST_N_DAYS:7 is a range).
_LITERAL_KINDS = {
    FieldType.BOOLEAN: ("boolean",),
    FieldType.INT: ("number",),
    FieldType.DOUBLE: ("number",),
    FieldType.CURRENCY: ("number",),
    FieldType.PERCENT: ("number",),
    FieldType.DATE: ("date", "range"),
    FieldType.DATETIME: ("datetime", "range"),
}


@dataclass
class Resolved:
    """A field reference resolved against the schema."""

    field: FieldDef
    lookup: FieldDef | None = None  # the reference field when the path goes through a parent
    targets: tuple[SObjectDef, ...] = ()

    @property
    def relationship(self) -> str | None:
        """The relationship name (canonical case) for parent fields."""
        return self.lookup.relationship_name if self.lookup else None


@dataclass
class QueryPlan:
    """A query checked and compiled for one caller."""

    query: Query
    sobject: SObjectDef
    view: AccessView
    select: list[Resolved]
    predicate: Callable[[dict[str, Any]], bool]
    candidates: Callable[[], Iterable[dict[str, Any]]] | None
    sort_keys: list[tuple[Resolved, bool, bool]]
    count_only: bool
    count_field: Resolved | None


class Compiler:
    """Checks a parsed query against an org's schema and the caller's access."""

    def __init__(
        self, emulator: Emulator, caller: Caller, query: Query, include_deleted: bool
    ) -> None:
        self.emulator = emulator
        self.caller = caller
        self.query = query
        self.include_deleted = include_deleted
        sobject = caller.org.sobject(query.sobject)
        view = caller.view(sobject) if sobject is not None else None
        if sobject is None or view is None or not view.perms.read:
            raise SalesforceError(
                400,
                "INVALID_TYPE",
                _located(query.text, query.sobject_pos, unknown_sobject_type(query.sobject)),
            )
        self.sobject = sobject
        self.view = view

    def fail(self, pos: int, text: str, code: str = "INVALID_FIELD") -> SalesforceError:
        return SalesforceError(400, code, _located(self.query.text, pos, text))

    def resolve(self, ref: FieldRef) -> Resolved:
        parts = ref.path.split(".")
        prefixes = {self.sobject.name.lower()} | (
            {self.query.alias.lower()} if self.query.alias else set()
        )
        if (
            len(parts) > 1
            and parts[0].lower() in prefixes
            and self.sobject.relationship(parts[0]) is None
        ):
            parts = parts[1:]
        if len(parts) == 1:
            fdef = self.view.field(parts[0])
            if fdef is None:
                raise self.no_such_column(ref, parts[0], self.sobject.name)
            return Resolved(fdef)
        if len(parts) > 2:
            raise self.fail(
                ref.pos,
                f"sfemu supports one level of parent relationship, not {ref.path}",
                "MALFORMED_QUERY",
            )
        lookup = self.sobject.relationship(parts[0])
        if lookup is None or lookup.name.lower() not in self.view.readable:
            raise self.fail(
                ref.pos,
                f"Didn't understand relationship '{parts[0]}' in field path. If you are attempting"
                " to use a custom relationship, be sure to append the '__r' after the custom"
                " relationship name."
                " Please reference your WSDL or the describe call for the appropriate names.",
            )
        targets = tuple(
            t
            for t in (self.caller.org.sobject(name) for name in lookup.reference_to)
            if t is not None
        )
        for target in targets:
            target_view = self.caller.view(target)
            fdef = target_view.field(parts[1]) if target_view.perms.read else None
            if fdef is not None:
                return Resolved(fdef, lookup, targets)
        raise self.no_such_column(ref, parts[1], targets[0].name if targets else parts[0])

    def no_such_column(self, ref: FieldRef, name: str, sobject: str) -> SalesforceError:
        return self.fail(
            ref.pos,
            f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom"
            " field, be sure to append the '__c' after the custom field name. Please reference"
            " your WSDL or the describe call"
            " for the appropriate names.",
        )

    def compile(self) -> QueryPlan:
        query = self.query
        select: list[Resolved] = []
        seen: set[str] = set()
        for ref in query.fields:
            resolved = self.resolve(ref)
            key = f"{resolved.relationship or ''}.{resolved.field.name}".lower()
            if key in seen:
                raise self.fail(ref.pos, f"duplicate field selected: {ref.path}", "MALFORMED_QUERY")
            seen.add(key)
            select.append(resolved)
        count_field = None
        if isinstance(query.count, FieldRef):
            count_field = self.resolve(query.count)
            if select:
                raise self.fail(
                    query.fields[0].pos,
                    f"Field must be grouped or aggregated: {query.fields[0].path}",
                    "MALFORMED_QUERY",
                )
        if query.count is False and not select:
            raise self.fail(query.sobject_pos, "unexpected token: FROM", "MALFORMED_QUERY")
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SalesforceError(
                400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
            )
        predicate = (
            self.compile_condition(query.where) if query.where is not None else (lambda _r: True)
        )
        candidates = self.index_candidates(query.where)
        sort_keys = [
            (self.resolve(item.field), item.descending, item.nulls_first) for item in query.order
        ]
        return QueryPlan(
            query,
            self.sobject,
            self.view,
            select,
            predicate,
            candidates,
            sort_keys,
            query.count is True,
            count_field,
        )

    # -- conditions -----------------------------------------------------------------------

    def compile_condition(self, node: Any) -> Callable[[dict[str, Any]], bool]:
        if isinstance(node, BoolExpr):
            parts = [self.compile_condition(part) for part in node.parts]
            if node.op == "and":
                return lambda rec: all(part(rec) for part in parts)
            if node.op == "or":
                return lambda rec: any(part(rec) for part in parts)
            inner = parts[0]
            return lambda rec: not inner(rec)
        return self.compile_comparison(node)

    def getter(self, resolved: Resolved) -> Callable[[dict[str, Any]], Any]:
        name = resolved.field.name
        if resolved.lookup is None:
            return lambda rec: rec.get(name)
        lookup_name = resolved.lookup.name
        parent_of = self.parent_finder(resolved)

        def get(rec: dict[str, Any]) -> Any:
            parent = parent_of(rec.get(lookup_name))
            return None if parent is None else parent.get(name)

        return get

    def parent_finder(self, resolved: Resolved) -> Callable[[Any], dict[str, Any] | None]:
        tables = {t.key_prefix: self.emulator.table(self.caller.org, t) for t in resolved.targets}

        def find(parent_id: Any) -> dict[str, Any] | None:
            if not parent_id:
                return None
            table = tables.get(parent_id[:3])
            return table.get(parent_id) if table is not None else None

        return find

    def typed_literal(self, fdef: FieldDef, literal: Literal) -> Any:
        """Check a literal's type against the field; returns the comparable value."""
        ftype = fdef.type
        if literal.kind == "null":
            return None
        type_name = _TYPE_NAMES.get(ftype, "string")

        def wrong(quoted: bool) -> SalesforceError:
            hint = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
            return self.fail(
                literal.pos,
                f"value of filter criterion for field '{fdef.name}' must be of type"
                f" {type_name} and {hint}",
            )

        if ftype in (FieldType.ID, FieldType.REFERENCE):
            if literal.kind != "string":
                raise wrong(True)
            normalized = ids.try_normalize(literal.value)
            if normalized is None:
                raise self.fail(
                    literal.pos,
                    f"invalid ID field: {literal.value}",
                    "INVALID_QUERY_FILTER_OPERATOR",
                )
            return normalized
        if fdef.is_text:
            if literal.kind != "string":
                raise wrong(True)
            return literal.value.lower()
        accepted = _LITERAL_KINDS.get(ftype)
        if accepted is not None and literal.kind not in accepted:
            raise wrong(False)
        return literal.value

    def compile_comparison(self, node: Comparison) -> Callable[[dict[str, Any]], bool]:
        resolved = self.resolve(node.field)
        fdef = resolved.field
        get = self.getter(resolved)
        op = node.op
        is_text = fdef.is_text
        if op == "like":
            if not is_text and fdef.type not in (FieldType.ID, FieldType.REFERENCE):
                raise self.fail(node.field.pos, f"invalid operator on field: {fdef.name}")
            pattern = _like_regex(node.values[0].value)
            return lambda rec: (
                (value := get(rec)) is not None and pattern.match(str(value)) is not None
            )
        if op in ("includes", "excludes"):
            if fdef.type != FieldType.MULTIPICKLIST:
                raise self.fail(
                    node.field.pos,
                    "includes or excludes operator only valid on multipicklist field",
                )
            wanted = [
                frozenset(p.strip().lower() for p in str(v.value).split(";")) for v in node.values
            ]

            def includes(rec: dict[str, Any]) -> bool:
                value = get(rec)
                chosen = frozenset(p.lower() for p in value.split(";")) if value else frozenset()
                return any(w <= chosen for w in wanted)

            return includes if op == "includes" else (lambda rec: not includes(rec))
        values = [self.typed_literal(fdef, literal) for literal in node.values]
        norm = (lambda v: v.lower() if isinstance(v, str) else v) if is_text else (lambda v: v)
        if op in ("in", "nin"):
            members = frozenset(values)
            if op == "in":
                return lambda rec: norm(get(rec)) in members
            return lambda rec: norm(get(rec)) not in members
        target = values[0]
        if isinstance(target, tuple):
            return self.range_comparison(get, fdef, op, target)
        if target is None:
            if op == "=":
                return lambda rec: get(rec) is None
            if op == "!=":
                return lambda rec: get(rec) is not None
            return lambda rec: False
        compare = _OPERATORS[op]

        def check(rec: dict[str, Any]) -> bool:
            value = get(rec)
            if value is None:
                return op == "!="
            return compare(norm(value), target)

        return check

    def range_comparison(
        self, get: Callable[[dict[str, Any]], Any], fdef: FieldDef, op: str, span: tuple[date, date]
    ) -> Callable[[dict[str, Any]], bool]:
        if fdef.type == FieldType.DATE:
            start, end = span[0].isoformat(), span[1].isoformat()
        else:
            start = format_datetime(datetime.combine(span[0], datetime.min.time(), UTC))
            end = format_datetime(datetime.combine(span[1], datetime.min.time(), UTC))
        tests = {
            "=": lambda v: start <= v < end,
            "!=": lambda v: not (start <= v < end),
            "<": lambda v: v < start,
            "<=": lambda v: v < end,
            ">": lambda v: v >= end,
            ">=": lambda v: v >= start,
        }
        test = tests[op]
        return lambda rec: (value := get(rec)) is not None and test(value)

    def index_candidates(self, node: Any) -> Callable[[], Iterable[dict[str, Any]]] | None:
        """Records to scan when the filter pins an Id or an indexed field (else None: all)."""
        conjuncts = node.parts if isinstance(node, BoolExpr) and node.op == "and" else [node]
        table = self.emulator.table(self.caller.org, self.sobject)
        for part in conjuncts:
            if not isinstance(part, Comparison) or part.op not in ("=", "in"):
                continue
            try:
                resolved = self.resolve(part.field)
            except SalesforceError:
                return None
            if resolved.lookup is not None:
                continue
            fdef = resolved.field
            literals = [lit for lit in part.values if lit.kind != "null"]
            if fdef.name == "Id":
                keys = [ids.try_normalize(lit.value) for lit in literals if lit.kind == "string"]

                def by_id(keys: list[str | None] = keys) -> Iterable[dict[str, Any]]:
                    seen = []
                    for key in dict.fromkeys(k for k in keys if k):
                        record = table.get(key)
                        if record is not None:
                            seen.append(record)
                    return seen

                return by_id
            if fdef.name in table.indexes and all(
                lit.kind in ("string", "number") for lit in literals
            ):
                values = [lit.value for lit in literals]

                def by_index(
                    fdef: FieldDef = fdef, values: list[Any] = values
                ) -> Iterable[dict[str, Any]]:
                    found: dict[str, None] = {}
                    for value in values:
                        for rid in table.find(fdef, value):
                            found[rid] = None
                    return [table.rows[rid] for rid in sorted(found)]

                return by_index
        return None


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


# -- execution and cursors -----------------------------------------------------------------


@dataclass
class Cursor:
    """The remaining rows of a query that did not fit in one batch."""

    id: str
    org_id: str
    user_id: str
    plan: QueryPlan
    rows: list[dict[str, Any]]
    api_version: str
    batch_size: int
    created: float = field(default_factory=time.time)


class QueryEngine:
    """Runs queries and keeps their cursors for nextRecordsUrl."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()

    def run(
        self, caller: Caller, text: str, *, include_deleted: bool = False, batch_size: int = 2000
    ) -> dict[str, Any]:
        """Run a query and return the first page of results."""
        plan = Compiler(self.emulator, caller, parse(text), include_deleted).compile()
        rows = self.matching_rows(caller, plan, include_deleted)
        query = plan.query
        if plan.count_only:
            return {"totalSize": len(rows), "done": True, "records": []}
        if plan.count_field is not None:
            name = plan.count_field.field.name
            count = (
                sum(1 for rec in rows if rec.get(name) is not None) if name != "Id" else len(rows)
            )
            return {
                "totalSize": 1,
                "done": True,
                "records": [
                    {"attributes": {"type": "AggregateResult"}, query.count_alias or "expr0": count}
                ],
            }
        if len(rows) <= batch_size:
            return {
                "totalSize": len(rows),
                "done": True,
                "records": self.render(caller, plan, rows),
            }
        cursor = Cursor(
            id=ids.make_id(ids.QUERY_LOCATOR, caller.org.pod, secrets.randbelow(62**9)),
            org_id=caller.org.id,
            user_id=caller.user.id,
            plan=plan,
            rows=rows,
            api_version=caller.api_version,
            batch_size=batch_size,
        )
        self._keep(cursor)
        return self.page(caller, cursor, 0)

    def more(self, caller: Caller, locator: str) -> dict[str, Any]:
        """The page of an earlier query that a nextRecordsUrl points at."""
        cursor_id, _, offset_text = locator.partition("-")
        cursor = self.cursors.get(cursor_id)
        if (
            cursor is None
            or not offset_text.isdigit()
            or cursor.org_id != caller.org.id
            or cursor.user_id != caller.user.id
            or time.time() - cursor.created > CURSOR_LIFETIME_S
        ):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.page(caller, cursor, int(offset_text))

    def page(self, caller: Caller, cursor: Cursor, offset: int) -> dict[str, Any]:
        """One batch of a cursor."""
        end = offset + cursor.batch_size
        chunk = cursor.rows[offset:end]
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{caller.api_version}/query/{cursor.id}-{end}"
        body["records"] = self.render(caller, cursor.plan, chunk)
        if body["done"]:
            self.cursors.pop(cursor.id, None)
        return body

    def _keep(self, cursor: Cursor) -> None:
        self.cursors[cursor.id] = cursor
        now = time.time()
        while self.cursors:
            oldest = next(iter(self.cursors.values()))
            if len(self.cursors) > MAX_CURSORS or now - oldest.created > CURSOR_LIFETIME_S:
                self.cursors.popitem(last=False)
            else:
                break

    def matching_rows(
        self, caller: Caller, plan: QueryPlan, include_deleted: bool
    ) -> list[dict[str, Any]]:
        """Visible records that pass the filter, sorted and sliced by OFFSET / LIMIT."""
        table = self.emulator.table(caller.org, plan.sobject)
        source = (
            plan.candidates()
            if plan.candidates is not None
            else (table.all() if include_deleted else table.live())
        )
        view, user_id, predicate = plan.view, caller.user.id, plan.predicate
        private = plan.sobject.sharing == "private" and not (
            view.perms.view_all or view.perms.modify_all
        )
        rows = [
            rec
            for rec in source
            if (include_deleted or not rec.get("IsDeleted"))
            and (not private or can_see(view, user_id, rec))
            and predicate(rec)
        ]
        if plan.sort_keys:
            compiler = Compiler(self.emulator, caller, plan.query, include_deleted)
            for resolved, descending, nulls_first in reversed(plan.sort_keys):
                get = compiler.getter(resolved)
                present = [r for r in rows if get(r) is not None]
                absent = [r for r in rows if get(r) is None]
                present.sort(key=lambda r, get=get: _sort_value(get(r)), reverse=descending)
                rows = absent + present if nulls_first else present + absent
        query = plan.query
        if query.offset:
            rows = rows[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]
        return rows

    def render(
        self, caller: Caller, plan: QueryPlan, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Records as the query resource returns them (parent fields nested)."""
        version = caller.api_version
        base = plan.sobject.name
        compiler = Compiler(self.emulator, caller, plan.query, False)
        finders = {id(r): compiler.parent_finder(r) for r in plan.select if r.lookup is not None}
        out = []
        for rec in rows:
            item: dict[str, Any] = {
                "attributes": {
                    "type": base,
                    "url": f"/services/data/v{version}/sobjects/{base}/{rec['Id']}",
                }
            }
            for resolved in plan.select:
                if resolved.lookup is None:
                    item[resolved.field.name] = rec.get(resolved.field.name)
                    continue
                rel = resolved.relationship or resolved.lookup.name
                if rel not in item:
                    parent = finders[id(resolved)](rec.get(resolved.lookup.name))
                    if parent is None:
                        item[rel] = None
                    else:
                        ptype = self.emulator.sobject_for_id(caller.org, parent["Id"])
                        pname = ptype.name if ptype else resolved.targets[0].name
                        item[rel] = {
                            "attributes": {
                                "type": pname,
                                "url": f"/services/data/v{version}/sobjects/{pname}/{parent['Id']}",
                            }
                        }
                        item[rel]["_parent"] = parent
                parent_item = item[rel]
                if parent_item is not None:
                    parent_item[resolved.field.name] = parent_item["_parent"].get(
                        resolved.field.name
                    )
            for value in item.values():
                if isinstance(value, dict):
                    value.pop("_parent", None)
            out.append(item)
        return out


def _sort_value(value: Any) -> Any:
    # Salesforce sorts text case-insensitively.
    return value.lower() if isinstance(value, str) else value
