/*
 * etcdmonitor_promtext: the hot path of monitoring.metrics.parse_metrics in C.
 *
 * Why: parsing an etcd /metrics page (~150 KB, ~1,300 lines) in Python costs ~0.6 ms of CPU per
 * member and collection; this does the same in ~0.1 ms (bench/rounds.py, docs/PERFORMANCE.md).
 *
 * It handles only what etcd sends (the whole text printable ASCII and '\n'; sample lines
 * `name{labels} value` or `name value` with one space and no timestamp) and hands everything
 * else back to the Python reference: a text with any other byte goes wholly to `fallback_all`,
 * a line of any other shape to `parse_line` (the reference's own line parser). So the result is
 * the reference's, which the tests check line shape by line shape.
 *
 * It also takes the two hottest steps of monitoring.metrics.derive_snapshot (below): summing a
 * histogram's buckets per bound (`histogram_buckets`) and its window step (`histogram_window`),
 * with the same rule: what it does not take, the Python reference does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define TABLE_SIZE 1024 /* a power of two, well above the ~60 names asked for */

typedef struct {
    const char *bytes;
    Py_ssize_t len;
    PyObject *name; /* borrowed from the caller's frozenset */
} Slot;

typedef struct {
    Slot slots[TABLE_SIZE];
} NameTable;

static inline uint64_t load8(const char *s) {
    uint64_t word;
    memcpy(&word, s, 8);
    return word;
}

/* A cheap hash of a metric name (its length and up to 24 of its bytes): names share long
 * prefixes and suffixes, the table's probing sorts out the rest. */
static inline uint64_t name_hash(const char *s, Py_ssize_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    if (n >= 8) {
        h ^= load8(s) * 0xC2B2AE3D27D4EB4FULL;
        h ^= load8(s + n - 8) * 0x165667B19E3779F9ULL;
        h ^= load8(s + n / 2 - 4) * 0x27D4EB2F165667C5ULL;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ULL;
    }
    return h ^ (h >> 29);
}

/* Whether the ASCII text holds a byte the fast path leaves to the reference: a control
 * character but '\n' (the reference's splitlines() also splits on \r, \v, \f, \x1c-\x1e)
 * or DEL. Written to vectorize: ~1 ns per 16 bytes. */
static int has_other_controls(const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t start = 0; start < n; start += 4096) {
        Py_ssize_t stop = start + 4096 < n ? start + 4096 : n;
        unsigned char bad = 0;
        for (Py_ssize_t i = start; i < stop; i++) {
            unsigned char c = p[i];
            bad |= (unsigned char)((c < 0x20) & (c != '\n')) | (unsigned char)(c == 0x7f);
        }
        if (bad) return 1;
    }
    return 0;
}

/* Fill `table` with the str members of `names` (ASCII ones: others can never match an ASCII
 * text). Returns 0, 1 when there are more names than the table takes (the caller hands the
 * text to the reference), or -1 with an exception set. */
