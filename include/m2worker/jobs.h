/*
 * jobs.h - the job types: one const table entry per type, like tmux's
 * cmd_entry, and what a leased task means in Magento calls.
 *
 * Everything the rest of m2worker knows about a type is in its struct
 * m2w_job: its payload fields (JSON types, ranges, lengths, and the CSV
 * header names each is read from), its keys (idempotency, ordering,
 * supersede) as templates over those fields, which inputs may carry it
 * (CSV files and bodies, NDJSON, HTTP JSON), its batch size, the extra
 * keys of its config section [NAME] with their defaults, and its run().
 * The config parser, the ingest pipeline (CSV map, NDJSON, HTTP bodies),
 * the directory watcher, the worker pool and `qctl enqueue` read the table
 * (m2w_job_find, m2w_job_at) and never name a type. Adding a type is one
 * file src/jobs/job_NAME.c with its entry, and one line in the table of
 * src/jobs/jobs.c (src/README.md says how).
 *
 * Payloads are JSON objects. A payload is parsed once on its way in
 * (m2w_job_load: strict JSON, the field table, the type's own check) and
 * once when a worker runs it; run() reads the parsed object. The types:
 *
 *   tracking {"order":"1000000001", "track":"1Z999", "carrier":"ups",
 *             "title":"UPS"?, "items":[{"sku":"SKU-1","qty":1}]?,
 *             "notify":true?}  (job_tracking.c)
 *   stock    {"sku":"SKU-1", "qty":5, "source":"default"?, "status":1?,
 *             "item_id":1?}    MSI source items, batched (job_stock.c)
 *   price    {"sku":"SKU-1", "price":9.99, "store_id":0?}   base prices,
 *             batched (job_price.c)
 *   rest     {"method":"POST", "path":"/products", "body":{...}?}
 *             any call, path relative to /rest/<store>/V1 (job_rest.c)
 *
 * Threads: the table is const; every function here is pure and
 * thread-safe except run(), which is called by one worker thread with that
 * thread's connection. Memory: m2w_job_load returns an object the caller
 * puts (json_object_put); strings passed in are borrowed.
 */
#ifndef M2WORKER_JOBS_H
#define M2WORKER_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "m2worker/magento.h"
#include "m2worker/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;

#define M2W_JOB_TEXT_MAX 127    /* longest string field by default */
#define M2W_JOB_CSV_NAMES 6     /* CSV header names of a field, at most */

/* ------------------------------------------------------------- fields */

enum m2w_field_type {
	M2W_FIELD_STRING = 0,   /* trimmed, non-empty, at most `max` bytes */
	M2W_FIELD_NUMBER,       /* int or double, finite */
	M2W_FIELD_INT,          /* an integer */
	M2W_FIELD_BOOL,
	M2W_FIELD_ITEMS,        /* an array of objects of the job's
				 * item_fields (1..items_max of them) */
	M2W_FIELD_ANY           /* any JSON value, null too */
};

enum m2w_field_range {
	M2W_RANGE_ANY = 0,
	M2W_RANGE_GE0,          /* >= 0 */
	M2W_RANGE_GT0,          /* > 0 */
	M2W_RANGE_BIT,          /* 0 or 1 */
	M2W_RANGE_INT32         /* 0 <= v <= INT32_MAX */
};

/*
 * One key of a payload object (or of an item); tables end with a NULL
 * name. `csv` names the header columns the field is read from (normalised:
 * lowercase, '_' for spaces; the first is the canonical one); none: the
 * field never comes from CSV. A CSV column of an item field goes into an
 * "items" entry; adjacent rows with items that agree on everything else
 * are one task (a parcel of several lines). `fallback`: in CSV, the field
 * whose value is used when this one's column is missing or empty (a
 * tracking "title" names the carrier when there is no carrier column).
 */
struct m2w_field {
	const char *name;       /* payload key */
	int type;               /* enum m2w_field_type */
	int required;
	int range;              /* enum m2w_field_range, numbers */
	size_t max;             /* strings: longest trimmed length */
	const char *what;       /* in CSV header errors ("tracking number");
				 * NULL: name */
	const char *csv[M2W_JOB_CSV_NAMES];
	const char *fallback;
};

/* ----------------------------------------------------------- settings */

enum m2w_setting_kind {
	M2W_SET_STR = 0,        /* char *, malloc'd; "" = unset (NULL) unless
				 * `nonempty` */
	M2W_SET_BOOL,           /* int 0/1 */
	M2W_SET_ENUM,           /* int: the index of the value in `choices` */
	M2W_SET_MAP             /* struct m2w_map: every key of the section
				 * `name` (not of [TYPE]): free-form names to
				 * values of `charset`, names unique in any
				 * case */
};

/* One extra key of a type's config section (the policy keys every type
 * has are the config's own). */
struct m2w_setting {
	const char *name;
	int kind;               /* enum m2w_setting_kind */
	size_t off;             /* into the job's settings struct */
	int nonempty;           /* STR: "" is a mistake */
	const char *const *choices; /* ENUM: NULL-terminated */
	const char *what;       /* MAP: a name in messages ("carrier") */
	const char *charset;    /* MAP: the bytes a value may hold */
};

/* A [section] of free-form `name = value` lines (M2W_SET_MAP). */
struct m2w_map {
	struct m2w_map_entry {
		char *name;
		char *value;
	} *v;
	size_t n;
};

/* The value of `name` (case-insensitive, white space around it ignored),
 * or NULL. */
const char *m2w_map_get(const struct m2w_map *m, const char *name);

/* ------------------------------------------------------------ running */

