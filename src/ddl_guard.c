/*-------------------------------------------------------------------------
 *
 * ddl_guard.c
 *	  Refuses DDL that would strand in-doubt transactions: dropping or
 *	  re-pointing a server, or dropping a user mapping or changing its
 *	  remote user, that an in-doubt transaction still needs, and dropping
 *	  the extension (with its decision table) while any is in doubt.
 *
 * In doubt are the unfinished commit decisions (dtx.decisions) and the
 * prepared transactions without a decision that the resolver's last pass
 * could not finish (dtx.undecided): both are finished through their server
 * and user mapping.  A utility hook checks the commands that name these
 * objects; an object access hook checks every drop, however it is reached
 * (CASCADE from a schema, an extension or a wrapper, DROP OWNED BY).
 *
 * The resolver finishes a decided transaction through the server and the
 * user mapping recorded with the decision; without them the transaction
 * would stay prepared, holding its locks, until someone finished it by
 * hand.  The operator runs dtx.resolve() first (or waits for the resolver),
 * then the command goes through.  Decisions whose participants all
 * confirmed are deleted first, so that they never block anything.
 *
 * The same utility hook keeps the resolver away from a database that DROP
 * DATABASE, CREATE DATABASE ... TEMPLATE or ALTER DATABASE ... RENAME / SET
 * TABLESPACE needs without other sessions (once the command's own
 * permission checks would pass: nobody else may pause the resolver), and
 * refuses DROP DATABASE of a database that may have transactions in doubt.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_tablespace.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablespace.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ddl_guard.h"
#include "decision.h"
#include "shared_state.h"

/* How long DROP DATABASE and friends keep the resolver away, ms. */
#define DTX_DDL_PAUSE_MS			30000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* What a refused command would have done (the sentence of its error). */
typedef enum DtxRefused
{
	REFUSED_DROP_SERVER,
	REFUSED_RETARGET_SERVER,
	REFUSED_DROP_EXTENSION,
	REFUSED_DROP_WRAPPER,
	REFUSED_DROP_PUBLIC_MAPPING,
	REFUSED_DROP_MAPPING,
	REFUSED_RETARGET_PUBLIC_MAPPING,
	REFUSED_RETARGET_MAPPING,
	REFUSED_DROP_TABLE
} DtxRefused;

static void dtx_ddl_guard(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc);
static void dtx_object_access(ObjectAccessType access, Oid classId,
							  Oid objectId, int subId, void *arg);

/*
 * DtxDdlGuardInit
 *		Installs the utility hook and the object access hook.
 */
void
DtxDdlGuardInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = dtx_ddl_guard;
	prev_object_access_hook = object_access_hook;
	object_access_hook = dtx_object_access;
}

/*
 * count_query
 *		The count(*) that sql (with parameters serverid and userid, as many
 *		as nargs) returns; inside SPI.
 */
static int64
count_query(const char *sql, int nargs, Oid serverid, Oid userid)
{
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		args[2];
	int64		n = 0;

	args[0] = ObjectIdGetDatum(serverid);
	args[1] = ObjectIdGetDatum(userid);
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;

		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return n;
}

/*
 * count_needing
 *		How many transactions in doubt (unfinished decisions, and prepared
 *		transactions without a decision in dtx.undecided) name serverid (and
 *		userid, when valid, for the same participant); with InvalidOid
 *		serverid, how many are in doubt at all.  Either table may be missing
 *		(version 1.0 has no dtx.undecided; a DROP SCHEMA in progress may
 *		have dropped one already).
 */
