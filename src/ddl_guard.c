/*-------------------------------------------------------------------------
 *
 * ddl_guard.c
 *	  Refuses DDL that would strand in-doubt transactions: dropping or
 *	  re-pointing a server, or dropping a user mapping, that a commit
 *	  decision still needs, and dropping the extension (with its decision
 *	  table) while decisions are unfinished.
 *
 * The resolver finishes a decided transaction through the server and the
 * user mapping recorded with the decision; without them the transaction
 * would stay prepared, holding its locks, until someone finished it by
 * hand.  The operator runs dtx.resolve() first (or waits for the resolver),
 * then the command goes through.  Decisions whose participants all
 * confirmed are deleted first, so that they never block anything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "ddl_guard.h"
#include "decision.h"
#include "launcher.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void dtx_ddl_guard(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc);

/*
 * DtxDdlGuardInit
 *		Installs the utility hook.
 */
void
DtxDdlGuardInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = dtx_ddl_guard;
}

/*
 * count_needing
 *		How many unfinished decisions name serverid (and userid, when
 *		valid, for the same participant); with InvalidOid serverid, how
 *		many decisions there are at all.
 */
static int64
count_needing(Oid serverid, Oid userid)
{
	DtxOwnerScope scope;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		args[2];
	const char *sql;
	int64		n = 0;
	int			ret;

	DtxEnterOwnerScope(&scope, InvalidOid);

	/* confirmed decisions are not in doubt */
	DtxDecisionDeleteConfirmed();
	{
		Relation	rel = table_open(DtxTableRelid("decisions", false), RowExclusiveLock);

		(void) DtxConfirmedDelete(rel);
		table_close(rel, NoLock);
	}
	CommandCounterIncrement();

	if (!OidIsValid(serverid))
		sql = "SELECT pg_catalog.count(*) FROM dtx.decisions";
	else if (!OidIsValid(userid))
		sql = "SELECT pg_catalog.count(*) FROM dtx.decisions WHERE $1 = ANY (servers)";
	else
		sql = "SELECT pg_catalog.count(*) FROM dtx.decisions d, "
			"ROWS FROM (pg_catalog.unnest(d.servers), pg_catalog.unnest(d.userids)) AS p(s, u) "
			"WHERE p.s = $1 AND p.u = $2";
	args[0] = ObjectIdGetDatum(serverid);
	args[1] = ObjectIdGetDatum(userid);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(sql, OidIsValid(serverid) ? (OidIsValid(userid) ? 2 : 1) : 0,
								argtypes, args, NULL, false, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;

		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	DtxLeaveOwnerScope(&scope);
	return n;
}

/*
 * refuse
 *		Raises the error for a command that decisions still need.
 */
static void
refuse(const char *what, int64 n)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot %s: %lld distributed transaction(s) in doubt still need it", what, (long long) n),
			 errdetail("The resolver finishes them through this server and user mapping."),
			 errhint("Run SELECT * FROM dtx.resolve() until dtx.in_doubt is empty, then try again.")));
}

/*
 * changes_target
 *		Whether ALTER SERVER options change where the server leads.
 */
static bool
changes_target(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "host") == 0 || strcmp(def->defname, "hostaddr") == 0 ||
			strcmp(def->defname, "port") == 0 || strcmp(def->defname, "dbname") == 0 ||
			strcmp(def->defname, "service") == 0)
			return true;
	}
	return false;
}

/*
 * check_statement
 *		Raises if stmt would strand decisions of this database.
 */
static void
check_statement(Node *stmt)
{
	int64		n;

	if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_FOREIGN_SERVER)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
		{
			ForeignServer *server = GetForeignServerByName(strVal(lfirst(lc)), true);

			if (server && (n = count_needing(server->serverid, InvalidOid)) > 0)
				refuse(psprintf("drop server \"%s\"", server->servername), n);
		}
	}
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), DTX_EXTENSION) == 0 &&
				(n = count_needing(InvalidOid, InvalidOid)) > 0)
				refuse("drop extension pg_dtx", n);
	}
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_FDW)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), "dtx") == 0 && ((DropStmt *) stmt)->behavior == DROP_CASCADE &&
				(n = count_needing(InvalidOid, InvalidOid)) > 0)
				refuse("drop foreign-data wrapper dtx", n);
	}
	else if (IsA(stmt, AlterForeignServerStmt))
	{
		AlterForeignServerStmt *s = (AlterForeignServerStmt *) stmt;
		ForeignServer *server = GetForeignServerByName(s->servername, true);

		if (server && changes_target(s->options) &&
			(n = count_needing(server->serverid, InvalidOid)) > 0)
			refuse(psprintf("change where server \"%s\" leads", server->servername), n);
	}
	else if (IsA(stmt, DropUserMappingStmt))
	{
		DropUserMappingStmt *s = (DropUserMappingStmt *) stmt;
		ForeignServer *server = GetForeignServerByName(s->servername, true);
		Oid			userid = InvalidOid;

		if (server == NULL)
			return;
		if (s->user->roletype == ROLESPEC_PUBLIC)
		{
			if ((n = count_needing(server->serverid, InvalidOid)) > 0)
				refuse(psprintf("drop the PUBLIC user mapping of server \"%s\"", server->servername), n);
			return;
		}
		userid = get_rolespec_oid(s->user, true);
		if (OidIsValid(userid) && (n = count_needing(server->serverid, userid)) > 0)
			refuse(psprintf("drop the user mapping for \"%s\" on server \"%s\"",
							GetUserNameFromId(userid, false), server->servername), n);
	}
}

/*
 * dtx_ddl_guard
 *		The utility hook: checks, then runs the command.
 */
static void
dtx_ddl_guard(PlannedStmt *pstmt, const char *queryString,
			  bool readOnlyTree, ProcessUtilityContext context,
			  ParamListInfo params, QueryEnvironment *queryEnv,
			  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if ((IsA(stmt, DropStmt) || IsA(stmt, AlterForeignServerStmt) ||
		 IsA(stmt, DropUserMappingStmt)) &&
		IsTransactionState() && !creating_extension &&
		OidIsValid(get_extension_oid(DTX_EXTENSION, true)) &&
		OidIsValid(DtxTableRelid("decisions", true)))
		check_statement(stmt);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}