static int table_fill(NameTable *table, PyObject *names) {
    memset(table, 0, sizeof(*table));
    if (!PyAnySet_Check(names)) { /* a set holds its names for the call; an iterator would not */
        PyErr_SetString(PyExc_TypeError, "names must be a set or frozenset");
        return -1;
    }
    PyObject *iter = PyObject_GetIter(names);
    if (iter == NULL) return -1;
    PyObject *item;
    Py_ssize_t count = 0;
    while ((item = PyIter_Next(iter)) != NULL) {
        if (!PyUnicode_Check(item) || !PyUnicode_IS_ASCII(item)) {
            Py_DECREF(item);
            continue;
        }
        if (++count > TABLE_SIZE / 2) {
            Py_DECREF(item);
            Py_DECREF(iter);
            return 1;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(item);
        const char *bytes = (const char *)PyUnicode_DATA(item);
        size_t at = (size_t)(name_hash(bytes, len) & (TABLE_SIZE - 1));
        while (table->slots[at].name != NULL) at = (at + 1) & (TABLE_SIZE - 1);
        table->slots[at].bytes = bytes;
        table->slots[at].len = len;
        table->slots[at].name = item; /* the set keeps it alive for the call */
        Py_DECREF(item);
    }
    Py_DECREF(iter);
    return PyErr_Occurred() ? -1 : 0;
}

static inline PyObject *table_find(const NameTable *table, const char *s, Py_ssize_t n) {
    size_t at = (size_t)(name_hash(s, n) & (TABLE_SIZE - 1));
    while (table->slots[at].name != NULL) {
        const Slot *slot = &table->slots[at];
        if (slot->len == n && memcmp(slot->bytes, s, n) == 0) return slot->name;
        at = (at + 1) & (TABLE_SIZE - 1);
    }
    return NULL;
}

/* samples[name].append((labels, value)); steals nothing. */
static int add_sample(PyObject *samples, PyObject *name, PyObject *labels, double value) {
    PyObject *number = PyFloat_FromDouble(value);
    if (number == NULL) return -1;
    PyObject *pair = PyTuple_Pack(2, labels, number);
    Py_DECREF(number);
    if (pair == NULL) return -1;
    PyObject *series = PyDict_GetItemWithError(samples, name);
    int failed;
    if (series != NULL) {
        failed = PyList_Append(series, pair);
    } else if (PyErr_Occurred()) {
        failed = -1;
    } else {
        series = PyList_New(1);
        if (series == NULL) {
            Py_DECREF(pair);
            return -1;
        }
        Py_INCREF(pair);
        PyList_SET_ITEM(series, 0, pair);
        failed = PyDict_SetItem(samples, name, series);
        Py_DECREF(series);
    }
    Py_DECREF(pair);
    return failed;
}

/* float(text) as Python has it; 1 with *out set, 0 when it is no number, -1 on an error. */
static int parse_value(const char *s, Py_ssize_t n, double *out) {
    char buffer[64];
    if (n < (Py_ssize_t)sizeof(buffer)) {
        memcpy(buffer, s, n);
        buffer[n] = '\0';
        char *end = NULL;
        double value = PyOS_string_to_double(buffer, &end, NULL);
        if (!(value == -1.0 && PyErr_Occurred()) && end == buffer + n && n > 0) {
            *out = value;
            return 1;
        }
        PyErr_Clear();
    }
    /* Anything PyOS_string_to_double does not take whole (underscores, say): float() itself. */
    PyObject *text = PyUnicode_FromStringAndSize(s, n);
    if (text == NULL) return -1;
    PyObject *number = PyFloat_FromString(text);
    Py_DECREF(text);
    if (number == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(number);
    Py_DECREF(number);
    return 1;
}

/* A line of another shape, through the reference's `parse_line(line)`:
 * (name, labels, value text, has timestamp) or None. */
static int slow_line(PyObject *samples, PyObject *parse_line, const NameTable *only, int all,
                     const char *s, Py_ssize_t n) {
    PyObject *line = PyUnicode_FromStringAndSize(s, n);
    if (line == NULL) return -1;
    PyObject *parsed = PyObject_CallOneArg(parse_line, line);
    Py_DECREF(line);
    if (parsed == NULL) return -1;
    int failed = 0;
    if (parsed != Py_None && !(PyTuple_Check(parsed) && PyTuple_GET_SIZE(parsed) >= 3)) {
        PyErr_SetString(PyExc_TypeError, "parse_line must return a tuple or None");
        failed = -1;
    } else if (parsed != Py_None) {
        PyObject *name = PyTuple_GET_ITEM(parsed, 0);
        PyObject *labels = PyTuple_GET_ITEM(parsed, 1);
        PyObject *value_text = PyTuple_GET_ITEM(parsed, 2);
        Py_ssize_t name_len, value_len;
        const char *name_bytes = PyUnicode_AsUTF8AndSize(name, &name_len);
        const char *value_bytes = PyUnicode_AsUTF8AndSize(value_text, &value_len);
        if (name_bytes == NULL || value_bytes == NULL) {
            failed = -1;
        } else if (all || table_find(only, name_bytes, name_len) != NULL) {
            double value;
            int got = parse_value(value_bytes, value_len, &value);
            if (got < 0) failed = -1;
            else if (got) failed = add_sample(samples, name, labels, value);
        }
    }
    Py_DECREF(parsed);
    return failed;
}

static PyObject *parse(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"text",       "only",        "sparse",      "label_cache",
                               "parse_labels", "no_labels", "parse_line", "fallback_all",
                               NULL};
    PyObject *text, *only_names, *sparse_names, *label_cache, *parse_labels, *no_labels,
        *parse_line, *fallback_all;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UOOO!OO!OO:parse", keywords, &text,
                                     &only_names, &sparse_names, &PyDict_Type, &label_cache,
                                     &parse_labels, &PyDict_Type, &no_labels, &parse_line,
                                     &fallback_all))
        return NULL;

    Py_ssize_t size;
    const char *data = NULL;
    if (PyUnicode_IS_ASCII(text)) {
        data = (const char *)PyUnicode_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
        if (has_other_controls((const unsigned char *)data, size)) data = NULL;
    }
    if (data == NULL) return PyObject_CallOneArg(fallback_all, text);

    int all = only_names == Py_None;
    NameTable *only = NULL, *sparse = NULL;
    PyObject *names = NULL; /* with `all`: one str per name, shared by its lines */
    PyObject *samples = PyDict_New();
    if (samples == NULL) return NULL;
    only = PyMem_Malloc(sizeof(NameTable));
    sparse = PyMem_Malloc(sizeof(NameTable));
    if (only == NULL || sparse == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    int filled = table_fill(sparse, sparse_names);
    if (filled == 0 && all) {
        memset(only, 0, sizeof(*only));
        names = PyDict_New();
        if (names == NULL) goto error;
    } else if (filled == 0) {
        filled = table_fill(only, only_names);
    }
    if (filled < 0) goto error;
    if (filled > 0) { /* more names than the table takes: the reference parses it all */
        PyMem_Free(only);
        PyMem_Free(sparse);
        Py_DECREF(samples);
        return PyObject_CallOneArg(fallback_all, text);
    }

    const char *end = data + size;
    const char *line = data;
    while (line < end) {
        const char *newline = memchr(line, '\n', end - line);
        const char *stop = newline ? newline : end;
        Py_ssize_t n = stop - line;
        const char *next = newline ? newline + 1 : end;
        if (n == 0 || line[0] == '#') {
            line = next;
            continue;
        }
        const char *brace = memchr(line, '{', n);
        const char *space = memchr(line, ' ', brace ? brace - line : n);
        const char *name_end = brace ? brace : space;
        if (name_end == NULL || name_end == line || (brace != NULL && space != NULL)) {
            /* No value, an empty name, or a space before the labels: the reference's shape. */
            if (slow_line(samples, parse_line, only, all, line, n) < 0) goto error;
            line = next;
            continue;
        }
        Py_ssize_t name_len = name_end - line;
        PyObject *name = NULL;
        if (!all) {
            /* The name is the reference's (no space before it or the labels): skip early. */
            name = table_find(only, line, name_len);
            if (name == NULL) {
                line = next;
                continue;
            }
        }
        /* The sparse rule, as the reference's regex: a line between two newlines, of a sparse
         * name, its labels and the value text "0", is dropped before anything else. */
        if (brace != NULL && line > data && newline != NULL && n >= name_len + 4 &&
            memcmp(stop - 3, "} 0", 3) == 0 && table_find(sparse, line, name_len) != NULL) {
            line = next;
            continue;
        }
        /* The common shapes: name{labels} value / name value, one space, no timestamp. */
        const char *value = NULL, *close = NULL;
        if (brace != NULL) {
            close = stop - 1;
            while (close > brace && *close != '}') close--;
            if (close > brace && close + 2 < stop && close[1] == ' ' &&
                memchr(close + 2, ' ', stop - close - 2) == NULL) {
                value = close + 2;
            }
        } else if (space + 1 < stop && memchr(space + 1, ' ', stop - space - 1) == NULL) {
            value = space + 1;
        }
        if (value == NULL) {
            if (slow_line(samples, parse_line, only, all, line, n) < 0) goto error;
            line = next;
            continue;
        }
        if (all) {
            PyObject *fresh = PyUnicode_FromStringAndSize(line, name_len);
            if (fresh == NULL) goto error;
            name = PyDict_SetDefault(names, fresh, fresh);
            Py_DECREF(fresh); /* `names` holds it */
            if (name == NULL) goto error;
        }
        double number;
        int got = parse_value(value, stop - value, &number);
        if (got < 0) goto error;
        if (!got) {
            line = next;
            continue;
        }
        PyObject *labels;
        if (brace == NULL) {
            labels = no_labels;
            Py_INCREF(labels);
        } else {
            PyObject *section = PyUnicode_FromStringAndSize(brace + 1, close - brace - 1);
            if (section == NULL) goto error;
            labels = PyDict_GetItemWithError(label_cache, section);
            if (labels != NULL) {
                Py_INCREF(labels);
            } else if (!PyErr_Occurred()) {
                labels = PyObject_CallOneArg(parse_labels, section);
            }
            Py_DECREF(section);
            if (labels == NULL) goto error;
        }
        int failed = add_sample(samples, name, labels, number);
        Py_DECREF(labels);
        if (failed < 0) goto error;
        line = next;
    }
    PyMem_Free(only);
    PyMem_Free(sparse);
    Py_XDECREF(names);
    return samples;

error:
    PyMem_Free(only);
    PyMem_Free(sparse);
    Py_XDECREF(names);
    Py_DECREF(samples);
    return NULL;
}