static int64
count_needing(Oid serverid, Oid userid)
{
	DtxOwnerScope scope;
	Oid			decisions = DtxTableRelid("decisions", true);
	Oid			undecided = DtxTableRelid("undecided", true);
	int			nargs = OidIsValid(serverid) ? (OidIsValid(userid) ? 2 : 1) : 0;
	int64		n = 0;

	if (!OidIsValid(decisions) && !OidIsValid(undecided))
		return 0;

	DtxEnterOwnerScope(&scope, InvalidOid);

	/* confirmed decisions are not in doubt */
	if (OidIsValid(decisions))
	{
		(void) DtxDecisionRetireConfirmed();
		CommandCounterIncrement();
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (OidIsValid(decisions))
	{
		const char *sql;

		if (nargs == 0)
			sql = "SELECT pg_catalog.count(*) FROM dtx.decisions";
		else if (nargs == 1)
			sql = "SELECT pg_catalog.count(*) FROM dtx.decisions WHERE $1 = ANY (servers)";
		else
			sql = "SELECT pg_catalog.count(*) FROM dtx.decisions d, "
				"ROWS FROM (pg_catalog.unnest(d.servers), pg_catalog.unnest(d.userids)) AS p(s, u) "
				"WHERE p.s = $1 AND p.u = $2";
		n += count_query(sql, nargs, serverid, userid);
	}
	if (OidIsValid(undecided))
	{
		const char *sql;

		/* those that got a decision since are counted above */
		if (nargs == 0)
			sql = "SELECT pg_catalog.count(*) FROM dtx.undecided u WHERE true";
		else if (nargs == 1)
			sql = "SELECT pg_catalog.count(*) FROM dtx.undecided u WHERE u.server_id = $1";
		else
			sql = "SELECT pg_catalog.count(*) FROM dtx.undecided u WHERE u.server_id = $1 AND u.userid = $2";
		if (OidIsValid(decisions))
			sql = psprintf("%s AND NOT EXISTS (SELECT FROM dtx.decisions d WHERE d.xid = u.xid)", sql);
		n += count_query(sql, nargs, serverid, userid);
	}
	SPI_finish();
	DtxLeaveOwnerScope(&scope);
	return n;
}

/*
 * refuse
 *		Raises the error for a command that transactions in doubt still
 *		need: what it would have done, with the names of the objects (name2
 *		only for a role's user mapping: the server).
 */
static void
refuse(DtxRefused what, const char *name, const char *name2, int64 n)
{
	long long	count = (long long) n;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 what == REFUSED_DROP_SERVER ?
			 errmsg("cannot drop server \"%s\": distributed transactions in doubt still need it",
					name) :
			 what == REFUSED_RETARGET_SERVER ?
			 errmsg("cannot change where server \"%s\" leads: distributed transactions in doubt still need it",
					name) :
			 what == REFUSED_DROP_EXTENSION ?
			 errmsg("cannot drop extension pg_dtx: distributed transactions in doubt still need it") :
			 what == REFUSED_DROP_WRAPPER ?
			 errmsg("cannot drop foreign-data wrapper dtx: distributed transactions in doubt still need it") :
			 what == REFUSED_DROP_PUBLIC_MAPPING ?
			 errmsg("cannot drop the PUBLIC user mapping of server \"%s\": distributed transactions in doubt still need it",
					name) :
			 what == REFUSED_DROP_MAPPING ?
			 errmsg("cannot drop the user mapping for \"%s\" on server \"%s\": distributed transactions in doubt still need it",
					name, name2) :
			 what == REFUSED_RETARGET_PUBLIC_MAPPING ?
			 errmsg("cannot change the remote user of the PUBLIC user mapping of server \"%s\": distributed transactions in doubt still need it",
					name) :
			 what == REFUSED_RETARGET_MAPPING ?
			 errmsg("cannot change the remote user of the user mapping for \"%s\" on server \"%s\": distributed transactions in doubt still need it",
					name, name2) :
			 errmsg("cannot drop table dtx.%s: distributed transactions are in doubt",
					name),
			 what == REFUSED_DROP_TABLE ?
			 errdetail_plural("The tables of pg_dtx record %lld transaction in doubt; without them nothing would finish its prepared transactions on the participants.",
							  "The tables of pg_dtx record %lld transactions in doubt; without them nothing would finish their prepared transactions on the participants.",
							  (unsigned long) count, count) :
			 errdetail_plural("The resolver finishes %lld transaction in doubt through this object.",
							  "The resolver finishes %lld transactions in doubt through this object.",
							  (unsigned long) count, count),
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
				refuse(REFUSED_DROP_SERVER, server->servername, NULL, n);
		}
	}
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), DTX_EXTENSION) == 0 &&
				(n = count_needing(InvalidOid, InvalidOid)) > 0)
				refuse(REFUSED_DROP_EXTENSION, NULL, NULL, n);
	}
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_FDW)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), "dtx") == 0 && ((DropStmt *) stmt)->behavior == DROP_CASCADE &&
				(n = count_needing(InvalidOid, InvalidOid)) > 0)
				refuse(REFUSED_DROP_WRAPPER, NULL, NULL, n);
	}
	else if (IsA(stmt, AlterForeignServerStmt))
	{
		AlterForeignServerStmt *s = (AlterForeignServerStmt *) stmt;
		ForeignServer *server = GetForeignServerByName(s->servername, true);

		if (server && changes_target(s->options) &&
			(n = count_needing(server->serverid, InvalidOid)) > 0)
			refuse(REFUSED_RETARGET_SERVER, server->servername, NULL, n);
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
				refuse(REFUSED_DROP_PUBLIC_MAPPING, server->servername, NULL, n);
			return;
		}
		userid = get_rolespec_oid(s->user, true);
		if (OidIsValid(userid) && (n = count_needing(server->serverid, userid)) > 0)
			refuse(REFUSED_DROP_MAPPING, GetUserNameFromId(userid, false), server->servername, n);
	}
	else if (IsA(stmt, AlterUserMappingStmt))
	{
		AlterUserMappingStmt *s = (AlterUserMappingStmt *) stmt;
		ForeignServer *server = GetForeignServerByName(s->servername, true);
		bool		changes_user = false;
		ListCell   *lc;
		Oid			userid;

		/* ADD, SET or DROP: the resolver would log in as someone else */
		foreach(lc, s->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "user") == 0)
				changes_user = true;
		if (server == NULL || !changes_user)
			return;
		if (s->user->roletype == ROLESPEC_PUBLIC)
		{
			if ((n = count_needing(server->serverid, InvalidOid)) > 0)
				refuse(REFUSED_RETARGET_PUBLIC_MAPPING, server->servername, NULL, n);
			return;
		}
		userid = get_rolespec_oid(s->user, true);
		if (OidIsValid(userid) && (n = count_needing(server->serverid, userid)) > 0)
			refuse(REFUSED_RETARGET_MAPPING, GetUserNameFromId(userid, false), server->servername, n);
	}
}

