/* Fast path from OTLP protobuf bytes to the decoded shapes of collector/decoding/shapes.py.
 *
 * Why: walking an upb message from Python creates a wrapper object per KeyValue, per AnyValue
 * and per string; with ~23 attributes per Claude Code record that is ~25 us per record, more
 * than everything else the collector does per record. This reads the wire format once and
 * builds only the Python objects the decoders keep (attribute dicts, numbers, strings).
 *
 * Contract: the result is exactly what shapes.logs_from_message / metrics_from_message build
 * from the upb-parsed message, or None. None means "not handled here": anything this code
 * does not fully understand (a malformed or truncated body, invalid UTF-8 in any string
 * field, a singular field or oneof sent twice (upb merges those), exemplars, non-Sum data,
 * string-table indexes, nesting deeper than MAX_DEPTH) returns None and the caller parses
 * with upb, which is the reference: it then accepts, or refuses the body as malformed. So
 * this code only ever accepts bodies upb accepts, and decodes them identically
 * (tests/decoding/test_fast_decoder.py checks both claims, on captures and fuzzed bodies).
 *
 * Every read is bounds-checked against the end of its enclosing length-delimited field.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32

/* Returned by the parse helpers: OK, or FALLBACK (no Python error set), or ERROR (a Python
 * exception such as MemoryError is set and must propagate). */
#define OK 0
#define FALLBACK -1
#define ERROR -2

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return FALLBACK;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) return FALLBACK; /* over 64 bits */
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return OK;
        }
    }
    return FALLBACK;
}

static int read_fixed64(Reader *r, uint64_t *out) {
    if (r->end - r->p < 8) return FALLBACK;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += 8;
    *out = v;
    return OK;
}

/* A length-delimited field's payload as a sub-reader. */
static int read_len(Reader *r, Reader *sub) {
    uint64_t n;
    if (read_varint(r, &n) != OK) return FALLBACK;
    if (n > (uint64_t)(r->end - r->p)) return FALLBACK;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return OK;
}

static int read_tag(Reader *r, uint32_t *field, uint32_t *wire) {
    uint64_t tag;
    if (read_varint(r, &tag) != OK) return FALLBACK;
    if (tag >> 32) return FALLBACK;
    *field = (uint32_t)(tag >> 3);
    *wire = (uint32_t)(tag & 7);
    if (*field == 0) return FALLBACK;
    return OK;
}

/* Skip a field of a number this code does not know (upb keeps it as an unknown field and
 * validates nothing in it). Groups are left to upb. */
static int skip_unknown(Reader *r, uint32_t wire) {
    uint64_t v;
    Reader sub;
    switch (wire) {
    case 0: return read_varint(r, &v);
    case 1: return read_fixed64(r, &v);
    case 2: return read_len(r, &sub);
    case 5:
        if (r->end - r->p < 4) return FALLBACK;
        r->p += 4;
        return OK;
    default: return FALLBACK;
    }
}

/* A known scalar field we do not keep: its wire type must match. */
static int skip_varint(Reader *r, uint32_t wire) {
    uint64_t v;
    return wire == 0 ? read_varint(r, &v) : FALLBACK;
}

static int skip_fixed64(Reader *r, uint32_t wire) {
    uint64_t v;
    return wire == 1 ? read_fixed64(r, &v) : FALLBACK;
}

static int skip_fixed32(Reader *r, uint32_t wire) {
    if (wire != 5 || r->end - r->p < 4) return FALLBACK;
    r->p += 4;
    return OK;
}

static int skip_bytes(Reader *r, uint32_t wire) {
    Reader sub;
    return wire == 2 ? read_len(r, &sub) : FALLBACK;
}

static int is_utf8(const uint8_t *s, Py_ssize_t n);

/* A known string field we do not keep: upb still refuses invalid UTF-8 in it. */
static int skip_string(Reader *r, uint32_t wire) {
    Reader sub;
    if (wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
    return is_utf8(sub.p, sub.end - sub.p) ? OK : FALLBACK;
}

/* UTF-8 as upb checks it: no overlongs, no surrogates, nothing above U+10FFFF. */
static int is_utf8(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int extra;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= extra) return 0;
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += extra + 1;
    }
    return 1;
}