/*
 * histogram_buckets(series, le_cache, cache_max): monitoring.metrics.histogram_buckets without
 * a label filter: the cumulative (le, count) pairs of a histogram's `_bucket` samples, summed
 * per bound across label sets, sorted by bound; None where the Python reference must decide
 * (anything but (dict, float) samples, a NaN bound, more bounds than MAX_BOUNDS).
 *
 * Same arithmetic in the same order as the reference (0.0, then each finite value added in the
 * samples' order), bounds merged by float equality (so -0 and 0 are one bound, the first one
 * seen named), and `le_cache` used and filled as the reference does.
 */
#define MAX_BOUNDS 64

static PyObject *histogram_buckets(PyObject *module, PyObject *args) {
    PyObject *series, *cache;
    Py_ssize_t cache_max;
    if (!PyArg_ParseTuple(args, "OO!n", &series, &PyDict_Type, &cache, &cache_max)) {
        return NULL;
    }
    PyObject *items = PySequence_Fast(series, "series must be a sequence");
    if (items == NULL) {
        return NULL;
    }
    PyObject *bounds[MAX_BOUNDS]; /* strong references */
    double les[MAX_BOUNDS], totals[MAX_BOUNDS];
    int count = 0, decline = 0;
    PyObject *result = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject **samples = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n && !decline; i++) {
        PyObject *sample = samples[i];
        if (!PyTuple_CheckExact(sample) || PyTuple_GET_SIZE(sample) != 2 ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(sample, 0)) ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(sample, 1))) {
            decline = 1;
            break;
        }
        PyObject *le_text = PyDict_GetItemString(PyTuple_GET_ITEM(sample, 0), "le");
        double value = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(sample, 1));
        if (le_text == NULL || !isfinite(value)) {
            continue;
        }
        PyObject *le = PyDict_GetItemWithError(cache, le_text); /* borrowed */
        if (le != NULL) {
            Py_INCREF(le);
        } else {
            if (PyErr_Occurred()) {
                goto done;
            }
            if (!PyUnicode_CheckExact(le_text)) {
                decline = 1;
                break;
            }
            le = PyFloat_FromString(le_text);
            if (le == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                    goto done;
                }
                PyErr_Clear(); /* not a number: the reference skips the sample */
                continue;
            }
            if (PyDict_GET_SIZE(cache) < cache_max && PyDict_SetItem(cache, le_text, le) < 0) {
                Py_DECREF(le);
                goto done;
            }
        }
        /* `le` is a strong reference from here on. */
        if (!PyFloat_CheckExact(le) || isnan(PyFloat_AS_DOUBLE(le))) {
            Py_DECREF(le);
            decline = 1;
            break;
        }
        double bound = PyFloat_AS_DOUBLE(le);
        int at = 0;
        while (at < count && les[at] != bound) {
            at++;
        }
        if (at == count) {
            if (count == MAX_BOUNDS) {
                Py_DECREF(le);
                decline = 1;
                break;
            }
            bounds[count] = le; /* the bound keeps this reference */
            les[count] = bound;
            totals[count] = 0.0;
            count++;
        } else {
            Py_DECREF(le);
        }
        totals[at] = totals[at] + value;
    }
    if (decline) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* Insertion sort by bound: a few dozen bounds, no NaN among them. */
    for (int i = 1; i < count; i++) {
        PyObject *bound_obj = bounds[i];
        double le = les[i], total = totals[i];
        int j = i - 1;
        while (j >= 0 && les[j] > le) {
            bounds[j + 1] = bounds[j];
            les[j + 1] = les[j];
            totals[j + 1] = totals[j];
            j--;
        }
        bounds[j + 1] = bound_obj;
        les[j + 1] = le;
        totals[j + 1] = total;
    }
    result = PyList_New(count);
    if (result == NULL) {
        goto done;
    }
    for (int i = 0; i < count; i++) {
        PyObject *pair = Py_BuildValue("(Od)", bounds[i], totals[i]);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, pair);
    }