/*
 * utility_option
 *		The option name of ALTER DATABASE stmt, NULL if absent.
 */
static DefElem *
utility_option(AlterDatabaseStmt *stmt, const char *name)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, name) == 0 && def->arg != NULL)
			return def;
	}
	return NULL;
}

/*
 * database_of_utility
 *		The database that stmt needs without other sessions (DROP DATABASE,
 *		CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME / SET
 *		TABLESPACE), or InvalidOid.
 */
static Oid
database_of_utility(Node *stmt)
{
	const char *name = NULL;

	if (IsA(stmt, DropdbStmt))
		name = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst(lc);

			if (strcmp(def->defname, "template") == 0 && def->arg != NULL)
				name = defGetString(def);
		}
	}
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		name = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, AlterDatabaseStmt) &&
			 utility_option((AlterDatabaseStmt *) stmt, "tablespace") != NULL)
		name = ((AlterDatabaseStmt *) stmt)->dbname;

	return name ? get_database_oid(name, true) : InvalidOid;
}

/*
 * owns_database
 *		Whether the current user owns dboid (or is a superuser).
 */
static bool
owns_database(Oid dboid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, GetUserId());
#else
	return pg_database_ownercheck(dboid, GetUserId());
#endif
}

/*
 * may_create_databases
 *		Whether the current user has CREATEDB (or is a superuser).
 */
static bool
may_create_databases(void)
{
	HeapTuple	tup;
	bool		result;

	if (superuser())
		return true;
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	if (!HeapTupleIsValid(tup))
		return false;
	result = ((Form_pg_authid) GETSTRUCT(tup))->rolcreatedb;
	ReleaseSysCache(tup);
	return result;
}

/*
 * passes_permission_checks
 *		Whether the current user passes the permission checks that stmt, one
 *		of database_of_utility's commands on dboid, makes itself.  A command
 *		that is going to fail them must not keep the resolver away.
 */
