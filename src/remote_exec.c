/*-------------------------------------------------------------------------
 *
 * remote_exec.c
 *	  The SQL functions that run statements on participants: dtx.exec,
 *	  dtx.query (its rows streamed into the result), dtx.lock and
 *	  dtx.try_lock.
 *
 * Parameters travel out of band ($1, $2, ... are never spliced into the
 * text), in text form; built-in types are sent with their type OID, other
 * types and untyped literals are left for the remote server to type.  So
 * are all the parameters of a call that resolves to the VARIADIC text[]
 * form (parameters of unknown type, as drivers bind them, resolve to it).  The
 * remote session's DateStyle, IntervalStyle and extra_float_digits are
 * pinned at connection (connection.c), so that text forms are read back
 * exactly; parameters are printed with the same settings whatever the
 * local session's, and statements that would change the pinned settings
 * are refused.  Statements go through the extended protocol, which refuses
 * several statements in one string; transaction control is refused, and
 * the remote transaction status is checked after every statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "connection.h"
#include "fdw_options.h"
#include "remote_xact.h"
#include "stats.h"
#include "stmt_cache.h"

/* A statement's parameters in text form. */
typedef struct DtxParams
{
	int			n;				/* how many */
	Oid		   *types;			/* type OIDs to send (0: remote decides) */
	Oid		   *local_types;	/* the local types, for messages */
	const char **values;		/* text forms, NULL for SQL NULL */
} DtxParams;

/*
 * next_word
 *		The next word of the SQL text at *pp, after white space, comments and
 *		opening parentheses, upper-cased into buf (at most len - 1
 *		characters): letters, digits, underscores and dollar signs, or the
 *		contents of a double-quoted identifier (behind "U&" for one with
 *		Unicode escapes, whose escapes are left as they are).  Advances *pp
 *		past it; an empty word where there is none.
 */
static void
next_word(const char **pp, char *buf, int len)
{
	const char *p = *pp;
	int			i = 0;

	for (;;)
	{
		while (*p && (isspace((unsigned char) *p) || *p == '('))
			p++;
		if (p[0] == '-' && p[1] == '-')
		{
			/* as for the server's scanner, a comment ends at either */
			while (*p && *p != '\n' && *p != '\r')
				p++;
			continue;
		}
		if (p[0] == '/' && p[1] == '*')
		{
			int			depth = 1;

			p += 2;
			while (*p && depth > 0)
			{
				if (p[0] == '/' && p[1] == '*')
					depth++, p += 2;
				else if (p[0] == '*' && p[1] == '/')
					depth--, p += 2;
				else
					p++;
			}
			continue;
		}
		break;
	}
	if ((p[0] == 'U' || p[0] == 'u') && p[1] == '&' && p[2] == '"')
	{
		/* a name with Unicode escapes: kept apart by its "U&" */
		buf[i++] = 'U';
		buf[i++] = '&';
		p += 2;
	}
	if (*p == '"')
	{
		for (p++; *p && !(p[0] == '"' && p[1] != '"'); p++)
		{
			if (p[0] == '"')
				p++;			/* a doubled quote stands for one */
			if (i < len - 1)
				buf[i++] = pg_ascii_toupper((unsigned char) *p);
		}
		if (*p == '"')
			p++;
	}
	else
	{
		while (*p && (isalnum((unsigned char) *p) || *p == '_' || *p == '$'))
		{
			if (i < len - 1)
				buf[i++] = pg_ascii_toupper((unsigned char) *p);
			p++;
		}
	}
	buf[i] = '\0';
	*pp = p;
}

/* What pg_dtx needs to know of a statement before it goes out (sql_head). */
typedef struct DtxSqlHead
{
	bool		empty;			/* no statement: white space, comments and
								 * semicolons only */
	bool		is_copy;		/* a COPY: would stop a pipeline behind it */
	bool		may_deallocate; /* DEALLOCATE or DISCARD: may drop the
								 * statement cache's prepared statements */
} DtxSqlHead;

/* Statements that control the remote transaction, which belongs to pg_dtx. */
static const char *const transaction_control[] = {
	"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
	"SAVEPOINT", "RELEASE", NULL
};

/* The settings pg_dtx pins on its connections (connection.c). */
static const struct
{
	const char *word;			/* as next_word returns it */
	const char *name;			/* for messages */
}			pinned_settings[] =
{
	{"DATESTYLE", "DateStyle"},
	{"INTERVALSTYLE", "IntervalStyle"},
	{"EXTRA_FLOAT_DIGITS", "extra_float_digits"},
	{"CLIENT_ENCODING", "client_encoding"},
	{"NAMES", "client_encoding"},	/* SET NAMES */
	{"APPLICATION_NAME", "application_name"},
	{NULL, NULL}
};

