"""Compare a shadow's answer with the primary's, per request. Pure.

Both answers are V2 inference responses: JSON, or a JSON header followed by binary
tensors. Outputs are matched by name and the primary's values are the reference.

- Either answer not 2xx, or not a readable V2 response: "error". A failing shadow is
  an error, not a disagreement: there was nothing to compare.
- Different output names, datatypes or shapes: "disagree".
- Float outputs agree when every value is within tolerance, with numpy.isclose's rule
  (|shadow - primary| <= atol + rtol * |primary|, NaN equal to NaN).
- A float output shaped [N, C] with C >= 2 holds per-row class scores: a row whose
  predicted class (argmax) differs is a disagreement even within tolerance, since the
  client acts on the class. A flip counts only when the primary itself told those two
  classes apart beyond tolerance; on a tie the argmax is noise.
- With ``match="classes"`` a class-score output agrees when every row predicts the same
  class, whatever the scores (a recalibrated model may move probabilities, not decisions);
  other float outputs still need their values within tolerance.
- Integer, boolean and BYTES outputs (labels, ids, counts, masks) must be equal: a
  relative tolerance on discrete values would let id 5001 pass for 5000.

max_abs_diff and max_rel_diff cover the float outputs only: the difference between two
class ids or two strings is not a distance.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import orjson

# The server's codecs read response tensors as they read request tensors; their
# BadRequest here means an unreadable answer.
from ..server.codec_binary import tensor_from_bytes
from ..server.codec_json import flatten, loads
from ..server.dtypes import BY_V2, DType
from ..server.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    header_length: int | None  # Inference-Header-Content-Length: binary outputs follow the JSON


@dataclass(frozen=True, slots=True)
class OutputDiff:
    """How one output of the shadow compares with the primary's."""

    name: str
    agree: bool
    detail: str = ""  # empty when it agrees
    max_abs_diff: float | None = None  # float outputs only
    max_rel_diff: float | None = None
    mismatched: int = 0  # values outside tolerance (float) or unequal (others)
    size: int = 0  # values compared; 0 when names, datatypes or shapes already differ
    rows: int = 0  # rows of a class-score [N, C] or label [N] output, else 0
    rows_differ: int = 0  # of those, rows whose predicted class or label differs


@dataclass(frozen=True)
class Comparison:
    result: str  # "agree", "disagree" or "error" (see metric_names.SHADOW_RESULTS)
    max_abs_diff: float | None  # over every numeric output; None when nothing was comparable
    max_rel_diff: float | None
    detail: str  # what differed, for the log line
    outputs: tuple[OutputDiff, ...] = ()  # per output the primary and shadow both have
    # Share of rows whose predicted class or label agrees, over the class-score and label
    # outputs; None when the model has neither.
    class_agreement: float | None = None