static bool
passes_permission_checks(Node *stmt, Oid dboid)
{
	if (IsA(stmt, DropdbStmt))
		return owns_database(dboid);
	if (IsA(stmt, RenameStmt))
		return owns_database(dboid) && may_create_databases();
	if (IsA(stmt, AlterDatabaseStmt))
	{
		DefElem    *def = utility_option((AlterDatabaseStmt *) stmt, "tablespace");
		Oid			spcoid = get_tablespace_oid(defGetString(def), true);

		return owns_database(dboid) && OidIsValid(spcoid) &&
#if PG_VERSION_NUM >= 160000
			object_aclcheck(TableSpaceRelationId, spcoid, GetUserId(), ACL_CREATE) == ACLCHECK_OK;
#else
			pg_tablespace_aclcheck(spcoid, GetUserId(), ACL_CREATE) == ACLCHECK_OK;
#endif
	}
	if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;
		HeapTuple	tup;
		bool		is_template = false;

		if (!may_create_databases())
			return false;
		/* a new owner other than oneself needs membership in it */
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *def = lfirst(lc);

			if (strcmp(def->defname, "owner") == 0 && def->arg != NULL)
			{
				Oid			owner = get_role_oid(defGetString(def), true);

				if (!OidIsValid(owner) || !is_member_of_role(GetUserId(), owner))
					return false;
			}
		}
		/* a database that is not a template can be copied by its owner only */
		tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
		if (HeapTupleIsValid(tup))
		{
			is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
			ReleaseSysCache(tup);
		}
		return is_template || owns_database(dboid);
	}
	return false;
}

/*
 * keep_resolver_away
 *		Before a command that needs a database without other sessions, once
 *		the current user is known to pass the command's own permission
 *		checks: keeps the resolver away from it and ends its running worker;
 *		refuses DROP DATABASE of a database that may have transactions in
 *		doubt.
 */
static void
keep_resolver_away(PlannedStmt *pstmt)
{
	Oid			dboid;

	if (DtxSharedStateAvailable() && OidIsValid(dboid = database_of_utility(pstmt->utilityStmt)) &&
		passes_permission_checks(pstmt->utilityStmt, dboid))
	{
		pid_t		pid = 0;
		DtxDbSlot  *slot;
		int			waited;
		int			in_doubt = 0;
		bool		unknown = false;
		Latch	   *wake_latch = NULL;

		DtxSharedLock();
		slot = DtxSlotFor(dboid, false);
		if (slot)
		{
			in_doubt = slot->in_doubt;
			unknown = slot->wakes != slot->wakes_seen;
			if (IsA(pstmt->utilityStmt, DropdbStmt) && (in_doubt > 0 || unknown))
			{
				/* refused below: let the resolver finish them first, now */
				slot->wake = true;
				slot->paused_until = 0;
				wake_latch = DtxLauncherLatch();
			}
			else
			{
				slot->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																 DTX_DDL_PAUSE_MS);
				pid = slot->worker_pid;
			}
		}
		DtxSharedUnlock();
		if (wake_latch)
			SetLatch(wake_latch);

		/*
		 * Dropping a database forgets the decisions of its transactions in
		 * doubt, and nothing would ever finish their prepared transactions
		 * on the participants: refused while the resolver knows of any, or
		 * cannot know.
		 */
		if (IsA(pstmt->utilityStmt, DropdbStmt) && (in_doubt > 0 || unknown))
		{
			const char *name = ((DropdbStmt *) pstmt->utilityStmt)->dbname;

			if (in_doubt > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg_plural("database \"%s\" has %d distributed transaction in doubt",
									   "database \"%s\" has %d distributed transactions in doubt",
									   in_doubt, name, in_doubt),
						 errdetail("Dropping it would leave their prepared transactions on the participants for good."),
						 errhint("Connect to \"%s\" and let the resolver finish them (dtx.resolve(), dtx.in_doubt), or finish them by hand with dtx.resolve_manually(); then drop it.",
								 name)));
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("database \"%s\" may have distributed transactions in doubt", name),
					 errdetail("No resolver pass has completed there since a transaction was left in doubt or since the server started."),
					 errhint("Wait for the resolver's next pass (dtx.resolver_interval), or connect to \"%s\" and run dtx.resolve(); then drop it.",
							 name)));
		}

		/* end the worker and wait for it to leave, a few seconds at most */
		if (pid != 0)
		{
			(void) kill(pid, SIGTERM);
			for (waited = 0; waited < 5000; waited += 10)
			{
				bool		gone;

				DtxSharedLock();
				gone = (slot->dboid != dboid || slot->worker_pid != pid);
				DtxSharedUnlock();
				if (gone)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 10, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
	}
}