/* Why sql_head refuses a SET of the transaction's characteristics, or of the role. */
#define XACT_DETAIL "The remote transaction on server \"%s\" takes the isolation level and read-only mode of the local one."
#define XACT_HINT "Set them on the local transaction."
#define ROLE_DETAIL "A transaction that server \"%s\" prepares must belong to the role of the user mapping, as which pg_dtx and its resolver finish it."
#define ROLE_HINT "Map the local user to the remote role it needs (CREATE USER MAPPING ... OPTIONS (user '...'))."

/* SET statements refused whatever their value, and some RESETs (sql_head). */
static const struct
{
	const char *word;			/* the name, as next_word returns it */
	const char *what;			/* for messages */
	bool		reset_too;		/* refused after RESET as well */
	const char *detail;			/* its %s: the server's name */
	const char *hint;
}			refused_sets[] =
{
	{"TRANSACTION", "TRANSACTION", true, XACT_DETAIL, XACT_HINT},
	{"CHARACTERISTICS", "SESSION CHARACTERISTICS", false, XACT_DETAIL, XACT_HINT},
	{"TRANSACTION_ISOLATION", "transaction_isolation", true, XACT_DETAIL, XACT_HINT},
	{"TRANSACTION_READ_ONLY", "transaction_read_only", true, XACT_DETAIL, XACT_HINT},
	{"TRANSACTION_DEFERRABLE", "transaction_deferrable", true, XACT_DETAIL, XACT_HINT},
	{"ROLE", "ROLE", false, ROLE_DETAIL, ROLE_HINT},
	{"AUTHORIZATION", "SESSION AUTHORIZATION", false, ROLE_DETAIL, ROLE_HINT},
	{"SESSION_AUTHORIZATION", "session_authorization", false, ROLE_DETAIL, ROLE_HINT},
	{NULL, NULL, false, NULL, NULL}
};

/*
 * sql_head
 *		Reads the first words of sql once, fills *head, and raises if sql
 *		would take what belongs to pg_dtx:
 *		- transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE
 *		  TRANSACTION, ...): pg_dtx begins, prepares and ends the remote
 *		  transaction with the local one;
 *		- a SET or RESET of a setting pg_dtx pins on its connections (SET
 *		  [SESSION | LOCAL] name, RESET name, RESET ALL), or of a name written
 *		  with Unicode escapes (U&"..."): the text forms of values, hence
 *		  dtx.query's results, and the deadlock detector's view of the
 *		  session depend on them;
 *		- SET TRANSACTION, SET SESSION CHARACTERISTICS and SET or RESET of
 *		  transaction_isolation, transaction_read_only and
 *		  transaction_deferrable: the remote transaction follows the local
 *		  one's isolation level and mode;
 *		- SET ROLE and SET SESSION AUTHORIZATION (or session_authorization):
 *		  a prepared transaction
 *		  belongs to the role that prepared it, and only that role (or a
 *		  superuser) can finish it, while pg_dtx and the resolver finish it
 *		  as the user mapping's role.
 *
 * Empty statements in front are skipped: the remote runs "; COMMIT" as a
 * COMMIT.  The extended protocol refuses a second statement behind the
 * first, so the first one is all there is to check.
 */