class _Unreadable(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Output:
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray  # shaped; BYTES elements as bytes


_TINY = np.finfo(np.float64).tiny
_LEN = struct.Struct("<I")
_MAX_DETAIL_PARTS = 4


def compare_answers(primary: Answer, shadow: Answer, atol: float, rtol: float,
                    match: str = "values") -> Comparison:
    """Never raises: anything that cannot be compared is an "error" saying why."""
    for side, answer in (("primary", primary), ("shadow", shadow)):
        if not 200 <= answer.status < 300:
            return _error(f"{side} answered {answer.status}{_error_message(answer.body)}")
    try:
        decoded = []
        for side, answer in (("primary", primary), ("shadow", shadow)):
            try:
                decoded.append(_outputs(answer))
            except _Unreadable as exc:
                return _error(f"{side} answer is not a V2 inference response: {exc}")
        return _compare(decoded[0], decoded[1], atol, rtol, match)
    except Exception as exc:  # noqa: BLE001 - a comparison bug must not look like a shadow verdict
        return _error(f"comparison failed: {exc!r}")


def _error(detail: str) -> Comparison:
    return Comparison("error", None, None, detail)


# --- Reading a V2 response ---------------------------------------------------------


def _outputs(answer: Answer) -> dict[str, _Output]:
    view = memoryview(answer.body)
    length = answer.header_length
    if length is None:
        head, blob = view, view[:0]
    elif length < 0:
        raise _Unreadable("Inference-Header-Content-Length is not a number")
    elif length > len(view):
        raise _Unreadable(f"Inference-Header-Content-Length {length} is past the body's {len(view)} bytes")
    else:
        head, blob = view[:length], view[length:]
    doc = _loads(head)
    items = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise _Unreadable("no 'outputs' list")
    outputs: dict[str, _Output] = {}
    offset = 0
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _Unreadable("an output is not an object with a 'name'")
        name = item["name"]
        if name in outputs:
            raise _Unreadable(f"output '{name}' appears twice")
        datatype = item.get("datatype")
        dtype = BY_V2.get(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise _Unreadable(f"output '{name}': unknown datatype {datatype!r}")
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):  # noqa: E721
            raise _Unreadable(f"output '{name}': shape {shape!r} is not a list of sizes")
        count = math.prod(shape)
        parameters = item.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(blob):  # noqa: E721
                raise _Unreadable(f"output '{name}': binary_data_size {size!r} does not fit the body")
            values = _from_bytes(name, dtype, count, blob[offset : offset + size])
            offset += size
        elif "data" in item:
            values = _from_json(name, dtype, count, item["data"])
        else:
            raise _Unreadable(f"output '{name}' has neither data nor binary_data_size")
        outputs[name] = _Output(datatype, tuple(shape), values.reshape(shape))
    if offset != len(blob):
        raise _Unreadable(f"{len(blob) - offset} bytes after the last binary output")
    return outputs


def _loads(raw: memoryview) -> object:
    try:
        return loads(raw)
    except BadRequest as exc:
        raise _Unreadable(exc.message) from None


def _from_bytes(name: str, dtype: DType, count: int, raw: memoryview) -> np.ndarray:
    try:
        return tensor_from_bytes(name, dtype.v2, (count,), raw)
    except BadRequest as exc:
        raise _Unreadable(exc.message.replace("input '", "output '", 1)) from None


def _from_json(name: str, dtype: DType, count: int, data: object) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    try:
        if dtype.kind == "float":
            # orjson writes NaN and infinities as null: null reads back as NaN. A number
            # past the datatype's range reads as infinity, as a cast in the model would.
            with np.errstate(over="ignore"):
                values = np.array(data, dtype=np.float64).reshape(-1).astype(dtype.numpy)
        elif dtype.kind == "int":
            values = _ints(dtype, np.array(data).reshape(-1), data)
        elif dtype.kind == "bool":
            values = np.array(data).reshape(-1)
            if values.size and values.dtype != np.bool_:
                raise ValueError("true/false expected")
        else:
            flat: list = []
            flatten(data, flat)
            if not all(isinstance(item, str) for item in flat):
                raise ValueError("strings expected")
            # As bytes, so a JSON answer and a binary one with the same strings are equal.
            values = _object_array([item.encode("utf-8", "surrogatepass") for item in flat])
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _Unreadable(f"output '{name}': data is not {dtype.v2}: {exc}") from None
    if values.size != count:
        raise _Unreadable(f"output '{name}': {values.size} values, shape needs {count}")
    return values


def _ints(dtype: DType, values: np.ndarray, data: list) -> np.ndarray:
    if values.size and values.dtype.kind not in "iu":
        # numpy has no integer type for UINT64 values past 2**63 next to small ones.
        values = np.array(data, dtype=object).reshape(-1)
        if not all(type(v) is int for v in values):  # noqa: E721 - bool is not an integer here
            raise ValueError("integers expected")
    if values.size:
        info = np.iinfo(dtype.numpy)
        if values.min() < info.min or values.max() > info.max:
            raise ValueError(f"values outside the range of {dtype.v2}")
    return values.astype(dtype.numpy)


def _object_array(items: list) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _error_message(body: bytes) -> str:
    try:
        message = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return f": {message[:200]}" if isinstance(message, str) else ""


# --- Comparing outputs ---------------------------------------------------------------


def _compare(primary: dict[str, _Output], shadow: dict[str, _Output], atol: float, rtol: float,
             match: str) -> Comparison:
    problems = []
    missing = [name for name in primary if name not in shadow]
    extra = [name for name in shadow if name not in primary]
    if missing:
        problems.append(f"shadow lacks output {', '.join(missing)}")
    if extra:
        problems.append(f"shadow has extra output {', '.join(extra)}")
    diffs = []
    for name, want in primary.items():
        got = shadow.get(name)
        if got is None:
            continue
        if got.datatype != want.datatype:
            diffs.append(OutputDiff(name, False, f"{name}: datatype {got.datatype} != {want.datatype}"))
        elif got.shape != want.shape:
            diffs.append(OutputDiff(name, False, f"{name}: shape {list(got.shape)} != {list(want.shape)}"))
        elif BY_V2[want.datatype].kind == "float":
            diffs.append(_compare_floats(name, want.values, got.values, atol, rtol, match == "classes"))
        else:
            diffs.append(_compare_exact(name, want.values, got.values))
    problems += [d.detail for d in diffs if not d.agree]
    abs_diffs = [d.max_abs_diff for d in diffs if d.max_abs_diff is not None]
    rel_diffs = [d.max_rel_diff for d in diffs if d.max_rel_diff is not None]
    max_abs = max(abs_diffs) if abs_diffs else None
    max_rel = max(rel_diffs) if rel_diffs else None
    rows = sum(d.rows for d in diffs)
    class_agreement = 1 - sum(d.rows_differ for d in diffs) / rows if rows else None
    if problems:
        if len(problems) > _MAX_DETAIL_PARTS:
            problems[_MAX_DETAIL_PARTS:] = [f"and {len(problems) - _MAX_DETAIL_PARTS} more"]
        detail = "; ".join(problems)
        return Comparison("disagree", max_abs, max_rel, detail, tuple(diffs), class_agreement)
    detail = "1 output agrees" if len(diffs) == 1 else f"{len(diffs)} outputs agree"
    if max_abs is not None:
        detail += f" (max abs diff {max_abs:.3g})"
    return Comparison("agree", max_abs, max_rel, detail, tuple(diffs), class_agreement)


def _compare_floats(name: str, want: np.ndarray, got: np.ndarray, atol: float, rtol: float,
                    classes_only: bool = False) -> OutputDiff:
    size = want.size
    rows = want.shape[0] if want.ndim == 2 and want.shape[1] >= 2 else 0
    if want.tobytes() == got.tobytes():  # the usual answer of a shadow running the same model
        return OutputDiff(name, True, "", 0.0, 0.0, 0, size, rows, 0)
    # Flat, so a 0-d output still gives arrays (numpy turns 0-d results into scalars).
    primary = want.astype(np.float64).reshape(-1)
    shadow = got.astype(np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        magnitude = np.abs(primary)
        diff = np.abs(shadow - primary)
        # Equal values differ by 0 even when infinite, and NaN equals NaN.
        same = (shadow == primary) | (np.isnan(shadow) & np.isnan(primary))
        diff[same] = 0.0
        # numpy.isclose's rule; an infinity is close only to itself.
        close = same | ((diff <= atol + rtol * magnitude) & np.isfinite(primary))
        diff[np.isnan(diff)] = np.inf  # NaN against a number
        rel = diff / np.fmax(magnitude, _TINY)
        rel[np.isnan(rel)] = np.inf  # an infinity against the other one
    mismatched = size - int(np.count_nonzero(close))
    max_abs = float(diff.max()) if size else 0.0
    max_rel = float(rel.max()) if size else 0.0
    rows_differ = 0
    if rows:
        rows_differ = _class_flips(primary.reshape(want.shape), shadow.reshape(want.shape), atol, rtol)
    parts = []
    if mismatched and not (classes_only and rows):
        parts.append(
            f"{mismatched} of {size} values outside tolerance "
            f"(max abs diff {max_abs:.3g}, max rel diff {max_rel:.3g})"
        )
    if rows_differ:
        parts.append(f"predicted class differs in {rows_differ} of {rows} rows")
        if not mismatched:
            parts.append(f"values within tolerance (max abs diff {max_abs:.3g})")
    agree = not parts
    return OutputDiff(
        name, agree, "" if agree else f"{name}: " + "; ".join(parts), max_abs, max_rel,
        mismatched, size, rows, rows_differ,
    )


def _class_flips(primary: np.ndarray, shadow: np.ndarray, atol: float, rtol: float) -> int:
    """Rows whose argmax differs, less those where the primary ties the two classes."""
    want = np.argmax(primary, axis=1)
    got = np.argmax(shadow, axis=1)
    flipped = np.flatnonzero(want != got)
    if not flipped.size:
        return 0
    top = primary[flipped, want[flipped]]
    theirs = primary[flipped, got[flipped]]
    tied = np.isclose(theirs, top, rtol=rtol, atol=atol, equal_nan=True)
    return int(flipped.size - np.count_nonzero(tied))


def _compare_exact(name: str, want: np.ndarray, got: np.ndarray) -> OutputDiff:
    size = want.size
    equal = np.asarray(got == want, dtype=bool)
    mismatched = size - int(np.count_nonzero(equal))
    # A label output ([N] of ids or strings) reads per row.
    rows = size if want.ndim == 1 else 0
    rows_differ = mismatched if rows else 0
    if not mismatched:
        return OutputDiff(name, True, "", None, None, 0, size, rows, 0)
    what = "label differs in {} of {} rows" if rows else "{} of {} values differ"
    return OutputDiff(
        name, False, f"{name}: " + what.format(mismatched, size), None, None,
        mismatched, size, rows, rows_differ,
    )
