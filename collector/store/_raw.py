"""Bulk statements on the driver's cursor, for the hot path of ingest.

SQLAlchemy Core builds every other statement.  These few run once per group
commit with thousands of rows each, and SQLAlchemy's per-row parameter
processing cost more than the database itself; here the rows go to the
driver as plain tuples.  Table and column names come from :mod:`._schema`,
never from input.

* SQLite (in process): ``executemany``, one prepared statement, one step per row.
* PostgreSQL: one statement per call whatever the row count, with one array
  parameter per column (``unnest``); a round trip per row would cost ~100 µs
  of server time each.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Connection, Integer, LargeBinary, SmallInteger, Table, Text

__all__ = ["insert_many", "select_in", "update_many"]


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _arrays(table: Table, cols: Sequence[str], rows: Sequence[tuple]) -> tuple[str, tuple]:
    """``unnest(%s::T1[], ...) AS v(c1, ...)`` and its parameters: one list per column."""
    types = ", ".join(f"%s::{_pg_type(table.c[c].type)}[]" for c in cols)
    return f"unnest({types}) AS v({', '.join(cols)})", tuple(list(col) for col in zip(*rows))


def _pg_type(t: object) -> str:
    for cls, name in _PG_TYPES.items():
        if isinstance(t, cls):
            return name
    raise TypeError(f"no array type for {t!r}")


_PG_TYPES = {BigInteger: "bigint", SmallInteger: "smallint", Integer: "integer", Text: "text",
             LargeBinary: "bytea"}


def insert_many(conn: Connection, table: Table, cols: Sequence[str], rows: list[tuple]) -> None:
    """INSERT ``rows`` (tuples in the order of ``cols``) into ``table``."""
    if not rows:
        return
    if _pg(conn):
        src, params = _arrays(table, cols, rows)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(cols)}) "
                             f"SELECT {', '.join('v.' + c for c in cols)} FROM {src}", params)
        return
    m = _mark(conn)
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join([m] * len(cols))})"
    conn.exec_driver_sql(sql, rows)


def update_many(conn: Connection, table: Table, cols: Sequence[str], key: str,
                rows: list[tuple]) -> None:
    """UPDATE ``table`` SET ``cols`` WHERE ``key`` = last item of each row tuple."""
    if not rows:
        return
    if _pg(conn):
        src, params = _arrays(table, (*cols, key), rows)
        sets = ", ".join(f"{c} = v.{c}" for c in cols)
        conn.exec_driver_sql(f"UPDATE {table.name} AS t SET {sets} FROM {src} "
                             f"WHERE t.{key} = v.{key}", params)
        return
    m = _mark(conn)
    sets = ", ".join(f"{c} = {m}" for c in cols)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} WHERE {key} = {m}", rows)


def select_in(conn: Connection, table: Table, cols: Sequence[str], keys: Sequence[str],
              values: Sequence[tuple], chunk: int = 400) -> list[tuple]:
    """SELECT ``cols`` FROM ``table`` WHERE (``keys``) IN ``values``."""
    if not values:
        return []
    if _pg(conn):
        src, params = _arrays(table, keys, values)
        on = " AND ".join(f"t.{k} = v.{k}" for k in keys)
        return list(conn.exec_driver_sql(
            f"SELECT {', '.join('t.' + c for c in cols)} FROM {table.name} AS t JOIN {src} ON {on}",
            params).fetchall())
    # SQLite plans a row-value IN list as a scan of the whole table; equality on the leading
    # keys and IN on the last one searches the unique index instead.
    m = _mark(conn)
    by_prefix: dict[tuple, list] = {}
    for v in values:
        by_prefix.setdefault(tuple(v[:-1]), []).append(v[-1])
    where = "".join(f"{k} = {m} AND " for k in keys[:-1])
    out: list[tuple] = []
    for prefix, lasts in by_prefix.items():
        for i in range(0, len(lasts), chunk):
            part = lasts[i:i + chunk]
            sql = (f"SELECT {', '.join(cols)} FROM {table.name} WHERE {where}{keys[-1]} IN "
                   f"({', '.join([m] * len(part))})")
            out += conn.exec_driver_sql(sql, (*prefix, *part)).fetchall()
    return out