static void
sql_head(const char *sql, const char *servername, DtxSqlHead *head)
{
	const char *p = sql;
	char		word[NAMEDATALEN];
	int			i;

	memset(head, 0, sizeof(*head));
	for (;;)
	{
		next_word(&p, word, sizeof(word));
		if (word[0] != '\0' || *p != ';')
			break;
		p++;					/* an empty statement */
	}
	if (word[0] == '\0')
	{
		head->empty = (*p == '\0');
		return;
	}

	for (i = 0; transaction_control[i]; i++)
		if (strcmp(word, transaction_control[i]) == 0)
			break;
	if (transaction_control[i] == NULL && strcmp(word, "PREPARE") == 0)
	{
		char		word2[NAMEDATALEN];

		next_word(&p, word2, sizeof(word2));
		if (strcmp(word2, "TRANSACTION") == 0)
		{
			strlcat(word, " TRANSACTION", sizeof(word));
			i = -1;
		}
	}
	if (i < 0 || transaction_control[i] != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("transaction control statements are not allowed in pg_dtx remote SQL"),
				 errdetail("The statement for server \"%s\" starts with %s.", servername, word),
				 errhint("pg_dtx begins, prepares and commits remote transactions with the local one; use local SAVEPOINT and COMMIT.")));

	if (strcmp(word, "COPY") == 0)
		head->is_copy = true;
	else if (strcmp(word, "DEALLOCATE") == 0 || strcmp(word, "DISCARD") == 0)
		head->may_deallocate = true;
	else if (strcmp(word, "RESET") == 0 || strcmp(word, "SET") == 0)
	{
		bool		reset = (word[0] == 'R');

		next_word(&p, word, sizeof(word));
		if (reset && strcmp(word, "ALL") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("RESET ALL is not allowed in pg_dtx remote SQL"),
					 errdetail("It would reset the settings that pg_dtx pins on its connection to server \"%s\".",
							   servername),
					 errhint("Reset the settings you changed one by one.")));
		if (!reset && (strcmp(word, "SESSION") == 0 || strcmp(word, "LOCAL") == 0))
			next_word(&p, word, sizeof(word));
		if (strncmp(word, "U&", 2) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("setting names with Unicode escapes are not allowed after SET or RESET in pg_dtx remote SQL"),
					 errdetail("pg_dtx could not tell whether the statement for server \"%s\" changes a setting it pins.",
							   servername),
					 errhint("Write the setting's name plainly.")));
		if (!reset && strcmp(word, "SESSION") == 0)
		{
			/* SET LOCAL SESSION AUTHORIZATION, SET SESSION SESSION CHARACTERISTICS */
			next_word(&p, word, sizeof(word));
			if (strcmp(word, "AUTHORIZATION") != 0 && strcmp(word, "CHARACTERISTICS") != 0)
				strlcpy(word, "SESSION", sizeof(word));
		}
		for (i = 0; refused_sets[i].word; i++)
			if ((!reset || refused_sets[i].reset_too) && strcmp(word, refused_sets[i].word) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("%s %s is not allowed in pg_dtx remote SQL",
								reset ? "RESET" : "SET", refused_sets[i].what),
						 errdetail(refused_sets[i].detail, servername),
						 errhint("%s", refused_sets[i].hint)));
		for (i = 0; pinned_settings[i].word; i++)
			if (strcmp(word, pinned_settings[i].word) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("pg_dtx remote SQL may not change the setting \"%s\"",
								pinned_settings[i].name),
						 errdetail("pg_dtx pins it on its connection to server \"%s\".", servername),
						 errhint("Values travel between the servers in text forms that DateStyle, IntervalStyle, extra_float_digits and client_encoding fix, and pg_dtx finds its sessions by application_name; change such a setting in the local session only.")));
	}
}

/*
 * add_param
 *		Appends value (of type typid, or NULL) to p in text form.
 */
static void
add_param(DtxParams *p, int i, Oid typid, Datum value, bool isnull)
{
	p->local_types[i] = typid;
	/* built-in types have the same OIDs everywhere; others are left to the remote */
	p->types[i] = (typid < FirstGenbkiObjectId && typid != UNKNOWNOID) ? typid : InvalidOid;
	if (isnull)
		p->values[i] = NULL;
	else if (typid == UNKNOWNOID)
		p->values[i] = DatumGetCString(value);
	else
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(typid, &outfunc, &isvarlena);
		p->values[i] = OidOutputFunctionCall(outfunc, value);
	}
}

/*
 * set_transmission_formats
 *		Opens a GUC nest level in which output functions print values the
 *		way the participants' pinned sessions read them back exactly: ISO
 *		dates, IntervalStyle postgres, and enough float digits for an exact
 *		round trip, whatever the local session's settings.  Returns the
 *		level to give to reset_transmission_formats.
 *
 * An error inside the level is harmless: the (sub)transaction's abort pops
 * it with every GUC level above the aborted one.
 */