/* What a worker thread lends a job. */
struct m2w_job_env {
	struct m2_conn *conn;
	const void *settings;   /* the job's settings struct, from the config
				 * section [NAME] over job->defaults */
};

/* What became of one task. */
struct m2w_outcome {
	int err;                 /* M2W_OK: done. Else the m2w_err that decided:
				  * M2W_ETRANSIENT, M2W_EPERMANENT, M2W_EAUTH,
				  * M2W_EPROTO, M2W_ENOTFOUND ... */
	int cls;                 /* enum m2w_class of err */
	int http_status;
	int64_t retry_after_ms;
	int calls;               /* Magento calls made for this task */
	char message[M2_MESSAGE_MAX + 1]; /* why (Magento's words), or what
					   * was done ("track already on
					   * shipment 12") */
	char result[160];        /* done: JSON object of the Magento ids made
				  * or found ({"order_id":5,"shipment_id":12}),
				  * "" for none; carried by the result event */
};

/* Inputs that may carry a type (m2w_job.inputs). */
#define M2W_IN_CSV    1u        /* CSV files, stdin, HTTP text/csv */
#define M2W_IN_NDJSON 2u        /* NDJSON files, stdin, HTTP */
#define M2W_IN_JSON   4u        /* HTTP application/json */

struct m2w_job {
	const char *name;        /* the task type and its config section */
	const char *summary;     /* one line, for help texts */
	const struct m2w_field *fields;
	const struct m2w_field *item_fields; /* of M2W_FIELD_ITEMS, or NULL */
	unsigned items_max;
	/*
	 * Keys as templates over the (trimmed) payload fields: "{order}" is
	 * the value of "order", "{source=default}" the value or "default"
	 * when absent. NULL: none. The idempotency key says which payloads
	 * are the same work (ingest keys value-like types by their input
	 * line instead); the ordering key which tasks run one at a time, in
	 * order; `supersede`, the group's rule (queue.h M2W_GROUP_*): FIFO;
	 * NEWEST, a newer task replaces the waiting older ones of its group
	 * (the newest value wins); EXCLUSIVE, never two at once but in any
	 * order (a task waiting for its retry lets the next one run).
	 */
	const char *idem_key;
	const char *group_key;
	int supersede;
	unsigned inputs;         /* M2W_IN_* */
	unsigned batch;          /* tasks per run() by default; 0: one, and
				  * the config refuses `batch` with
				  * batch_note */
	unsigned batch_max;
	const char *batch_note;
	/* [NAME]'s extra keys into a struct of settings_size bytes, which
	 * starts as a copy of *defaults (strings: static, copied). */
	const struct m2w_setting *settings;
	size_t settings_size;
	const void *defaults;
	/* What the field table cannot say (a method name, a path's form);
	 * NULL: nothing. 0, or -1 with why. */
	int (*check)(struct json_object *o, char *why, size_t len);
	/* A type that batches: runs tasks[0..n) (n <= batch) whose
	 * payloads, loaded, are obj[0..n) (NULL where the payload did not
	 * load: that outcome is set already; skip it); fills out[]. */
	void (*run)(const struct m2w_job_env *env,
		    struct m2w_task *const *tasks,
		    struct json_object *const *obj, size_t n,
		    struct m2w_outcome *out);
	/* A type that does not (batch 0): runs one task, loaded, into *out. */
	void (*run_one)(const struct m2w_job_env *env, struct json_object *obj,
			struct m2w_outcome *out);
};

/* The job of a type name, or NULL. */
const struct m2w_job *m2w_job_find(const char *type);
/* The i-th job of the table, NULL past the end. */
const struct m2w_job *m2w_job_at(size_t i);
/* "tracking, stock, price or rest" (the types with every bit of `inputs`;
 * 0: all), into buf. */
const char *m2w_job_names(unsigned inputs, char *buf, size_t size);
/* The field of job (or of its items) named name, or NULL. */
const struct m2w_field *m2w_job_field(const struct m2w_job *job,
				      const char *name, int *item);

/*
 * Checks payload object o against the job: its field table (required
 * keys, JSON types, ranges, lengths, no other keys; items), then
 * job->check. 0, or -1 with why ("missing \"track\"", "\"items[2].qty\"
 * must be > 0").
 */
int m2w_job_check_object(const struct m2w_job *job, struct json_object *o,
			 char *why, size_t len);
/*
 * Parses payload text (strict JSON, an object, nothing after it) and
 * checks it (m2w_job_check_object). 0 and *out (json_object_put it), or
 * -1 with why (*out NULL).
 */
int m2w_job_load(const struct m2w_job *job, const char *payload,
		 struct json_object **out, char *why, size_t len);
/*
 * The keys of a checked payload object: idem and group (buffers of
 * M2W_KEY_MAX + 1 bytes, "" for none) and supersede. 0, or -1 when a key
 * would be longer than M2W_KEY_MAX.
 */
int m2w_job_keys(const struct m2w_job *job, struct json_object *o,
		 char *idem, char *group, int *supersede);

/*
 * Runs tasks[0..n) of type job: loads each payload (one that does not
 * load is dead: M2W_EINVAL, permanent, "bad payload: why"), then
 * job->run. out[0..n) filled. M2W_OK, or M2W_ENOMEM (every outcome says
 * so, transient).
 */
int m2w_job_run(const struct m2w_job *job, const struct m2w_job_env *env,
		struct m2w_task *const *tasks, size_t n,
		struct m2w_outcome *out);

/* Fills o from a client call's return code and result. */
void m2w_outcome_set(struct m2w_outcome *o, int rc,
		     const struct m2_result *res);

#ifdef __cplusplus
}
#endif
#endif
