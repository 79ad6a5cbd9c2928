"""Polars, DuckDB (httpfs) and pyarrow scan a multi-file Parquet dataset through s3cached, twice.

The dataset is written straight to the origin. Polars scans it first, with the cache cold
(Polars reads through the Rust `object_store` crate, many column-chunk ranges at once). Each
engine scans it through s3cached, then
scans it again with a fresh connection (so nothing is answered from the engine's own cache):
the second round must make no origin GetObject (per s3cached's metrics) and give the same
results, which must also equal a scan of the origin itself. Prints `ALL OK` at the end.
"""

import glob
import os
import sys
import time
import urllib.request

import boto3
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

PROXY = os.environ["PROXY_ENDPOINT"]
ORIGIN = os.environ["ORIGIN_ENDPOINT"]
METRICS = os.environ["METRICS_URL"]
BUCKET = os.environ["BUCKET"]
CLIENT = (os.environ["CLIENT_KEY"], os.environ["CLIENT_SECRET"])
ORIGIN_KEYS = (os.environ["ORIGIN_KEY"], os.environ["ORIGIN_SECRET"])
QUERY = "SELECT count(*), sum(a), round(sum(b), 3), min(s), max(s) FROM read_parquet('{}')"


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def metric(prefix):
    text = urllib.request.urlopen(METRICS, timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def origin_gets():
    return metric('s3cached_origin_requests_total{operation="GetObject"')


def client_gets():
    return metric('s3cached_requests_total{operation="GetObject"')


def write_dataset():
    s3 = boto3.client(
        "s3",
        endpoint_url=ORIGIN,
        aws_access_key_id=ORIGIN_KEYS[0],
        aws_secret_access_key=ORIGIN_KEYS[1],
        region_name="us-east-1",
    )
    # Three large files (cached as blocks) and one small one (cached whole), several row
    # groups each, so scans read footers and column chunks in ranges.
    for i, rows in enumerate([700_000, 650_000, 600_000, 20_000]):
        base = i * 1_000_000
        a = pa.array(range(base, base + rows), pa.int64())
        b = pa.array([((x * 2654435761) % 1_000_003) / 7.0 for x in range(base, base + rows)], pa.float64())
        s = pa.array([f"k{(x * 40503) % 99991:05d}" for x in range(base, base + rows)])
        table = pa.table({"a": a, "b": b, "s": s})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=100_000, compression="none")
        body = sink.getvalue().to_pybytes()
        s3.put_object(Bucket=BUCKET, Key=f"data/part-{i}.parquet", Body=body)
        print(f"part-{i}: {len(body)} bytes")


def duckdb_scan(endpoint, keys):
    ext = glob.glob(os.path.join(os.path.dirname(__import__("duckdb_extension_httpfs").__file__), "extensions", "*", "httpfs.duckdb_extension"))
    if not ext:
        fail("the httpfs extension is not in the duckdb-extension-httpfs package")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext[0]}'")
    host = endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET s (TYPE S3, KEY_ID '{keys[0]}', SECRET '{keys[1]}', ENDPOINT '{host}', "
        "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    )
    rows = con.execute(QUERY.format(f"s3://{BUCKET}/data/*.parquet")).fetchall()
    con.close()
    return rows


def pyarrow_scan(endpoint, keys):
    fs = pafs.S3FileSystem(
        access_key=keys[0],
        secret_key=keys[1],
        endpoint_override=endpoint.split("://", 1)[1],
        scheme="http",
        region="us-east-1",
    )
    table = ds.dataset(f"{BUCKET}/data", format="parquet", filesystem=fs).to_table(columns=["a", "b", "s"])
    return (
        table.num_rows,
        pa.compute.sum(table["a"]).as_py(),
        round(pa.compute.sum(table["b"]).as_py(), 3),
        pa.compute.min(table["s"]).as_py(),
        pa.compute.max(table["s"]).as_py(),
    )


def polars_scan(endpoint, keys):
    options = {
        "aws_access_key_id": keys[0],
        "aws_secret_access_key": keys[1],
        "aws_endpoint_url": endpoint,
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
        "aws_virtual_hosted_style_request": "false",
    }
    frame = (
        pl.scan_parquet(f"s3://{BUCKET}/data/*.parquet", storage_options=options)
        .select(
            pl.len().alias("n"),
            pl.col("a").sum(),
            pl.col("b").sum(),
            pl.col("s").min().alias("smin"),
            pl.col("s").max().alias("smax"),
        )
        .collect()
    )
    row = frame.row(0)
    return (row[0], row[1], round(row[2], 3), row[3], row[4])


def timed(what, scan, *args):
    started = time.monotonic()
    result = scan(*args)
    print(f"{what}: {time.monotonic() - started:.3f} s")
    return result


write_dataset()
want_duck = timed("duckdb, origin", duckdb_scan, ORIGIN, ORIGIN_KEYS)
want_arrow = timed("pyarrow, origin", pyarrow_scan, ORIGIN, ORIGIN_KEYS)
want_polars = timed("polars, origin", polars_scan, ORIGIN, ORIGIN_KEYS)
print("origin:", want_duck, want_arrow, want_polars)
if want_polars != want_arrow:
    fail(f"polars and pyarrow disagree at the origin: {want_polars} {want_arrow}")

# Polars first: the cold scan.
first_polars = timed("polars, s3cached, first (cold)", polars_scan, PROXY, CLIENT)
if first_polars != want_polars:
    fail(f"the cold polars scan differs from the origin: {first_polars}")
first_duck = timed("duckdb, s3cached, first", duckdb_scan, PROXY, CLIENT)
first_arrow = timed("pyarrow, s3cached, first", pyarrow_scan, PROXY, CLIENT)
if first_duck != want_duck or first_arrow != want_arrow:
    fail(f"first round differs from the origin: {first_duck} {first_arrow}")

before_origin, before_client = origin_gets(), client_gets()
second_duck = timed("duckdb, s3cached, second", duckdb_scan, PROXY, CLIENT)
second_arrow = timed("pyarrow, s3cached, second", pyarrow_scan, PROXY, CLIENT)
second_polars = timed("polars, s3cached, second", polars_scan, PROXY, CLIENT)
after_origin, after_client = origin_gets(), client_gets()
if second_duck != want_duck or second_arrow != want_arrow or second_polars != want_polars:
    fail(f"second round differs from the origin: {second_duck} {second_arrow} {second_polars}")
if after_client <= before_client:
    fail("the second round sent no GetObject to s3cached: it proves nothing")
if after_origin != before_origin:
    fail(f"the second round made {after_origin - before_origin} origin GetObject calls")
print(f"second round: {after_client - before_client} client GETs, 0 origin GETs")
print("ALL OK")