static int
set_transmission_formats(void)
{
	int			nestlevel = NewGUCNestLevel();

	if (DateStyle != USE_ISO_DATES)
		(void) set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (IntervalStyle != INTSTYLE_POSTGRES)
		(void) set_config_option("intervalstyle", "postgres", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (extra_float_digits < 3)
		(void) set_config_option("extra_float_digits", "3", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * output_depends_on_formats
 *		Whether the text form of typid may depend on DateStyle,
 *		IntervalStyle or extra_float_digits: false for common built-in types
 *		known not to (so that their parameters need no GUC nest level), true
 *		for every other type (arrays, records and user types may hold dates
 *		or floats).
 */
static bool
output_depends_on_formats(Oid typid)
{
	switch (typid)
	{
		case BOOLOID:
		case CHAROID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case UUIDOID:
		case BYTEAOID:
		case JSONOID:
		case JSONBOID:
		case UNKNOWNOID:
			return false;
		default:
			return true;
	}
}

/*
 * reset_transmission_formats
 *		Closes the nest level opened by set_transmission_formats, restoring
 *		the session's own settings.
 */
static void
reset_transmission_formats(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * params_untyped
 *		Whether fcinfo calls the VARIADIC text[] form of dtx.exec/dtx.query
 *		(or dtx.send/dtx.send_expect), whose parameters start at argument first,
 *		the one that parameters without a type resolve to: its values go to
 *		the participant untyped, for the remote statement to type them.
 */
static bool
params_untyped(FunctionCallInfo fcinfo, int first)
{
	return PG_NARGS() == first + 1 &&
		get_func_variadictype(fcinfo->flinfo->fn_oid) == TEXTOID;
}

/*
 * collect_params
 *		The parameters of a dtx.exec/dtx.query call: arguments first and on
 *		(numbered from 0: 2, or 3 for dtx.send_expect), or
 *		the elements of the array given with VARIADIC (or built by the
 *		VARIADIC text[] form), printed in the transmission formats whatever
 *		the session's settings.
 */
static DtxParams *
collect_params(FunctionCallInfo fcinfo, int first)
{
	DtxParams  *p = palloc0(sizeof(DtxParams));
	int			nargs = PG_NARGS();
	int			i;
	int			nestlevel;
	bool		untyped;

	if (nargs <= first)
		return p;

	untyped = params_untyped(fcinfo, first);
	if (untyped || get_fn_expr_variadic(fcinfo->flinfo))
	{
		/* dtx.exec(s, q, VARIADIC array), or the text[] form: the elements */
		ArrayType  *arr;
		Oid			elemtype;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		Datum	   *elems;
		bool	   *nulls;
		int			nelems;

		if (PG_ARGISNULL(first))
			return p;
		arr = PG_GETARG_ARRAYTYPE_P(first);
		elemtype = ARR_ELEMTYPE(arr);
		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &nelems);
		p->n = nelems;
		p->types = palloc(sizeof(Oid) * Max(nelems, 1));
		p->local_types = palloc(sizeof(Oid) * Max(nelems, 1));
		p->values = palloc(sizeof(char *) * Max(nelems, 1));
		nestlevel = output_depends_on_formats(elemtype) ? set_transmission_formats() : -1;
		for (i = 0; i < nelems; i++)
		{
			add_param(p, i, elemtype, elems[i], nulls[i]);
			if (untyped)
				p->types[i] = InvalidOid;
		}
		if (nestlevel >= 0)
			reset_transmission_formats(nestlevel);
		return p;
	}

	p->n = nargs - first;
	p->types = palloc(sizeof(Oid) * p->n);
	p->local_types = palloc(sizeof(Oid) * p->n);
	p->values = palloc(sizeof(char *) * p->n);
	nestlevel = -1;
	for (i = 0; i < p->n; i++)
	{
		Oid			typid = get_fn_expr_argtype(fcinfo->flinfo, i + first);

		if (!OidIsValid(typid))
			elog(ERROR, "could not determine the type of parameter $%d", i + 1);
		if (nestlevel < 0 && !PG_ARGISNULL(i + first) && output_depends_on_formats(typid))
			nestlevel = set_transmission_formats();
		add_param(p, i, typid, PG_GETARG_DATUM(i + first), PG_ARGISNULL(i + first));
	}
	if (nestlevel >= 0)
		reset_transmission_formats(nestlevel);
	return p;
}

/*
 * get_text_arg
 *		Argument i as a C string; a clear error when it is NULL.
 */
static char *
get_text_arg(FunctionCallInfo fcinfo, int i, const char *what)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/*
 * check_session
 *		After statements ran on c (sql, the last of them, for messages; NULL
 *		after dtx.wait): raises if one changed a setting that pg_dtx pins, or
 *		ended the remote transaction.  res, when given, is cleared first.
 */
static void
check_session(DtxConnection *c, PGresult *res, const char *sql)
{
	const char *changed = DtxPinnedSettingChanged(c);

	/*
	 * The error rolls the remote (sub)transaction back, undoing the change;
	 * a change by a statement sent in an earlier subtransaction would
	 * survive a rollback of this one: the connection cannot go on, and is
	 * closed at transaction end.
	 */
	if (changed != NULL)
	{
		if (res)
			PQclear(res);
		c->invalidated = true;
		if (res == NULL)
			c->xact.abort_required = true;
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the statement for server \"%s\" changed the setting \"%s\" that pg_dtx pins",
						c->servername, changed),
				 errdetail("The transaction is rolled back, which undoes the change."),
				 errhint("Values travel between the servers in text forms that DateStyle, IntervalStyle, extra_float_digits and client_encoding fix, and pg_dtx finds its sessions by application_name; change such a setting in the local session only."),
				 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
	}

	/* the remote transaction must still be ours */
	if (PQtransactionStatus(c->conn) != PQTRANS_INTRANS)
	{
		if (res)
			PQclear(res);
		c->broken = true;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("the remote transaction on server \"%s\" is no longer open", c->servername),
				 errdetail("The statement ended or broke the remote transaction."),
				 sql ? errcontext("remote SQL on server \"%s\": %s", c->servername, sql) : 0));
	}
}