/*
 * dtx_ddl_guard
 *		The utility hook (pg_dtx's only one): keeps the resolver away from
 *		a database that a command needs alone, checks the commands that
 *		would strand transactions in doubt, then runs the command.
 */
static void
dtx_ddl_guard(PlannedStmt *pstmt, const char *queryString,
			  bool readOnlyTree, ProcessUtilityContext context,
			  ParamListInfo params, QueryEnvironment *queryEnv,
			  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	keep_resolver_away(pstmt);
	if ((IsA(stmt, DropStmt) || IsA(stmt, AlterForeignServerStmt) ||
		 IsA(stmt, DropUserMappingStmt) || IsA(stmt, AlterUserMappingStmt)) &&
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

/*
 * check_drop
 *		Raises if dropping object objectId of catalog classId would strand
 *		transactions in doubt in this database: one of pg_dtx's tables that
 *		record them, a server or a user mapping that they need.
 */
static void
check_drop(Oid classId, Oid objectId)
{
	int64		n;

	if (classId == RelationRelationId)
	{
		Oid			nsp = get_namespace_oid(DTX_SCHEMA, true);
		char	   *relname;

		if (!OidIsValid(nsp) || get_rel_namespace(objectId) != nsp)
			return;
		relname = get_rel_name(objectId);
		if (relname == NULL ||
			(strcmp(relname, "decisions") != 0 && strcmp(relname, "undecided") != 0) ||
			!OidIsValid(get_extension_oid(DTX_EXTENSION, true)))
			return;
		if ((n = count_needing(InvalidOid, InvalidOid)) > 0)
			refuse(REFUSED_DROP_TABLE, relname, NULL, n);
	}
	else if (classId == ForeignServerRelationId)
	{
		ForeignServer *server = GetForeignServerExtended(objectId, FSV_MISSING_OK);

		if (server == NULL || !OidIsValid(get_extension_oid(DTX_EXTENSION, true)))
			return;
		if ((n = count_needing(server->serverid, InvalidOid)) > 0)
			refuse(REFUSED_DROP_SERVER, server->servername, NULL, n);
	}
	else if (classId == UserMappingRelationId)
	{
		HeapTuple	tup = SearchSysCache1(USERMAPPINGOID, ObjectIdGetDatum(objectId));
		Oid			userid;
		Oid			serverid;
		ForeignServer *server;

		if (!HeapTupleIsValid(tup))
			return;
		userid = ((Form_pg_user_mapping) GETSTRUCT(tup))->umuser;
		serverid = ((Form_pg_user_mapping) GETSTRUCT(tup))->umserver;
		ReleaseSysCache(tup);
		server = GetForeignServerExtended(serverid, FSV_MISSING_OK);
		if (server == NULL || !OidIsValid(get_extension_oid(DTX_EXTENSION, true)))
			return;
		/* the PUBLIC mapping may serve any role */
		if ((n = count_needing(serverid, userid)) > 0)
		{
			if (OidIsValid(userid))
				refuse(REFUSED_DROP_MAPPING, GetUserNameFromId(userid, false), server->servername, n);
			refuse(REFUSED_DROP_PUBLIC_MAPPING, server->servername, NULL, n);
		}
	}
}

/*
 * dtx_object_access
 *		The object access hook: before any object is dropped, whatever the
 *		command (CASCADE, DROP OWNED BY), checks that no transaction in
 *		doubt needs it.
 */
static void
dtx_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				  int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && subId == 0 && !creating_extension && IsTransactionState() &&
		(classId == RelationRelationId || classId == ForeignServerRelationId ||
		 classId == UserMappingRelationId))
		check_drop(classId, objectId);
}