done:
    for (int i = 0; i < count; i++) {
        Py_DECREF(bounds[i]);
    }
    Py_DECREF(items);
    return result;
}

/*
 * histogram_window(buckets, history, timestamp, window, steps, quantiles): one histogram's step
 * of monitoring.metrics.derive_snapshot, `histogram_window_reference` in Python: the bucket
 * counts joined to the window history (`window_advance`), then the quantiles `quantiles` of the
 * window's observations (`window_delta`) when it saw any, else of the cumulative buckets.
 * Returns (history, in_window, [quantile or None, ...]), or None where the Python reference
 * must decide: any number it would not hold exactly as a double (an int beyond 2**53, a
 * non-finite count or time), a history entry of another shape or length, odd buckets.
 *
 * Every number is held as a double, exactly (ints are at most 2**53): so comparisons between
 * ints and floats are Python's exact ones, and each subtraction, product and quotient is the
 * reference's own IEEE operation in the same order (the build turns contraction into FMA off).
 */
#define EXACT_INT 9007199254740992.0 /* 2**53 */

typedef struct {
    double value;
    int is_int;
} Num;

/* A JSON-loaded number: an int or float Python object, held exactly. 0: decline. */
static int num_of(PyObject *obj, Num *out, int finite_only) {
    if (PyFloat_CheckExact(obj)) {
        out->value = PyFloat_AS_DOUBLE(obj);
        out->is_int = 0;
        return !finite_only || isfinite(out->value);
    }
    if (PyLong_CheckExact(obj)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        if (v > (long long)EXACT_INT || v < -(long long)EXACT_INT) {
            return 0;
        }
        out->value = (double)v;
        out->is_int = 1;
        return 1;
    }
    return 0;
}