/*
 * run_remote
 *		Runs sql with p on server for the current user inside the
 *		distributed transaction; returns the statement's result (the caller
 *		frees it with PQclear) and the connection in *conn_out; with row_fn,
 *		the rows go to row_fn(row, row_arg) as they arrive instead (see
 *		DtxGetPipelineRows).  cacheable:
 *		sql returns no rows, or rows of a type no DDL can change, so that it
 *		may run as a named prepared statement (a prepared statement whose
 *		result type changes fails once).
 */
static PGresult *
run_remote(const char *servername, const char *sql, DtxParams *p,
		   bool cacheable, DtxRowFn row_fn, void *row_arg,
		   DtxConnection **conn_out)
{
	Oid			userid = GetUserId();
	DtxConnection *c;
	List	   *prelude;
	PGresult   *res;
	bool		probe;
	DtxSqlHead	head;

	sql_head(sql, servername, &head);
	c = DtxGetConnection(DtxResolveServer(servername, userid), userid);
	/*
	 * An earlier transaction's COMMIT PREPARED is answered first: taken if
	 * it has arrived, else this statement goes behind it in its pipeline.
	 */
	DtxFinishCommitInFlight(c, c->lead_pending ? DTX_IN_FLIGHT_POLL : DTX_IN_FLIGHT_WAIT);
	DtxConnectionEnsureOpen(c);

	prelude = DtxRemoteXactPrelude(c);

	/*
	 * A query on a server that has only read so far carries the read-only
	 * probe in its pipeline: the commit then knows whether it wrote (a
	 * function may write in a SELECT) without a round trip of its own.
	 */
	probe = !cacheable && c->xact.selects_only && !c->xact.wrote && !c->xact.needs_prepare &&
		!head.is_copy;			/* a COPY with the client would stop the
								 * probe behind it */
	if (probe)
		c->xact.probed = false;
	DtxSetPhase(DTX_PHASE_STATEMENT, c->servername);
	if (cacheable)
		DtxSendStatement(c, prelude, sql, p->n, p->types, p->values);
	else
		DtxSendPipeline(c, prelude, sql, p->n, p->types, p->values);
	if (probe)
		DtxPipelineSendProbe(c);
	res = DtxGetPipelineRows(c, row_fn, row_arg);
	if (probe && c->probe_wrote >= 0)
	{
		c->xact.probed = true;
		if (c->probe_wrote == 1)
			c->xact.wrote = true;
	}
	DtxSetPhase(DTX_PHASE_NONE, NULL);
	if (head.may_deallocate)
		DtxStmtCacheReset(&c->stmts);

	check_session(c, res, sql);
	*conn_out = c;
	return res;
}

/*
 * dtx_exec
 *		SQL: dtx.exec(server, sql [, VARIADIC params]) runs a statement that
 *		returns no rows on a participant; returns the rows affected.
 */
PG_FUNCTION_INFO_V1(dtx_exec);
Datum
dtx_exec(PG_FUNCTION_ARGS)
{
	char	   *servername = get_text_arg(fcinfo, 0, "server name");
	char	   *sql = get_text_arg(fcinfo, 1, "SQL statement");
	DtxParams  *p = collect_params(fcinfo, 2);
	DtxConnection *c;
	PGresult   *res;
	int64		rows;
	char	   *tuples;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot run dtx.exec on a hot standby"),
				 errdetail("A distributed transaction that writes needs a commit decision, and a standby cannot record one."),
				 errhint("Run distributed transactions that write on the primary; dtx.query works here.")));

	res = run_remote(servername, sql, p, true, NULL, NULL, &c);
	c->xact.wrote = true;
	c->xact.selects_only = false;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		int			ncols = PQnfields(res);

		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("statement for server \"%s\" returned rows", servername),
				 errdetail_plural("It returned %d column; dtx.exec runs statements that return no rows.",
								  "It returned %d columns; dtx.exec runs statements that return no rows.",
								  ncols, ncols),
				 errhint("Use dtx.query for statements that return rows.")));
	}
	tuples = PQcmdTuples(res);
	rows = (tuples[0] != '\0') ? strtoi64(tuples, NULL, 10) : 0;
	PQclear(res);
	PG_RETURN_INT64(rows);
}

