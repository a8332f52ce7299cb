"""Hand-written statements for the engine's hot path: appending events, moving the projection, claiming.

They use the models' own tables, columns and value conversions (the same `get_db_prep_*` and `from_db_value`
the ORM applies), built once per shape instead of once per call: for these few statements the ORM spent
more time composing SQL than the database spent running it. Everything else uses the ORM.
"""
from functools import lru_cache

from django.db import connection, models


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


@lru_cache(maxsize=None)
def _insert_shape(model: type[models.Model], count: int, vendor: str):
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not isinstance(f, models.AutoField))
    generated = meta.pk if isinstance(meta.pk, models.AutoField) else None
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {_quote(meta.db_table)} ({', '.join(_quote(f.column) for f in fields)}) "
           f"VALUES {', '.join([row] * count)}")
    if generated is not None:
        sql += f" RETURNING {_quote(generated.column)}"
    return sql, fields, generated


def insert(objs: list[models.Model]) -> None:
    """One multi-row INSERT of `objs` (all of one model); database-generated ids are set on them."""
    sql, fields, generated = _insert_shape(type(objs[0]), len(objs), connection.vendor)
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if generated is not None:
            # Both databases return the rows of a multi-row INSERT in the order of its VALUES.
            for obj, (pk,) in zip(objs, cursor.fetchall()):
                setattr(obj, generated.attname, pk)
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias


@lru_cache(maxsize=None)
def _update_shape(model: type[models.Model], columns: tuple, conditions: tuple, vendor: str):
    meta = model._meta
    set_fields = tuple(meta.get_field(name) for name in columns)
    where_fields = tuple(meta.get_field(name) for name in conditions)
    sql = (f"UPDATE {_quote(meta.db_table)} SET {', '.join(f'{_quote(f.column)} = %s' for f in set_fields)} "
           f"WHERE {' AND '.join(f'{_quote(f.column)} = %s' for f in where_fields)}")
    return sql, set_fields, where_fields


def update(model: type[models.Model], *, values: dict, where: dict) -> int:
    """`UPDATE table SET values WHERE where` (equalities, ANDed); the number of rows changed."""
    sql, set_fields, where_fields = _update_shape(model, tuple(values), tuple(where), connection.vendor)
    params = [f.get_db_prep_save(v, connection) for f, v in zip(set_fields, values.values())]
    params += [f.get_db_prep_value(v, connection) for f, v in zip(where_fields, where.values())]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def param(model: type[models.Model], field_name: str, value):
    """`value` as the database takes it in a comparison with `model.field_name`."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


@lru_cache(maxsize=None)
def columns(model: type[models.Model], alias: str, vendor: str | None = None) -> str:
    """`alias.col1, alias.col2, …` for every concrete field of `model`, in field order."""
    return ", ".join(f"{alias}.{_quote(f.column)}" for f in model._meta.concrete_fields)


@lru_cache(maxsize=None)
def _reader(model: type[models.Model], field_name: str, vendor: str):
    """(the column, the converters the ORM applies to a value read from it) of `model.field_name`."""
    field = model._meta.get_field(field_name)
    column = field.get_col(model._meta.db_table)
    return column, tuple(connection.ops.get_db_converters(column) + field.get_db_converters(connection))


@lru_cache(maxsize=None)
def _readers(model: type[models.Model], vendor: str):
    fields = model._meta.concrete_fields
    return tuple(f.attname for f in fields), tuple(_reader(model, f.name, vendor) for f in fields)


def _converted(value, column, converters):
    for convert in converters:
        value = convert(value, column, connection)
    return value


def value(model: type[models.Model], field_name: str, raw):
    """`raw`, read from `model.field_name`'s column by hand-written SQL, as the ORM would give it (e.g. an
    aware datetime on SQLite too)."""
    return _converted(raw, *_reader(model, field_name, connection.vendor))


def instance(model: type[models.Model], values) -> models.Model:
    """A model instance from the row `values` (its concrete fields in order), converted as the ORM would."""
    names, readers = _readers(model, connection.vendor)
    converted = [_converted(raw, column, converters) for raw, (column, converters) in zip(values, readers)]
    return model.from_db(connection.alias, names, converted)
