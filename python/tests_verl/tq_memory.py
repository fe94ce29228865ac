"""TransferQueue in this process's memory: the KV calls verl 0.9.1's v1 trainer and replay buffer make
(`kv_batch_put`, `kv_put`, `async_kv_put`, `async_kv_batch_put`, `kv_batch_get`, `kv_list`, `kv_clear`),
installed over the real `transfer_queue` package's functions (TransferQueue 0.1.11). The real one
keeps the store in Ray actors, which these tests do not start.

Semantics as the real interface documents them (transfer_queue/interface.py): a put merges its tag
into the key's tag and its fields into the key's fields; `kv_list` gives ``{partition: {key: tag}}``;
`kv_batch_get` raises ``ValueError`` for an unknown key or a field a key lacks, and packs the rows as
verl's agent loop packs the rows it puts (`verl.utils.tensordict_utils.list_of_dict_to_tensordict`:
dense tensors stacked, ragged ones jagged, anything else a NonTensorStack).
"""
from collections import defaultdict

import transfer_queue as tq
from transfer_queue import KVBatchMeta
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

TAGS = defaultdict(dict)  # partition -> key -> tag
ROWS = defaultdict(dict)  # partition -> key -> {field: value}


def _rows(fields, n):
    """A TensorDict / dict of batched columns as n row dicts."""
    if fields is None:
        return [None] * n
    out = [dict() for _ in range(n)]
    for name in list(fields.keys()):
        col = fields[name]
        if hasattr(col, "is_nested") and col.is_nested:
            values = list(col.unbind(0))
        elif hasattr(col, "tolist") and type(col).__module__.startswith("tensordict"):
            values = col.tolist()
        elif hasattr(col, "unbind"):
            values = list(col.unbind(0))
        else:
            values = list(col)
        assert len(values) == n, (name, len(values), n)
        for row, v in zip(out, values):
            row[name] = v
    return out


def kv_batch_put(keys, partition_id, fields=None, tags=None, data_parser=None):
    if fields is None and tags is None:
        raise ValueError("kv_batch_put needs fields or tags")
    tags = tags or [None] * len(keys)
    for key, row, tag in zip(keys, _rows(fields, len(keys)), tags):
        TAGS[partition_id].setdefault(key, {}).update(tag or {})
        if row is not None:
            ROWS[partition_id].setdefault(key, {}).update(row)
    return KVBatchMeta(keys=list(keys), tags=[dict(TAGS[partition_id][k]) for k in keys], partition_id=partition_id)


def kv_put(key, partition_id, fields=None, tag=None, data_parser=None):
    if fields is not None:
        fields = {k: [v] for k, v in dict(fields).items()}
    return kv_batch_put([key], partition_id, fields=fields, tags=[tag])


async def async_kv_put(key, partition_id, fields=None, tag=None, data_parser=None):
    return kv_put(key, partition_id, fields, tag)


async def async_kv_batch_put(keys, partition_id, fields=None, tags=None, data_parser=None):
    return kv_batch_put(keys, partition_id, fields, tags)


def kv_batch_get(keys, partition_id, select_fields=None):
    keys = [keys] if isinstance(keys, str) else list(keys)
    select = [select_fields] if isinstance(select_fields, str) else select_fields
    rows = []
    for key in keys:
        if key not in ROWS[partition_id]:
            raise ValueError(f"key {key!r} not found in partition {partition_id!r}")
        row = ROWS[partition_id][key]
        names = list(row) if select is None else select
        missing = [f for f in names if f not in row]
        if missing:
            raise ValueError(f"key {key!r} has no field {missing[0]!r}")
        rows.append({f: row[f] for f in names})
    return list_of_dict_to_tensordict(rows)


def kv_list(partition_id=None):
    parts = [partition_id] if partition_id is not None else list(TAGS)
    return {p: {k: dict(t) for k, t in TAGS[p].items()} for p in parts if p in TAGS}


def kv_clear(keys, partition_id):
    for key in [keys] if isinstance(keys, str) else keys:
        TAGS[partition_id].pop(key, None)
        ROWS[partition_id].pop(key, None)


def reset():
    TAGS.clear()
    ROWS.clear()


def install():
    for name in ("kv_batch_put", "kv_put", "async_kv_put", "async_kv_batch_put", "kv_batch_get", "kv_list", "kv_clear"):
        setattr(tq, name, globals()[name])