/* A string field as a new str; FALLBACK on invalid UTF-8. */
static int read_string(Reader *r, uint32_t wire, PyObject **out) {
    Reader sub;
    if (wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
    Py_ssize_t n = sub.end - sub.p;
    if (!is_utf8(sub.p, n)) return FALLBACK;
    PyObject *s = PyUnicode_DecodeUTF8((const char *)sub.p, n, "strict");
    if (s == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            return FALLBACK;
        }
        return ERROR;
    }
    *out = s;
    return OK;
}

/* -- AnyValue, KeyValue ------------------------------------------------------------------ */

static int parse_keyvalue(Reader *r, PyObject **key, PyObject **value, int depth);
static int parse_anyvalue(Reader *r, PyObject **out, int depth);

/* One item of an ArrayValue: its AnyValue, appended to `items`. */
static int array_item(Reader *item, PyObject *items, int depth) {
    PyObject *v = NULL;
    int rc = parse_anyvalue(item, &v, depth + 1);
    if (rc != OK) return rc;
    rc = PyList_Append(items, v) < 0 ? ERROR : OK;
    Py_DECREF(v);
    return rc;
}

/* One item of a KeyValueList: a (key, value) pair, appended to `items`. */
static int kvlist_item(Reader *item, PyObject *items, int depth) {
    PyObject *k = NULL, *v = NULL, *pair;
    int rc = parse_keyvalue(item, &k, &v, depth + 1);
    if (rc != OK) return rc;
    pair = PyTuple_Pack(2, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    rc = (!pair || PyList_Append(items, pair) < 0) ? ERROR : OK;
    Py_XDECREF(pair);
    return rc;
}

/* A message whose field 1 is a repeated message (ArrayValue, KeyValueList) -> a tuple of
 * what `item` makes of each. */
static int parse_list(Reader *r, uint32_t wire, int (*item)(Reader *, PyObject *, int), int depth,
                      PyObject **out) {
    Reader lst;
    if (wire != 2 || read_len(r, &lst) != OK) return FALLBACK;
    PyObject *items = PyList_New(0);
    if (!items) return ERROR;
    int rc = OK;
    while (rc == OK && lst.p < lst.end) {
        uint32_t field, w;
        Reader sub;
        if ((rc = read_tag(&lst, &field, &w)) != OK) break;
        if (field != 1)
            rc = skip_unknown(&lst, w);
        else if (w != 2 || read_len(&lst, &sub) != OK)
            rc = FALLBACK;
        else
            rc = item(&sub, items, depth);
    }
    if (rc == OK && !(*out = PyList_AsTuple(items))) rc = ERROR;
    Py_DECREF(items);
    return rc;
}

/* AnyValue -> None | str | bool | int | float | bytes | tuple (array) | tuple of pairs. */
static int parse_anyvalue(Reader *r, PyObject **out, int depth) {
    uint32_t field, wire;
    PyObject *value = NULL;
    int seen = 0, rc;
    if (depth > MAX_DEPTH) return FALLBACK;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto fail;
        if (field >= 1 && field <= 8) {
            if (seen++) { /* a oneof member twice: upb's last-wins/merge rules, not ours */
                rc = FALLBACK;
                goto fail;
            }
        }
        switch (field) {
        case 1:
            rc = read_string(r, wire, &value);
            break;
        case 2: {
            uint64_t v;
            rc = wire == 0 ? read_varint(r, &v) : FALLBACK;
            if (rc == OK) {
                value = PyBool_FromLong(v != 0);
            }
            break;
        }
        case 3: {
            uint64_t v;
            rc = wire == 0 ? read_varint(r, &v) : FALLBACK;
            if (rc == OK && !(value = PyLong_FromLongLong((long long)(int64_t)v))) rc = ERROR;
            break;
        }
        case 4: {
            uint64_t v;
            double d;
            rc = wire == 1 ? read_fixed64(r, &v) : FALLBACK;
            if (rc == OK) {
                memcpy(&d, &v, sizeof d);
                if (!(value = PyFloat_FromDouble(d))) rc = ERROR;
            }
            break;
        }
        case 5: /* ArrayValue { repeated AnyValue values = 1; } -> (value, ...) */
            rc = parse_list(r, wire, array_item, depth, &value);
            break;
        case 6: /* KeyValueList { repeated KeyValue values = 1; } -> ((key, value), ...) */
            rc = parse_list(r, wire, kvlist_item, depth, &value);
            break;
        case 7: {
            Reader b;
            rc = wire == 2 ? read_len(r, &b) : FALLBACK;
            if (rc == OK &&
                !(value = PyBytes_FromStringAndSize((const char *)b.p, b.end - b.p)))
                rc = ERROR;
            break;
        }
        case 8: /* string_value_strindex: a profiles-signal dictionary index; leave to upb */
            rc = FALLBACK;
            break;
        default:
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto fail;
    }
    if (value == NULL) {
        Py_INCREF(Py_None);
        value = Py_None;
    }
    *out = value;
    return OK;
fail:
    Py_XDECREF(value);
    return rc;
}

/* KeyValue { string key = 1; AnyValue value = 2; int32 key_strindex = 3; } */
static int parse_keyvalue(Reader *r, PyObject **key, PyObject **value, int depth) {
    PyObject *k = NULL, *v = NULL;
    uint32_t field, wire;
    int rc = OK;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto fail;
        if (field == 1) {
            if (k) {
                rc = FALLBACK;
                goto fail;
            }
            rc = read_string(r, wire, &k);
        } else if (field == 2) {
            Reader sub;
            if (v || wire != 2 || read_len(r, &sub) != OK) {
                rc = FALLBACK;
                goto fail;
            }
            rc = parse_anyvalue(&sub, &v, depth + 1);
        } else if (field == 3) {
            rc = FALLBACK;
        } else {
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto fail;
    }
    if (!k && !(k = PyUnicode_FromStringAndSize("", 0))) {
        rc = ERROR;
        goto fail;
    }
    if (!v) {
        Py_INCREF(Py_None);
        v = Py_None;
    }
    *key = k;
    *value = v;
    return OK;
fail:
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* One KeyValue field's payload into `dict` (a later duplicate key wins, as in to_dict). */
static int add_kv(Reader *r, uint32_t wire, PyObject *dict, int depth) {
    Reader sub;
    PyObject *k, *v;
    int rc;
    if (wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
    if ((rc = parse_keyvalue(&sub, &k, &v, depth)) != OK) return rc;
    rc = PyDict_SetItem(dict, k, v) < 0 ? ERROR : OK;
    Py_DECREF(k);
    Py_DECREF(v);
    return rc;
}

/* Resource { repeated KeyValue attributes = 1; uint32 dropped = 2; repeated EntityRef = 3; } */
static int parse_resource(Reader *r, PyObject *dict) {
    uint32_t field, wire;
    int rc;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) return rc;
        if (field == 1)
            rc = add_kv(r, wire, dict, 0);
        else if (field == 2)
            rc = skip_varint(r, wire);
        else if (field == 3)
            rc = FALLBACK; /* entity refs: rare; upb validates their strings */
        else
            rc = skip_unknown(r, wire);
        if (rc != OK) return rc;
    }
    return OK;
}

/* InstrumentationScope { name = 1; version = 2; attributes = 3; dropped = 4; } -> name. */
static int parse_scope(Reader *r, PyObject **name) {
    uint32_t field, wire;
    int rc;
    PyObject *n = NULL, *ignored = NULL;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto fail;
        if (field == 1) {
            if (n) {
                rc = FALLBACK;
                goto fail;
            }
            rc = read_string(r, wire, &n);
        } else if (field == 2) {
            rc = skip_string(r, wire);
        } else if (field == 3) {
            if (!ignored && !(ignored = PyDict_New())) {
                rc = ERROR;
                goto fail;
            }
            rc = add_kv(r, wire, ignored, 0); /* parsed only to validate it as upb does */
        } else if (field == 4) {
            rc = skip_varint(r, wire);
        } else {
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto fail;
    }
    Py_XDECREF(ignored);
    if (!n && !(n = PyUnicode_FromStringAndSize("", 0))) return ERROR;
    *name = n;
    return OK;
fail:
    Py_XDECREF(n);
    Py_XDECREF(ignored);
    return rc;
}

/* The singular `resource` of a ResourceLogs/ResourceMetrics: at most once. */
static int read_resource_field(Reader *r, uint32_t wire, int *seen, PyObject *dict) {
    Reader sub;
    if ((*seen)++ || wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
    return parse_resource(&sub, dict);
}

/* -- logs --------------------------------------------------------------------------------- */

/* LogRecord -> (attributes merged over the resource's, time, observed time, body if a
 * string, event_name). */
static int parse_logrecord(Reader *r, PyObject *resource, PyObject *out_list) {
    uint32_t field, wire;
    int rc = OK, body_seen = 0, name_seen = 0;
    uint64_t time_ns = 0, observed_ns = 0;
    PyObject *attrs = PyDict_Copy(resource), *body = NULL, *event_name = NULL, *row = NULL;
    if (!attrs) return ERROR;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        switch (field) {
        case 1: rc = wire == 1 ? read_fixed64(r, &time_ns) : FALLBACK; break;
        case 11: rc = wire == 1 ? read_fixed64(r, &observed_ns) : FALLBACK; break;
        case 2: rc = skip_varint(r, wire); break;
        case 3: rc = skip_string(r, wire); break;
        case 5: {
            Reader sub;
            if (body_seen++ || wire != 2 || read_len(r, &sub) != OK) {
                rc = FALLBACK;
                break;
            }
            rc = parse_anyvalue(&sub, &body, 1);
            break;
        }
        case 6: rc = add_kv(r, wire, attrs, 0); break;
        case 7: rc = skip_varint(r, wire); break;
        case 8: rc = skip_fixed32(r, wire); break;
        case 9:
        case 10: rc = skip_bytes(r, wire); break;
        case 12:
            if (name_seen++) {
                rc = FALLBACK;
                break;
            }
            rc = read_string(r, wire, &event_name);
            break;
        default: rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto done;
    }
    if (body && !PyUnicode_Check(body)) Py_CLEAR(body);
    if (!body) {
        Py_INCREF(Py_None);
        body = Py_None;
    }
    if (!event_name && !(event_name = PyUnicode_FromStringAndSize("", 0))) {
        rc = ERROR;
        goto done;
    }
    row = Py_BuildValue("(OKKOO)", attrs, (unsigned long long)time_ns,
                        (unsigned long long)observed_ns, body, event_name);
    if (!row || PyList_Append(out_list, row) < 0) rc = ERROR;
done:
    Py_XDECREF(row);
    Py_XDECREF(attrs);
    Py_XDECREF(body);
    Py_XDECREF(event_name);
    return rc;
}

/* The second pass of a message read in two (ResourceLogs, ScopeMetrics: their items need a
 * header field that may come after them on the wire): `item(sub, context, out)` for every
 * field 2, whose wire type the first pass has checked. */
static int each_item(Reader r, int (*item)(Reader *, PyObject *, PyObject *), PyObject *context,
                     PyObject *out) {
    uint32_t field, wire;
    int rc = OK;
    while (rc == OK && r.p < r.end) {
        Reader sub;
        if ((rc = read_tag(&r, &field, &wire)) != OK) break;
        if (field != 2)
            rc = skip_unknown(&r, wire);
        else if (read_len(&r, &sub) != OK)
            rc = FALLBACK;
        else
            rc = item(&sub, context, out);
    }
    return rc;
}

/* ScopeLogs { scope = 1; repeated LogRecord log_records = 2; schema_url = 3; } */
static int parse_scopelogs(Reader *r, PyObject *resource, PyObject *out_list) {
    uint32_t field, wire;
    int rc, scope_seen = 0;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) return rc;
        Reader sub;
        if (field == 1) {
            PyObject *name = NULL;
            if (scope_seen++ || wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
            if ((rc = parse_scope(&sub, &name)) != OK) return rc;
            Py_DECREF(name);
        } else if (field == 2) {
            if (wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
            if ((rc = parse_logrecord(&sub, resource, out_list)) != OK) return rc;
        } else if (field == 3) {
            if ((rc = skip_string(r, wire)) != OK) return rc;
        } else if ((rc = skip_unknown(r, wire)) != OK) {
            return rc;
        }
    }
    return OK;
}

/* ResourceLogs { resource = 1; repeated ScopeLogs scope_logs = 2; schema_url = 3; }
 * The resource may come after the scope logs on the wire, so the scope logs are read in a
 * second pass once the resource is known. */
static int parse_resourcelogs(Reader *r, PyObject *out_list) {
    uint32_t field, wire;
    int rc, seen = 0;
    PyObject *resource = PyDict_New();
    Reader start = *r;
    if (!resource) return ERROR;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        if (field == 1)
            rc = read_resource_field(r, wire, &seen, resource);
        else if (field == 2)
            rc = skip_bytes(r, wire);
        else if (field == 3)
            rc = skip_string(r, wire);
        else
            rc = skip_unknown(r, wire);
        if (rc != OK) goto done;
    }
    rc = each_item(start, parse_scopelogs, resource, out_list);
done:
    Py_DECREF(resource);
    return rc;
}

static PyObject *finish(int rc, PyObject *result) {
    if (rc == OK) return result;
    Py_XDECREF(result);
    if (rc == ERROR) return NULL;
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* An Export*ServiceRequest: `repeated Resource* resource_* = 1`, each parsed by `parse`. */
static PyObject *parse_request(PyObject *arg, int (*parse)(Reader *, PyObject *)) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    PyObject *out = PyList_New(0);
    int rc = out ? OK : ERROR;
    uint32_t field, wire;
    while (rc == OK && r.p < r.end) {
        Reader sub;
        if ((rc = read_tag(&r, &field, &wire)) != OK) break;
        if (field == 1) {
            if (wire != 2 || read_len(&r, &sub) != OK)
                rc = FALLBACK;
            else
                rc = parse(&sub, out);
        } else {
            rc = skip_unknown(&r, wire);
        }
    }
    PyBuffer_Release(&view);
    return finish(rc, out);
}

static PyObject *fast_logs(PyObject *self, PyObject *arg) {
    return parse_request(arg, parse_resourcelogs);
}

/* -- metrics ------------------------------------------------------------------------------ */

/* NumberDataPoint -> (start, time, value kind (0 none, 1 double, 2 int), value, own attrs). */
static int parse_numberpoint(Reader *r, PyObject *out_list) {
    uint32_t field, wire;
    int rc = OK, kind = 0;
    uint64_t start = 0, time_ns = 0, raw = 0;
    PyObject *attrs = PyDict_New(), *value = NULL, *row = NULL;
    if (!attrs) return ERROR;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        switch (field) {
        case 7: rc = add_kv(r, wire, attrs, 0); break;
        case 2: rc = wire == 1 ? read_fixed64(r, &start) : FALLBACK; break;
        case 3: rc = wire == 1 ? read_fixed64(r, &time_ns) : FALLBACK; break;
        case 4:
        case 6:
            if (kind || wire != 1) {
                rc = FALLBACK;
                break;
            }
            rc = read_fixed64(r, &raw);
            kind = field == 4 ? 1 : 2;
            break;
        case 5: rc = FALLBACK; break; /* exemplars */
        case 8: rc = skip_varint(r, wire); break;
        default: rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto done;
    }
    if (kind == 1) {
        double d;
        memcpy(&d, &raw, sizeof d);
        value = PyFloat_FromDouble(d);
    } else if (kind == 2) {
        value = PyLong_FromLongLong((long long)(int64_t)raw);
    } else {
        value = PyLong_FromLong(0);
    }
    if (!value) {
        rc = ERROR;
        goto done;
    }
    row = Py_BuildValue("(KKiOO)", (unsigned long long)start, (unsigned long long)time_ns, kind,
                        value, attrs);
    if (!row || PyList_Append(out_list, row) < 0) rc = ERROR;
done:
    Py_XDECREF(row);
    Py_XDECREF(value);
    Py_XDECREF(attrs);
    return rc;
}

/* Sum { repeated NumberDataPoint data_points = 1; temporality = 2; is_monotonic = 3; } */
static int parse_sum(Reader *r, PyObject *points, long *temporality) {
    uint32_t field, wire;
    int rc;
    while (r->p < r->end) {
        Reader sub;
        if ((rc = read_tag(r, &field, &wire)) != OK) return rc;
        if (field == 1) {
            if (wire != 2 || read_len(r, &sub) != OK) return FALLBACK;
            rc = parse_numberpoint(&sub, points);
        } else if (field == 2) {
            uint64_t v;
            if (wire != 0 || read_varint(r, &v) != OK) return FALLBACK;
            *temporality = (long)(int32_t)(uint32_t)v;
            rc = OK;
        } else if (field == 3) {
            rc = skip_varint(r, wire);
        } else {
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) return rc;
    }
    return OK;
}

/* Metric -> (name, kind ("sum" or None), temporality, points). Any other data kind, or data
 * sent twice, is left to upb. */
static int parse_metric(Reader *r, PyObject *unused, PyObject *out_list) {
    uint32_t field, wire;
    int rc = OK, data_seen = 0, name_seen = 0;
    long temporality = 0;
    PyObject *name = NULL, *points = PyList_New(0), *row = NULL;
    if (!points) return ERROR;
    while (r->p < r->end) {
        Reader sub;
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        switch (field) {
        case 1:
            if (name_seen++) {
                rc = FALLBACK;
                break;
            }
            rc = read_string(r, wire, &name);
            break;
        case 2:
        case 3: rc = skip_string(r, wire); break;
        case 7:
            if (data_seen++ || wire != 2 || read_len(r, &sub) != OK) {
                rc = FALLBACK;
                break;
            }
            rc = parse_sum(&sub, points, &temporality);
            break;
        case 5:
        case 9:
        case 10:
        case 11:
        case 12: rc = FALLBACK; break;
        default: rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto done;
    }
    if (!name && !(name = PyUnicode_FromStringAndSize("", 0))) {
        rc = ERROR;
        goto done;
    }
    row = Py_BuildValue("(OslOn)", name, data_seen ? "sum" : NULL, temporality, points,
                        PyList_GET_SIZE(points));
    if (!row || PyList_Append(out_list, row) < 0) rc = ERROR;
done:
    Py_XDECREF(row);
    Py_XDECREF(name);
    Py_DECREF(points);
    return rc;
}

/* ScopeMetrics { scope = 1; repeated Metric metrics = 2; schema_url = 3; } -> (scope name,
 * metrics); the scope name is needed before the metrics, so two passes as for resources. */
static int parse_scopemetrics(Reader *r, PyObject *out_list) {
    uint32_t field, wire;
    int rc = OK, scope_seen = 0;
    PyObject *name = NULL, *metrics = NULL, *row = NULL;
    Reader start = *r;
    while (r->p < r->end) {
        Reader sub;
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        if (field == 1) {
            if (scope_seen++ || wire != 2 || read_len(r, &sub) != OK) {
                rc = FALLBACK;
                goto done;
            }
            rc = parse_scope(&sub, &name);
        } else if (field == 2) {
            rc = skip_bytes(r, wire);
        } else if (field == 3) {
            rc = skip_string(r, wire);
        } else {
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto done;
    }
    if (!name && !(name = PyUnicode_FromStringAndSize("", 0))) {
        rc = ERROR;
        goto done;
    }
    if (!(metrics = PyList_New(0))) {
        rc = ERROR;
        goto done;
    }
    if ((rc = each_item(start, parse_metric, NULL, metrics)) != OK) goto done;
    row = PyTuple_Pack(2, name, metrics);
    rc = (!row || PyList_Append(out_list, row) < 0) ? ERROR : OK;
done:
    Py_XDECREF(row);
    Py_XDECREF(name);
    Py_XDECREF(metrics);
    return rc;
}

/* ResourceMetrics -> (resource attrs, [(scope name, [metric, ...]), ...]). */
static int parse_resourcemetrics(Reader *r, PyObject *out_list) {
    uint32_t field, wire;
    int rc = OK, seen = 0;
    PyObject *resource = PyDict_New(), *scopes = PyList_New(0), *row = NULL;
    if (!resource || !scopes) {
        rc = ERROR;
        goto done;
    }
    while (r->p < r->end) {
        Reader sub;
        if ((rc = read_tag(r, &field, &wire)) != OK) goto done;
        if (field == 1) {
            rc = read_resource_field(r, wire, &seen, resource);
        } else if (field == 2) {
            if (wire != 2 || read_len(r, &sub) != OK) {
                rc = FALLBACK;
                goto done;
            }
            rc = parse_scopemetrics(&sub, scopes);
        } else if (field == 3) {
            rc = skip_string(r, wire);
        } else {
            rc = skip_unknown(r, wire);
        }
        if (rc != OK) goto done;
    }
    row = PyTuple_Pack(2, resource, scopes);
    rc = (!row || PyList_Append(out_list, row) < 0) ? ERROR : OK;
done:
    Py_XDECREF(row);
    Py_XDECREF(resource);
    Py_XDECREF(scopes);
    return rc;
}

static PyObject *fast_metrics(PyObject *self, PyObject *arg) {
    return parse_request(arg, parse_resourcemetrics);
}

static PyMethodDef methods[] = {
    {"logs", fast_logs, METH_O,
     "ExportLogsServiceRequest bytes -> [(attrs, time_ns, observed_ns, body str | None, "
     "event_name)], or None when upb must decide."},
    {"metrics", fast_metrics, METH_O,
     "ExportMetricsServiceRequest bytes -> [(resource attrs, [(scope, [(name, 'sum' | None, "
     "temporality, [(start, time, value kind, value, attrs)], count)])])], or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastotlp",
    "Fast path from OTLP protobuf bytes to decoded shapes (see the C source's header).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastotlp(void) { return PyModule_Create(&module); }
