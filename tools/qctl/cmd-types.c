/*
 * cmd-types.c - "qctl types": the job table (jobs.h) as an operator needs
 * it: each type, what it does, which inputs carry it, the CSV header names
 * of each field (required ones marked), its keys and batch. Read from the
 * table, like everything else that knows the types, so a new type shows
 * here without a line of qctl.
 */
#include "config.h"

#include "m2worker/jobs.h"
#include "qctl.h"

static const char *const input_names[] = { "csv", "ndjson", "json" };

static json_object *inputs_json(unsigned inputs)
{
	json_object *a = json_object_new_array();
	size_t i;

	for (i = 0; i < 3; i++)
		if (inputs & (1u << i))
			json_object_array_add(a, json_object_new_string(
						 input_names[i]));
	return a;
}

/* "order_number/order_id/increment_id/order" */
static void csv_names(const struct m2w_field *f, char *out, size_t size)
{
	size_t a, o = 0;

	out[0] = '\0';
	for (a = 0; a < M2W_JOB_CSV_NAMES && f->csv[a] && o < size; a++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", a ? "/" : "",
				      f->csv[a]);
}

static void fields_json(json_object *a, const struct m2w_field *f, int item)
{
	size_t k;

	for (; f && f->name; f++) {
		json_object *o, *csv;

		if (f->type == M2W_FIELD_ITEMS)
			continue;
		o = json_object_new_object();
		csv = json_object_new_array();
		for (k = 0; k < M2W_JOB_CSV_NAMES && f->csv[k]; k++)
			json_object_array_add(csv,
					      json_object_new_string(f->csv[k]));
		json_object_object_add(o, "field",
				       json_object_new_string(f->name));
		json_object_object_add(o, "required",
				       json_object_new_boolean(f->required));
		json_object_object_add(o, "item", json_object_new_boolean(item));
		json_object_object_add(o, "csv", csv);
		json_object_array_add(a, o);
	}
}

static void fields_print(const struct m2w_field *f, const char *pre)
{
	char names[160], name[64];

	for (; f && f->name; f++) {
		if (f->type == M2W_FIELD_ITEMS)
			continue;
		csv_names(f, names, sizeof(names));
		snprintf(name, sizeof(name), "%s%s", pre, f->name);
		printf("    %-13s %-9s %s%s%s%s\n", name,
		       f->required ? "required" : "", names[0] ? names : "-",
		       f->fallback ? " (or the " : "",
		       f->fallback ? f->fallback : "",
		       f->fallback ? " columns)" : "");
	}
}

static int types_exec(struct qctl *c, const struct qctl_args *a)
{
	const struct m2w_job *j;
	json_object *all = NULL;
	size_t i, k;

	(void)a;
	if (c->json)
		all = json_object_new_array();
	for (i = 0; (j = m2w_job_at(i)); i++) {
		if (c->json) {
			json_object *o = json_object_new_object(),
				    *f = json_object_new_array();

			json_object_object_add(o, "type",
					       json_object_new_string(j->name));
			json_object_object_add(o, "summary",
					       json_object_new_string(j->summary));
			json_object_object_add(o, "inputs",
					       inputs_json(j->inputs));
			json_object_object_add(o, "batch",
					       json_object_new_int((int)j->batch));
			json_object_object_add(o, "idempotency_key", j->idem_key
					       ? json_object_new_string(j->idem_key)
					       : NULL);
			json_object_object_add(o, "ordering_key", j->group_key
					       ? json_object_new_string(j->group_key)
					       : NULL);
			json_object_object_add(o, "supersede",
					       json_object_new_boolean(
						       j->supersede ==
						       M2W_GROUP_NEWEST));
			fields_json(f, j->fields, 0);
			fields_json(f, j->item_fields, 1);
			json_object_object_add(o, "fields", f);
			json_object_array_add(all, o);
			continue;
		}
		printf("%s%s - %s\n  inputs:", i ? "\n" : "", j->name,
		       j->summary);
		for (k = 0; k < 3; k++)
			if (j->inputs & (1u << k))
				printf(" %s", input_names[k]);
		printf("; tasks per call: %u\n", j->batch ? j->batch : 1);
		printf("  keys: idempotency %s, ordering %s%s\n",
		       j->idem_key ? j->idem_key : "(a file's content and line)",
		       j->group_key ? j->group_key : "(none)",
		       j->supersede == M2W_GROUP_NEWEST
			       ? ", the newest supersedes"
			       : j->supersede == M2W_GROUP_EXCLUSIVE
			       ? ", one at a time in any order" : "");
		printf("  fields%s:\n", j->inputs & M2W_IN_CSV ?
		       " (CSV header names)" : "");
		fields_print(j->fields, "");
		fields_print(j->item_fields, "items[].");
	}
	if (c->json)
		qctl_print_json(all);
	return EXIT_OK;
}

const struct qctl_cmd cmd_types = {
	.name = "types",
	.help =
	"Lists the job types: what each does, which inputs carry it (CSV,\n"
	"NDJSON, HTTP JSON), the CSV header names of its fields (any order,\n"
	"any case; spaces and - count as _), its keys and tasks per call.",
	.exec = types_exec,
};