/* `now - before` as Python computes it, then float(): exact for two ints, IEEE otherwise. */
static double num_diff(Num now, Num before) {
    if (now.is_int && before.is_int) {
        return (double)((long long)now.value - (long long)before.value);
    }
    return now.value - before.value;
}

/* monitoring.metrics.histogram_quantile over (les[i], counts[i]); NAN stands for None. */
static double quantile_of(double q, const double *les, const double *counts, Py_ssize_t n,
                          int *none) {
    *none = 0;
    if (n == 0 || counts[n - 1] <= 0) {
        *none = 1;
        return 0.0;
    }
    double rank = q * counts[n - 1];
    double lower_bound = 0.0, lower_count = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (counts[i] >= rank) {
            if (isinf(les[i])) {
                return lower_bound;
            }
            if (counts[i] == lower_count) {
                return les[i];
            }
            return lower_bound + (les[i] - lower_bound) * (rank - lower_count) / (counts[i] - lower_count);
        }
        lower_bound = les[i];
        lower_count = counts[i];
    }
    return lower_bound;
}

/* Whether a count is below (`below`), or else differs from, its number in the checked `values`. */
static int counts_differ(const Num *counts, PyObject *values, Py_ssize_t n, int below) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Num stored = {0.0, 0};
        num_of(PyList_GET_ITEM(values, i), &stored, 1);
        if (below ? counts[i].value < stored.value : counts[i].value != stored.value) {
            return 1;
        }
    }
    return 0;
}

#define MAX_ENTRIES 4096