/*
 * send_remote
 *		Sends sql with p to server for the current user inside the
 *		distributed transaction, without waiting for it (dtx.send): its
 *		result is read with the next statement on that connection, at
 *		dtx.wait or at commit, where PREPARE TRANSACTION joins the same
 *		pipeline.  With expect_rows >= 0, the statement must report exactly
 *		that many rows.  The server becomes a writer.
 */
static void
send_remote(const char *servername, const char *sql, DtxParams *p, int64 expect_rows)
{
	Oid			userid = GetUserId();
	DtxConnection *c;
	List	   *prelude;
	DtxSqlHead	head;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot run dtx.send on a hot standby"),
				 errdetail("A sent statement makes its server a writer, and a distributed transaction that writes needs a commit decision, which a standby cannot record."),
				 errhint("Run distributed transactions that write on the primary; dtx.query works here.")));
	sql_head(sql, servername, &head);
	/*
	 * Read back at a pipelined COMMIT, an empty statement is no error, and
	 * that COMMIT would commit.
	 */
	if (head.empty)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the statement for server \"%s\" is empty", servername)));
	if (head.is_copy)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("COPY is not supported through dtx.send"),
				 errdetail("A COPY with the client would stop the statements sent behind it to server \"%s\".",
						   servername),
				 errhint("Run COPY with a file on the participant through dtx.exec.")));
	c = DtxGetConnection(DtxResolveServer(servername, userid), userid);
	/*
	 * An earlier transaction's COMMIT PREPARED is answered first: taken if
	 * it has arrived, else this statement goes behind it in its pipeline.
	 */
	DtxFinishCommitInFlight(c, c->lead_pending ? DTX_IN_FLIGHT_POLL : DTX_IN_FLIGHT_WAIT);
	DtxConnectionEnsureOpen(c);

	prelude = DtxRemoteXactPrelude(c);
	/* whatever it is, it is not waited for: prepared at commit */
	c->xact.wrote = true;
	c->xact.selects_only = false;
	if (head.may_deallocate)
	{
		/* the cache cannot know what is left: collected with it, then forgotten */
		DtxSendStatement(c, prelude, sql, p->n, p->types, p->values);
		PQclear(DtxGetPipelineResult(c));
		DtxStmtCacheReset(&c->stmts);
		return;
	}
	DtxPipelineSend(c, prelude, sql, p->n, p->types, p->values, expect_rows);
}

/*
 * dtx_send
 *		SQL: dtx.send(server, sql [, VARIADIC params]) sends a statement to a
 *		participant in pipeline mode and returns at once.
 */
PG_FUNCTION_INFO_V1(dtx_send);
Datum
dtx_send(PG_FUNCTION_ARGS)
{
	char	   *servername = get_text_arg(fcinfo, 0, "server name");
	char	   *sql = get_text_arg(fcinfo, 1, "SQL statement");
	DtxParams  *p = collect_params(fcinfo, 2);

	send_remote(servername, sql, p, -1);
	PG_RETURN_VOID();
}

/*
 * dtx_send_expect
 *		SQL: dtx.send_expect(server, rows, sql [, VARIADIC params]): dtx.send
 *		whose statement must report exactly rows rows (checked when its
 *		result is read; the transaction fails otherwise).
 */
PG_FUNCTION_INFO_V1(dtx_send_expect);
Datum
dtx_send_expect(PG_FUNCTION_ARGS)
{
	char	   *servername = get_text_arg(fcinfo, 0, "server name");
	int64		rows;
	char	   *sql = get_text_arg(fcinfo, 2, "SQL statement");
	DtxParams  *p;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the expected row count must not be NULL"),
				 errhint("Use dtx.send for a statement whose row count does not matter.")));
	rows = PG_GETARG_INT64(1);
	if (rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the expected row count must not be negative"),
				 errdetail("It is %lld.", (long long) rows)));
	p = collect_params(fcinfo, 3);
	send_remote(servername, sql, p, rows);
	PG_RETURN_VOID();
}

/*
 * dtx_wait
 *		SQL: dtx.wait([server]) waits for the statements sent to server (to
 *		every server when NULL or omitted) and raises the first failure.
 */
PG_FUNCTION_INFO_V1(dtx_wait);
Datum
dtx_wait(PG_FUNCTION_ARGS)
{
	Oid			userid = GetUserId();
	Oid			serverid = InvalidOid;
	ListCell   *lc;

	if (PG_NARGS() > 0 && !PG_ARGISNULL(0))
		serverid = DtxResolveServer(text_to_cstring(PG_GETARG_TEXT_PP(0)), userid);

	/* the participants, in the order of first use (whoever sent there) */
	foreach(lc, DtxCurrentParticipants())
	{
		DtxConnection *c = lfirst(lc);

		if (c->pipeline == NIL || (OidIsValid(serverid) && c->serverid != serverid))
			continue;
		DtxPipelineCollect(c);
		check_session(c, NULL, NULL);
	}
	PG_RETURN_VOID();
}

