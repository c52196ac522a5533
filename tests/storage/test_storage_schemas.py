"""Pinned schemas round-trip: Python rows -> Arrow -> Parquet -> DuckDB give back what went in."""

from __future__ import annotations

import datetime as dt
import io
import re

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_fixtures import MODEL_A, answer, record

from storage.layout import run_of_part, safe_model_name
from storage.rows import to_table
from storage.schemas import SCHEMA_VERSION, SCHEMAS, fingerprint
from storage.store import Store

# One fingerprint per schema version: changing a field without bumping SCHEMA_VERSION fails here.
PINNED = {
    1: "e93be97523a72c1f5d28ec96459f6953f6d9dba41bcaca9e5a48c3bb996939fe",
    2: "2f976a159bd48bde9ff08fdf1bcebe5d7f21d8e5a3d7ded8c2aeaec9d11d6b23",
    3: "03ef3eb07a23fcfe2a49e74a7f40f87043792cc2514fbbd2bfec62a06d101037",
    4: "546039eabd8ee9c2f036c48b41066ee7a326706a49f1073069cfae514c35240e",
}

text = st.text(max_size=40)  # any unicode (no surrogates), including NUL, quotes, RTL, emoji
floats = st.floats(allow_nan=False, width=64)
ints32 = st.integers(-(2**31), 2**31 - 1)
ints64 = st.integers(-(2**63), 2**63 - 1)
times = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda t: t.replace(microsecond=t.microsecond))


def value_strategy(type_: pa.DataType, nullable: bool):
    if pa.types.is_string(type_):
        base = text
    elif type_ == pa.int32():
        base = ints32
    elif type_ == pa.int64():
        base = ints64
    elif type_ == pa.float64():
        base = floats
    elif type_ == pa.bool_():
        base = st.booleans()
    elif pa.types.is_timestamp(type_):
        base = times
    elif pa.types.is_list(type_):
        base = st.lists(value_strategy(type_.value_type, False), max_size=4)
    elif pa.types.is_struct(type_):
        base = st.fixed_dictionaries({f.name: value_strategy(f.type, f.nullable) for f in type_})
    elif pa.types.is_map(type_):
        base = st.dictionaries(text, value_strategy(type_.item_type, False), max_size=3).map(
            lambda d: sorted(d.items())
        )
    else:
        raise AssertionError(f"no strategy for {type_}")
    return st.one_of(st.none(), base) if nullable else base


def row_strategy(table: str):
    fields = {f.name: value_strategy(f.type, f.nullable) for f in SCHEMAS[table] if f.name != "run_id"}
    return st.fixed_dictionaries(fields)


def test_schema_is_pinned():
    assert fingerprint() == PINNED[SCHEMA_VERSION], (
        "a schema changed: bump SCHEMA_VERSION and pin the new fingerprint (and keep old files readable)"
    )


@pytest.mark.parametrize("table", list(SCHEMAS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_table_round_trips_in_memory(table, data):
    rows = data.draw(st.lists(row_strategy(table), min_size=1, max_size=3))
    arrow = to_table(table, rows, "run-1")
    buf = io.BytesIO()
    pq.write_table(arrow, buf)
    back = pq.read_table(io.BytesIO(buf.getvalue()))
    assert back.schema.remove_metadata() == SCHEMAS[table]
    assert back.to_pylist() == arrow.to_pylist()
    # DuckDB reads the same Parquet bytes back to the same values
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    parquet = back  # noqa: F841 (DuckDB reads the local Arrow table by name)
    got = con.sql("SELECT * FROM parquet").to_arrow_table().cast(arrow.schema)
    assert got.to_pylist() == arrow.to_pylist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer_text=text, question=text)
def test_arbitrary_answer_text_survives_the_store(tmp_path_factory, answer_text, question):
    store = Store(tmp_path_factory.mktemp("s"))
    run_id = store.begin_run(record(MODEL_A, 1, "r1"))
    row = {**answer("s1", "star", "yes", "no", "no", "i"), "answer_text": answer_text, "question": question}
    store.write("answers", [row], run_id)
    got = store.query("SELECT answer_text, question FROM answers WHERE sample_id = ?", ["s1"]).to_pylist()
    assert got == [{"answer_text": answer_text, "question": question}]
    store.close()


@given(st.text(min_size=1, max_size=150))
def test_model_directory_names_are_safe(model_id):
    name = safe_model_name(model_id)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", name) and len(name) <= 105


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_different_models_get_different_directories(a, b):
    if a != b:
        assert safe_model_name(a) != safe_model_name(b)


def test_common_model_names_stay_readable():
    assert safe_model_name("llava-hf/llava-1.5-7b-hf") == "llava-hf--llava-1.5-7b-hf"
    assert safe_model_name("probe") == "probe"
    assert safe_model_name("a--b") != safe_model_name("a/b")
    assert safe_model_name("/models/ckpt=3").startswith("_--models--ckpt_3-")
    assert run_of_part("part-20250101T000000Z-ab12-" + "0" * 32 + ".parquet") == "20250101T000000Z-ab12"
    assert run_of_part("cpart-" + "1" * 19 + "-" + "0" * 32 + ".parquet") is None