static PyObject *histogram_window(PyObject *module, PyObject *args) {
    PyObject *buckets, *history, *timestamp_obj, *quantiles;
    double window, steps;
    if (!PyArg_ParseTuple(args, "O!OO!ddO!", &PyList_Type, &buckets, &history, &PyFloat_Type,
                          &timestamp_obj, &window, &steps, &PyTuple_Type, &quantiles)) {
        return NULL;
    }
    double timestamp = PyFloat_AS_DOUBLE(timestamp_obj);
    Py_ssize_t n = PyList_GET_SIZE(buckets);
    Py_ssize_t nq = PyTuple_GET_SIZE(quantiles);
    if (n == 0 || n > MAX_BOUNDS || !isfinite(timestamp) || !isfinite(window)) {
        Py_RETURN_NONE;
    }
    double les[MAX_BOUNDS], totals[MAX_BOUNDS], delta[MAX_BOUNDS];
    Num counts[MAX_BOUNDS], current[MAX_BOUNDS], baseline[MAX_BOUNDS];
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(buckets, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
            Py_RETURN_NONE;
        }
        les[i] = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(pair, 0));
        totals[i] = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(pair, 1));
        if (isnan(les[i]) || !isfinite(totals[i]) || fabs(totals[i]) > EXACT_INT) {
            Py_RETURN_NONE; /* int(count) of these is the reference's to make (or refuse) */
        }
        counts[i].value = trunc(totals[i]); /* int(count) */
        counts[i].is_int = 1;
    }
    for (Py_ssize_t k = 0; k < nq; k++) {
        if (!PyFloat_CheckExact(PyTuple_GET_ITEM(quantiles, k))) {
            Py_RETURN_NONE;
        }
    }
    /* The stored history: [[ts, [count, ...]], ...], every entry checked before any is used. */
    Py_ssize_t entries = 0;
    int usable = 0; /* a history whose last entry has this layout's length */
    if (history != Py_None) {
        if (!PyList_CheckExact(history) || PyList_GET_SIZE(history) > MAX_ENTRIES) {
            Py_RETURN_NONE;
        }
        entries = PyList_GET_SIZE(history);
        for (Py_ssize_t e = 0; e < entries; e++) {
            PyObject *entry = PyList_GET_ITEM(history, e);
            Num ts = {0.0, 0};
            if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 2 ||
                !num_of(PyList_GET_ITEM(entry, 0), &ts, 1) || fabs(ts.value) > EXACT_INT / 2 ||
                !PyList_CheckExact(PyList_GET_ITEM(entry, 1))) {
                Py_RETURN_NONE;
            }
            PyObject *values = PyList_GET_ITEM(entry, 1);
            if (e == entries - 1) {
                usable = PyList_GET_SIZE(values) == n;
            }
            Py_ssize_t m = PyList_GET_SIZE(values);
            for (Py_ssize_t i = 0; i < m; i++) {
                Num v = {0.0, 0};
                if (!num_of(PyList_GET_ITEM(values, i), &v, 1)) {
                    Py_RETURN_NONE;
                }
            }
        }
        if (entries > 0 && usable) {
            for (Py_ssize_t e = 0; e < entries; e++) {
                if (PyList_GET_SIZE(PyList_GET_ITEM(PyList_GET_ITEM(history, e), 1)) != n) {
                    Py_RETURN_NONE; /* zip(strict=True) in window_delta: the reference raises */
                }
            }
        }
    }

    PyObject *result = NULL, *counts_list = NULL, *advanced = NULL, *qs = NULL;
    counts_list = PyList_New(n);
    if (counts_list == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *count = PyLong_FromDouble(counts[i].value);
        if (count == NULL) {
            goto error;
        }
        PyList_SET_ITEM(counts_list, i, count);
    }

    /* window_advance */
    if (entries == 0 || !usable) {
        advanced = Py_BuildValue("[[OO]]", timestamp_obj, counts_list);
        if (advanced == NULL) {
            goto error;
        }
    } else {
        PyObject *last = PyList_GET_ITEM(history, entries - 1);
        PyObject *last_counts = PyList_GET_ITEM(last, 1);
        if (counts_differ(counts, last_counts, n, 1)) { /* the member restarted */
            PyObject *zeros = PyList_New(n);
            if (zeros == NULL) {
                goto error;
            }
            for (Py_ssize_t i = 0; i < n; i++) {
                PyList_SET_ITEM(zeros, i, PyLong_FromLong(0));
            }
            advanced = Py_BuildValue("[[ON]]", PyList_GET_ITEM(last, 0), zeros);
        } else {
            advanced = PyList_GetSlice(history, 0, entries);
        }
        if (advanced == NULL) {
            goto error;
        }
        Py_ssize_t length = PyList_GET_SIZE(advanced);
        PyObject *tail = PyList_GET_ITEM(advanced, length - 1);
        PyObject *tail_counts = PyList_GET_ITEM(tail, 1);
        if (counts_differ(counts, tail_counts, n, 0)) {
            PyObject *entry = Py_BuildValue("[OO]", timestamp_obj, counts_list);
            if (entry == NULL) {
                goto error;
            }
            int replace = 0;
            if (length > 1) {
                Num newest = {0.0, 0}, older = {0.0, 0};
                num_of(PyList_GET_ITEM(tail, 0), &newest, 1);
                num_of(PyList_GET_ITEM(PyList_GET_ITEM(advanced, length - 2), 0), &older, 1);
                replace = num_diff(newest, older) < window / steps;
            }
            int failed = replace ? PyList_SetItem(advanced, length - 1, entry)
                                 : PyList_Append(advanced, entry);
            if (!replace) {
                Py_DECREF(entry);
            }
            if (failed < 0) {
                goto error;
            }
        }
        double cutoff = timestamp - window;
        Py_ssize_t first = 0;
        length = PyList_GET_SIZE(advanced);
        for (Py_ssize_t e = 0; e < length; e++) {
            Num ts = {0.0, 0};
            num_of(PyList_GET_ITEM(PyList_GET_ITEM(advanced, e), 0), &ts, 1);
            if (ts.value <= cutoff) {
                first = e;
            }
        }
        if (first > 0) {
            PyObject *kept = PyList_GetSlice(advanced, first, length);
            Py_SETREF(advanced, kept);
            if (advanced == NULL) {
                goto error;
            }
        }
    }

    /* window_delta, then the quantiles */
    Py_ssize_t length = PyList_GET_SIZE(advanced);
    Num first_ts = {0.0, 0};
    num_of(PyList_GET_ITEM(PyList_GET_ITEM(advanced, 0), 0), &first_ts, 1);
    int in_window = 0;
    if (first_ts.value < timestamp) {
        double cutoff = timestamp - window;
        PyObject *base = PyList_GET_ITEM(PyList_GET_ITEM(advanced, 0), 1);
        for (Py_ssize_t e = 0; e < length; e++) {
            PyObject *entry = PyList_GET_ITEM(advanced, e);
            Num ts = {0.0, 0};
            num_of(PyList_GET_ITEM(entry, 0), &ts, 1);
            if (ts.value > cutoff) {
                break;
            }
            base = PyList_GET_ITEM(entry, 1);
        }
        PyObject *now = PyList_GET_ITEM(PyList_GET_ITEM(advanced, length - 1), 1);
        for (Py_ssize_t i = 0; i < n; i++) {
            num_of(PyList_GET_ITEM(now, i), &current[i], 1);
            num_of(PyList_GET_ITEM(base, i), &baseline[i], 1);
            delta[i] = num_diff(current[i], baseline[i]);
        }
        in_window = delta[n - 1] > 0;
    }
    qs = PyList_New(nq);
    if (qs == NULL) {
        goto error;
    }
    for (Py_ssize_t k = 0; k < nq; k++) {
        double q = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(quantiles, k));
        int none;
        double value = in_window ? quantile_of(q, les, delta, n, &none)
                                 : quantile_of(q, les, totals, n, &none);
        PyObject *item = none ? Py_NewRef(Py_None) : PyFloat_FromDouble(value);
        if (item == NULL) {
            goto error;
        }
        PyList_SET_ITEM(qs, k, item);
    }
    result = Py_BuildValue("(NON)", advanced, in_window ? Py_True : Py_False, qs);
    advanced = qs = NULL;
    Py_DECREF(counts_list);
    return result;

error:
    Py_XDECREF(counts_list);
    Py_XDECREF(advanced);
    Py_XDECREF(qs);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_VARARGS | METH_KEYWORDS,
     "parse(text, only, sparse, label_cache, parse_labels, no_labels, parse_line, fallback_all)"
     "\n--\n\nmonitoring.metrics.parse_metrics's samples of `text` (see the module's comment)."},
    {"histogram_buckets", histogram_buckets, METH_VARARGS,
     "histogram_buckets(series, le_cache, cache_max)\n--\n\n"
     "monitoring.metrics.histogram_buckets without a filter, or None (see its comment)."},
    {"histogram_window", histogram_window, METH_VARARGS,
     "histogram_window(buckets, history, timestamp, window, steps, quantiles)\n--\n\n"
     "monitoring.metrics.histogram_window_reference, or None (see its comment)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "etcdmonitor_promtext",
    .m_doc = "The Prometheus text parser's hot path in C (monitoring.metrics uses it when installed).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_etcdmonitor_promtext(void) { return PyModule_Create(&module); }