/*
 * check_row_shape
 *		Raises unless the remote result's columns fit the column definition
 *		list: the same count, and for built-in types the same type or one
 *		binary-coercible to the declared one.
 */
static void
check_row_shape(PGresult *res, TupleDesc desc, const char *servername)
{
	int			ncols = PQnfields(res);
	int			natts = 0;
	int			i;
	int			j = 0;

	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			natts++;
	if (ncols != natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg_plural("remote query on server \"%s\" returned %d column, the column definition list has %d",
							   "remote query on server \"%s\" returned %d columns, the column definition list has %d",
							   ncols, servername, ncols, natts),
				 errhint("Make the column definition list (AS t(col type, ...)) match the query's columns.")));

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			remote;

		if (att->attisdropped)
			continue;
		remote = PQftype(res, j);
		if (remote < FirstGenbkiObjectId && att->atttypid < FirstGenbkiObjectId &&
			remote != att->atttypid && !IsBinaryCoercible(remote, att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("remote query on server \"%s\" returned a column of another type", servername),
					 errdetail("Remote column %d (\"%s\") is of type %s, the column definition list says %s.",
							   j + 1, PQfname(res, j), format_type_be(remote),
							   format_type_be(att->atttypid)),
					 errhint("Cast the column in the remote query, or change the column definition list.")));
		j++;
	}
}

/* What dtx.query's row callback needs. */
typedef struct QueryRows
{
	ReturnSetInfo *rsinfo;
	const char *servername;
	AttInMetadata *attinmeta;
	char	  **values;			/* one per attribute of the result */
	MemoryContext rowcxt;		/* reset after each row */
	bool		checked;		/* the remote columns were checked */
} QueryRows;

/*
 * query_rows
 *		dtx.query's row callback: checks the columns of the first result
 *		against the column definition list, then converts the rows of res
 *		and puts them in the tuplestore (which spills to disk past work_mem).
 */
static void
query_rows(PGresult *res, void *arg)
{
	QueryRows  *q = (QueryRows *) arg;
	TupleDesc	desc = q->rsinfo->setDesc;
	int			ntuples = PQntuples(res);
	int			ncols = PQnfields(res);
	int			row;

	if (!q->checked)
	{
		check_row_shape(res, desc, q->servername);
		q->checked = true;
	}
	for (row = 0; row < ntuples; row++)
	{
		MemoryContext old = MemoryContextSwitchTo(q->rowcxt);
		HeapTuple	tuple;
		int			i;
		int			j = 0;

		for (i = 0; i < desc->natts; i++)
		{
			if (TupleDescAttr(desc, i)->attisdropped || j >= ncols)
			{
				q->values[i] = NULL;
				continue;
			}
			q->values[i] = PQgetisnull(res, row, j) ? NULL : PQgetvalue(res, row, j);
			j++;
		}
		tuple = BuildTupleFromCStrings(q->attinmeta, q->values);
		tuplestore_puttuple(q->rsinfo->setResult, tuple);
		MemoryContextSwitchTo(old);
		MemoryContextReset(q->rowcxt);
	}
}

/*
 * dtx_query
 *		SQL: dtx.query(server, sql [, VARIADIC params]) runs a query on a
 *		participant and returns its rows, shaped by the column definition
 *		list.  The rows are streamed into the result's tuplestore as they
 *		arrive: a large result is never held in memory whole.
 */
PG_FUNCTION_INFO_V1(dtx_query);
Datum
dtx_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *servername = get_text_arg(fcinfo, 0, "server name");
	char	   *sql = get_text_arg(fcinfo, 1, "SQL query");
	DtxParams  *p = collect_params(fcinfo, 2);
	DtxConnection *c;
	PGresult   *volatile res;
	QueryRows	q;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->expectedDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("dtx.query needs a column definition list"),
				 errhint("Call it as SELECT * FROM dtx.query('server', 'SELECT ...') AS t(col1 type1, col2 type2).")));

	DtxInitMaterializedSRF(fcinfo, 0);
	q.rsinfo = rsinfo;
	q.servername = servername;
	q.attinmeta = TupleDescGetAttInMetadata(rsinfo->setDesc);
	q.values = palloc(sizeof(char *) * Max(rsinfo->setDesc->natts, 1));
	q.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dtx.query row",
									 ALLOCSET_SMALL_SIZES);
	q.checked = false;

	res = run_remote(servername, sql, p, false, query_rows, &q, &c);
	if (strncmp(PQcmdStatus(res), "SELECT", 6) != 0)
		c->xact.wrote = true;		/* INSERT ... RETURNING and friends */

	PG_TRY();
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("statement for server \"%s\" returned no rows", servername),
					 errdetail("Its command tag is \"%s\".", PQcmdStatus(res)),
					 errhint("Use dtx.exec for statements that return no rows.")));

		/* no row came one by one (none at all, or single-row mode refused) */
		query_rows(res, &q);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	MemoryContextDelete(q.rowcxt);

	return (Datum) 0;
}

