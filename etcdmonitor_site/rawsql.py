"""Hand-written SELECTs for the hottest read paths, loaded into ordinary model instances.

Building a query through the ORM costs ~1.5 ms of CPU here (compiling, then instantiating),
several times the query itself: on the routes every dashboard poll and REST client hits, that
was most of the request (bench/perf_notes.md). These helpers keep the SQL explicit and still go
through each field's database converters (SQLite returns datetimes as text, for instance), so
the instances behave exactly like ORM-loaded ones; unselected fields load lazily if touched.
For the hot writes: arrays as one text literal (`array_literal`) and a cursor that sends the
parameters apart from the statement (`bound_cursor`).
"""

import contextlib
import functools
import inspect

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import JSONField, Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from etcdmonitor_site import jsontext


def select_list(model: type[Model], alias: str, fields: list[str]) -> str:
    """`alias.col, ...` for the model's fields (names), in order."""
    return ", ".join(f"{alias}.{column(model, name)}" for name in fields)


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


@functools.cache
def _loader(model: type[Model], fields: tuple[str, ...], vendor: str):
    """(attnames in the model's field order, each one's position in `fields` with its
    converters, whether an instance may be made without Model.__init__ (`_plain`))."""
    meta = model._meta
    order = {f.attname: i for i, f in enumerate(meta.concrete_fields)}
    by_order = sorted(range(len(fields)), key=lambda i: order[meta.get_field(fields[i]).attname])
    attnames = [meta.get_field(fields[i]).attname for i in by_order]
    steps = []
    for i in by_order:
        field = meta.get_field(fields[i])
        expression = field.get_col(meta.db_table)
        converters = connection.ops.get_db_converters(expression)
        steps.append((i, expression, converters + _field_converters(field)))
    return attnames, steps, _plain(model, attnames)


def _plain(model: type[Model], attnames: list[str]) -> bool:
    """Whether Model.__init__ would only store each value in the instance's __dict__: every
    attribute is Django's deferred-loading descriptor (a foreign key's id one sets __dict__
    too, dropping a cached object a new instance cannot have yet), none a descriptor of its own
    that converts on assignment, and the model is concrete."""
    if model._meta.abstract:
        return False
    for attname in attnames:
        descriptor = inspect.getattr_static(model, attname, None)
        if not isinstance(descriptor, DeferredAttribute):
            return False
        setter = getattr(type(descriptor), "__set__", None)
        if setter is not None and setter is not ForeignKeyDeferredAttribute.__set__:
            return False
    return True


# JSON the collector and the health probe write (every number in it came from a float, the
# condition of `jsontext.loads`), read by every round: {model label: field names}.
FAST_JSON_FIELDS = {
    "monitoring.Member": frozenset(
        ["client_urls", "peer_urls", "unexported_metrics", "latest", "grpc_methods",
         "quantile_basis", "scrape_state"]
    ),
    "monitoring.MonitoredCluster": frozenset(["endpoints", "health_summary"]),
}  # fmt: skip


def _field_converters(field) -> list:
    """The field's own converters; the JSON of FAST_JSON_FIELDS parsed by `jsontext`."""
    converters = field.get_db_converters(connection)
    model = getattr(field, "model", None)
    fast = FAST_JSON_FIELDS.get(model._meta.label, ()) if model is not None else ()
    if not isinstance(field, JSONField) or field.decoder is not None or field.name not in fast:
        return converters
    return [
        jsontext.from_db_value if converter == field.from_db_value else converter
        for converter in converters
    ]


def instance(model: type[Model], fields: list[str], values) -> Model:
    """A model instance from raw column values (in `fields` order), through their converters:
    what `Model.from_db` makes, fields not selected deferred (loaded if touched).

    Made without Model.__init__ when that would only fill the instance's __dict__ and no
    pre_init/post_init receiver listens (`_plain`): a health round reads ~180 rows of an
    80-cluster fleet every 5 s, and making their instances took 1.75 ms with __init__ and its
    two signals, 0.95 ms without (docs/PERFORMANCE.md).
    """
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each proxy access costs a lookup
    attnames, steps, plain = _loader(model, tuple(fields), db.vendor)
    converted = []
    for position, expression, converters in steps:
        value = values[position]
        for converter in converters:
            value = converter(value, expression, db)
        converted.append(value)
    if plain and not pre_init.receivers and not post_init.receivers:
        made = model.__new__(model)
        made.__dict__.update(zip(attnames, converted, strict=True))
        state = made._state = ModelState()
        state.adding, state.db = False, db.alias
        return made
    # from_db takes the values in the model's field order and fills the gaps with DEFERRED.
    return model.from_db(db.alias, attnames, converted)


def array_literal(values) -> str:
    """A PostgreSQL array as one `{…}` text literal, for a `%s::<type>[]` parameter: psycopg
    adapts a list element by element in Python, a measurable share of a cheap query. Elements
    are ints, floats, strings (quoted and escaped) or None."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(int.__repr__(value))  # also psycopg's Int8 and the like
        elif isinstance(value, float):
            parts.append(float.__repr__(value))
        else:
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'"{text}"')
    return "{" + ",".join(parts) + "}"


def rows_in(sql: str, condition: str, values: list) -> list[tuple]:
    """Run `sql`, written for one value (`condition`, e.g. `c.id = %s`), for many at once: the
    condition becomes an IN list (a fleet round reads every cluster's rows in one query)."""
    if not values:
        return []
    many = condition.replace("= %s", f"IN ({', '.join(['%s'] * len(values))})")
    with connection.cursor() as cursor:
        cursor.execute(sql.replace(condition, many, 1), list(values))
        return cursor.fetchall()


@contextlib.contextmanager
def bound_cursor():
    """A cursor whose parameters travel apart from the statement (PostgreSQL's extended
    protocol, psycopg's `Cursor`) for the hot writes of a fleet round; elsewhere the usual one.

    Django's PostgreSQL cursors bind on the client: psycopg quotes every parameter into the
    SQL text in Python, a visible share of a collection round for a member's ~12 KB of JSON
    state (docs/PERFORMANCE.md). Still wrapped by Django (query logging, execute wrappers,
    its errors).
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    with connection._prepare_cursor(psycopg.Cursor(connection.connection)) as cursor:
        yield cursor