/*
 * compare_names
 *		qsort comparator of C strings.
 */
static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * lock_everywhere
 *		Takes a transaction-scoped advisory lock on every server of the
 *		array at argument 0 (and locally first, when the last argument is
 *		true), in one global order (local, then servers by name), so that
 *		two lockers never deadlock among themselves.  The key is argument 1
 *		(bigint) or arguments 1 and 2 (two integers).  With try_only, returns
 *		false at the first server where the lock is taken; the locks already
 *		taken are held until the transaction ends.
 *
 * The servers become participants that must be prepared at commit (they
 * hold a lock, not a transaction id), so that their locks are held until
 * COMMIT PREPARED, like every write of the transaction.
 */
static bool
lock_everywhere(FunctionCallInfo fcinfo, bool two_keys, bool try_only)
{
	int			nkeys = two_keys ? 2 : 1;
	bool		local_too = !PG_ARGISNULL(1 + nkeys) && PG_GETARG_BOOL(1 + nkeys);
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	char	  **names;
	DtxParams	p;
	Oid			types[2];
	const char *values[2];
	const char *sql;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the array of servers must not be NULL")));
	for (i = 1; i <= nkeys; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the lock key must not be NULL")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot take distributed locks on a hot standby")));

	arr = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	names = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("server names must not be NULL")));
		names[i] = TextDatumGetCString(elems[i]);
	}
	qsort(names, n, sizeof(char *), compare_names);

	if (two_keys)
	{
		types[0] = types[1] = INT4OID;
		values[0] = psprintf("%d", PG_GETARG_INT32(1));
		values[1] = psprintf("%d", PG_GETARG_INT32(2));
		sql = try_only ? "SELECT pg_catalog.pg_try_advisory_xact_lock($1, $2)"
			: "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)";
	}
	else
	{
		types[0] = INT8OID;
		values[0] = psprintf(INT64_FORMAT, PG_GETARG_INT64(1));
		sql = try_only ? "SELECT pg_catalog.pg_try_advisory_xact_lock($1)"
			: "SELECT pg_catalog.pg_advisory_xact_lock($1)";
	}
	p.n = nkeys;
	p.types = types;
	p.local_types = types;
	p.values = values;

	if (local_too)
	{
		Datum		got;

		if (two_keys)
			got = try_only ?
				DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
									PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)) :
				DirectFunctionCall2(pg_advisory_xact_lock_int4,
									PG_GETARG_DATUM(1), PG_GETARG_DATUM(2));
		else
			got = try_only ?
				DirectFunctionCall1(pg_try_advisory_xact_lock_int8, PG_GETARG_DATUM(1)) :
				DirectFunctionCall1(pg_advisory_xact_lock_int8, PG_GETARG_DATUM(1));
		if (try_only && !DatumGetBool(got))
			return false;
	}

	for (i = 0; i < n; i++)
	{
		DtxConnection *c;
		PGresult   *res;
		bool		got = true;

		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;
		res = run_remote(names[i], sql, &p, true, NULL, NULL, &c);
		c->xact.needs_prepare = true;
		if (try_only)
			got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!got)
			return false;
	}
	return true;
}

/*
 * dtx_lock
 *		SQL: dtx.lock(servers, key [, lock_local_too]) waits for and takes a
 *		transaction-scoped advisory lock on every listed server.
 */
PG_FUNCTION_INFO_V1(dtx_lock);
Datum
dtx_lock(PG_FUNCTION_ARGS)
{
	(void) lock_everywhere(fcinfo, PG_NARGS() == 4, false);
	PG_RETURN_VOID();
}

/*
 * dtx_try_lock
 *		SQL: dtx.try_lock(servers, key [, lock_local_too]) takes the locks if
 *		it can without waiting; false otherwise.
 */
PG_FUNCTION_INFO_V1(dtx_try_lock);
Datum
dtx_try_lock(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(lock_everywhere(fcinfo, PG_NARGS() == 4, true));
}
